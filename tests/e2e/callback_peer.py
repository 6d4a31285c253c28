"""A carrier for the callback tests: one UDP socket on its own loopback address, provisioned
as a trunk. It places calls into the proxy (recognised by its source address, no digest) as
any public caller, and answers the calls the proxy sends to public numbers (the callback's
legs A and B) with a real RTP leg (media.leg), recording what it hears, playing tones and
sending RFC 4733 digits. Built on tests/e2e/media_peer.Phone (its UAC side)."""
from __future__ import annotations

import asyncio
import uuid

import numpy as np

from media import leg as legmod, sdp, sip
from tests.e2e.media_peer import Phone


class Incoming:
    """A call the proxy sent to this carrier (a public number)."""

    def __init__(self, carrier: "Carrier", invite: sip.Message, addr):
        self.carrier, self.invite, self.addr = carrier, invite, addr
        self.number = sip.user_of(invite.uri or "")
        self.from_user = sip.user_of(sip.uri_of(invite.get("from", "")))
        self.to_tag = uuid.uuid4().hex[:8]
        self.leg: legmod.Leg | None = None
        self.acked = asyncio.Event()
        self.ended = asyncio.Event()
        self.ok: bytes | None = None
        self.cseq = 1

    async def answer(self) -> None:
        offer = sdp.parse_offer(self.invite.body)
        self.leg = await legmod.open_leg(self.carrier.clock, self.carrier.address, offer.payload_type,
                                         offer.event_type, (offer.address, offer.port))
        self.leg.recording = []
        body = sdp.answer(offer, self.carrier.address, self.leg.port, 7)
        contact = [("Contact", f"<sip:{self.number}@{self.carrier.address}:{self.carrier.port}>")]
        self.carrier.transport.sendto(sip.response(self.invite, 180, "Ringing", self.to_tag), self.addr)
        self.ok = sip.response(self.invite, 200, "OK", self.to_tag, headers=contact, body=body)
        self.leg.start()
        for wait in (0.5, 1, 2, 4, 4):
            self.carrier.transport.sendto(self.ok, self.addr)
            try:
                await asyncio.wait_for(self.acked.wait(), wait)
                return
            except asyncio.TimeoutError:
                continue

    def reject(self, status: int, reason: str) -> None:
        self.carrier.transport.sendto(sip.response(self.invite, status, reason, self.to_tag), self.addr)

    def on_request(self, msg: sip.Message, addr) -> None:
        if msg.method == "ACK":
            self.acked.set()
        elif msg.method in ("BYE", "CANCEL"):
            self.carrier.transport.sendto(sip.response(msg, 200, "OK"), addr)
            if msg.method == "CANCEL":
                self.carrier.transport.sendto(sip.response(self.invite, 487, "Request Terminated", self.to_tag),
                                              self.addr)
            self.ended.set()
            if self.leg:
                self.leg.close()
        elif msg.method == "INVITE" and self.ok is not None:     # retransmission
            self.carrier.transport.sendto(self.ok, addr)
        else:
            self.carrier.transport.sendto(sip.response(msg, 200, "OK"), addr)

    async def dtmf(self, digits: str, gap: float = 0.2) -> None:
        for d in digits:
            self.leg.send_digit(d)
            await asyncio.sleep(gap)

    def play(self, pcm: np.ndarray, loops: int = 1):
        return self.leg.play(pcm, loops)

    def received(self) -> np.ndarray:
        chunks = self.leg.recording or [] if self.leg else []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def bye(self) -> None:
        inv = self.invite
        routes = inv.all("record-route")
        target = sip.uri_of(inv.get("contact") or inv.get("from"))
        self.cseq += 1
        headers = [("Via", f"SIP/2.0/UDP {self.carrier.address}:{self.carrier.port};"
                           f"branch=z9hG4bK{uuid.uuid4().hex[:16]};rport"), ("Max-Forwards", "70")]
        headers += [("Route", r) for r in routes]
        headers += [("From", f"{inv.get('to')};tag={self.to_tag}"), ("To", inv.get("from")),
                    ("Call-ID", inv.call_id), ("CSeq", f"{self.cseq + 100} BYE")]
        dest = sip.hostport_of(routes[0]) if routes else self.addr
        self.carrier.transport.sendto(sip.request("BYE", target, headers), dest)
        self.ended.set()
        if self.leg:
            self.leg.close()


class Carrier(Phone):
    def __init__(self, address: str):
        super().__init__(user="carrier", password=None, address=address)
        self.incoming: dict[str, Incoming] = {}
        self.arrivals: asyncio.Queue[Incoming] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            msg = sip.parse(data)
        except sip.SipError:
            return
        if msg.is_request and msg.call_id in self.incoming:
            self.incoming[msg.call_id].on_request(msg, addr)
            return
        if msg.is_request and msg.method == "INVITE" and msg.call_id not in self.waiters:
            call = Incoming(self, msg, addr)
            self.incoming[msg.call_id] = call
            self.transport.sendto(sip.response(msg, 100, "Trying"), addr)
            self.arrivals.put_nowait(call)
            return
        super().datagram_received(data, addr)

    async def next_call(self, timeout: float = 20) -> Incoming:
        return await asyncio.wait_for(self.arrivals.get(), timeout)

    async def ring_in(self, proxy_address, did: str, caller: str, hidden: bool = False):
        """A public caller rings `did` through this trunk; returns the Call after its
        first 180 or final response."""
        self.user = "anonymous" if hidden else caller
        headers = [("Privacy", "id")] if hidden else []
        return await self.call(proxy_address, f"sip:{did}@{proxy_address[0]}:{proxy_address[1]}", headers,
                               wait_for=(180,))
