"""Message waiting (RFC 3842) for the media service: SUBSCRIBE message-summary relayed by
the proxy, NOTIFYs back through the proxy's Record-Route, and unsolicited NOTIFYs to the
registered phones of boxes configured so. A mixin of media.service.Service (it uses its
socket, store, trust check and counters)."""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from media import apps, mwi, sip


@dataclass
class Subscription:
    """A phone's message-summary subscription; NOTIFYs go back through the proxy."""
    box: str
    call_id: str
    remote: str                    # the subscriber's From (with its tag): our To
    local: str                     # its To with our tag: our From
    contact: str
    routes: list[str]
    source: tuple[str, int]
    expires_at: float
    cseq: int = 0


class Notifier:
    def on_subscribe(self, msg: sip.Message, addr) -> None:
        if not self.is_trusted(addr):
            if self.untrusted.allow(addr[0]):
                self.reply(msg, addr, 403, "Forbidden - the media service is reached through the proxy only")
            return
        if (msg.get("event") or "").split(";")[0].strip().lower() != "message-summary":
            self.reply(msg, addr, 489, "Bad Event - only message-summary", headers=[("Allow-Events", "message-summary")])
            return
        granted = mwi.expires(msg.get("expires"))
        sub = self.subs.get(msg.call_id)
        if sip.tag_of(msg.get("to", "")) is not None:       # refresh or unsubscribe
            if sub is None:
                self.reply(msg, addr, 481, "Subscription Does Not Exist")
                return
            self.send(sip.response(msg, 200, "OK", headers=[("Expires", str(granted))]), addr)
            sub.expires_at = time.monotonic() + granted
            asyncio.get_running_loop().create_task(self.notify(sub))
            return
        try:
            app = apps.parse(msg.get("x-kemi-app"))
            if not isinstance(app, apps.Mwi):
                raise apps.AppError(400, "Bad Request - SUBSCRIBE needs the mwi app")
        except apps.AppError as err:
            self.reply(msg, addr, err.status, err.reason)
            return
        asyncio.get_running_loop().create_task(self.new_subscription(msg, addr, app.box, granted))

    async def new_subscription(self, msg: sip.Message, addr, box: str, granted: int) -> None:
        if await self.store.box(box) is None:
            self.reply(msg, addr, 404, f"Not Found - no voicemail box {box}")
            return
        tag = uuid.uuid4().hex[:10]
        to = msg.get("to")
        sub = Subscription(box, msg.call_id, msg.get("from"), f"{to};tag={tag}",
                           sip.uri_of(msg.get("contact") or msg.get("from")), msg.all("record-route"), addr,
                           time.monotonic() + granted)
        self.send(sip.response(msg, 200, "OK", to_tag=tag, headers=[
            ("Expires", str(granted)), ("Contact", f"<sip:{self.address}:{self.port}>")]), addr)
        self.count("subscriptions")
        if granted:
            self.subs[msg.call_id] = sub
        await self.notify(sub)

    async def notify(self, sub: Subscription) -> None:
        remaining = max(0, int(sub.expires_at - time.monotonic()))
        new, saved = await self.store.counts(sub.box)
        state = f"active;expires={remaining}" if remaining else "terminated;reason=timeout"
        if not remaining:
            self.subs.pop(sub.call_id, None)
        sub.cseq += 1
        headers = [("Via", f"SIP/2.0/UDP {self.address}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport"),
                   ("Max-Forwards", "70")] + [("Route", r) for r in sub.routes] + [
                   ("From", sub.local), ("To", sub.remote), ("Call-ID", sub.call_id), ("CSeq", f"{sub.cseq} NOTIFY"),
                   ("Contact", f"<sip:{self.address}:{self.port}>"), ("Event", "message-summary"),
                   ("Subscription-State", state)]
        data = sip.request("NOTIFY", sub.contact, headers, mwi.summary(f"sip:{sub.box}@{self.address}", new, saved),
                           content_type=mwi.CONTENT_TYPE)
        target = sip.hostport_of(sub.routes[0]) if sub.routes else sub.source
        self.send(data, target)
        self.count("notifies")

    def message_waiting(self, box: str) -> None:
        """A box's messages changed: tell its subscribers (lamp on or off)."""
        now = time.monotonic()
        for sub in list(self.subs.values()):
            if sub.expires_at <= now:
                self.subs.pop(sub.call_id, None)
            elif sub.box == box:
                asyncio.get_running_loop().create_task(self.notify(sub))
        asyncio.get_running_loop().create_task(self.notify_unsolicited(box))

    async def notify_unsolicited(self, box: str) -> None:
        """Phones configured for it (box option) get an out-of-dialog NOTIFY at their
        registered address, without subscribing."""
        contacts = await self.store.unsolicited_contacts(box)
        if not contacts:
            return
        new, saved = await self.store.counts(box)
        for contact, received in contacts:
            uri = sip.uri_of(contact)
            target = sip.hostport_of(received or uri)
            headers = [("Via", f"SIP/2.0/UDP {self.address}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport"),
                       ("Max-Forwards", "70"), ("From", f"<sip:{box}@{self.address}>;tag={uuid.uuid4().hex[:10]}"),
                       ("To", f"<sip:{box}@{self.address}>"), ("Call-ID", uuid.uuid4().hex + "@kemi-media"),
                       ("CSeq", "1 NOTIFY"), ("Event", "message-summary"), ("Subscription-State", "active")]
            self.send(sip.request("NOTIFY", uri, headers, mwi.summary(f"sip:{box}@{self.address}", new, saved),
                                  content_type=mwi.CONTENT_TYPE), target)
            self.count("notifies_unsolicited")
