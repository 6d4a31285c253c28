"""The media service's SIP side: a UDP user agent server for the apps of the contract
(kemi/../contract: X-Kemi-App), one asyncio loop per process.

Requests accepted: INVITE (a new call: 100 Trying at once, then 183 + SDP for play/menu or
200 + SDP for voicemail/vmaccess), ACK, CANCEL, BYE, INFO (digits), OPTIONS (health: 200).
Final responses to INVITE are retransmitted (T1 doubling) until their ACK; a terminal app
that ends hangs up with an in-dialog BYE through the proxy's Record-Route.

Who may call: INVITEs only from the trusted addresses (the proxy); anyone else gets 403,
and replies to untrusted sources are rate limited (silently dropped beyond the limit).
Capacity: at most `max_legs` calls at once, then 503 with a reason.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from media import apps, leg as legmod, sdp, sip
from media.notifier import Notifier, Subscription
from media.leg import MediaClock

T1 = 0.5
STATS_TICKS = 500      # the lateness percentiles cover the last 10 s of media clock ticks
TIMER_H = 32.0


@dataclass
class Call:
    invite: sip.Message
    source: tuple[str, int]
    to_tag: str
    app: apps.App | None = None
    leg: legmod.Leg | None = None
    task: asyncio.Task | None = None
    final: bytes | None = None            # the final response, kept for retransmission
    last: bytes | None = None             # the last response sent (resent on INVITE retransmission)
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    confirmed: bool = False
    ended: bool = False
    cseq: int = 1
    position: int | None = None           # hold: the queue position the proxy reported last
    started: float = field(default_factory=time.monotonic)


class Bucket:
    """Token bucket per source address."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.state: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self.state.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self.state) > 10000:
            self.state.clear()
        if tokens < 1:
            self.state[key] = (tokens, now)
            return False
        self.state[key] = (tokens - 1, now)
        return True


class Service(Notifier, asyncio.DatagramProtocol):
    def __init__(self, address: str, port: int, trusted: set[str], store, runner_factory,
                 max_legs: int = 500, stats_path: Path | None = None, log=print):
        self.address, self.port = address, port
        self.trusted = trusted          # "ip" or "ip:port"
        self.store = store
        self.runner_factory = runner_factory
        self.max_legs = max_legs
        self.stats_path = stats_path
        self.log = log
        self.transport = None
        self.calls: dict[str, Call] = {}
        self.clock: MediaClock | None = None
        self.untrusted = Bucket(rate=5, burst=10)
        self.counters: dict[str, int] = {}
        self.jitter_samples: list[float] = []
        self.subs: dict[str, Subscription] = {}
        self.active = 0                 # calls with an app running (ended ones linger in `calls` for Timer H)
        self.outgoing: dict = {}        # callback: legs this service placed (media/uac.py), by Call-ID
        self.proxy: tuple[str, int] = ("127.0.0.1", 5060)   # callback: where outgoing legs are sent

    # ------------------------------------------------------------ plumbing
    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.clock = MediaClock(asyncio.get_running_loop())
        self.clock.start()

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def is_trusted(self, addr: tuple[str, int]) -> bool:
        return addr[0] in self.trusted or f"{addr[0]}:{addr[1]}" in self.trusted

    def datagram_received(self, data: bytes, addr) -> None:
        if data in (b"\r\n\r\n", b"\r\n"):   # keep-alive
            return
        try:
            msg = sip.parse(data)
        except sip.SipError as err:
            self.count("malformed")
            if self.untrusted.allow("log"):
                self.log(f"malformed SIP from {addr[0]}:{addr[1]} dropped: {err}")
            return
        try:
            if msg.is_request:
                self.on_request(msg, addr)
            else:
                self.on_response(msg, addr)
        except Exception as err:   # never let one message stop the service
            self.count("errors")
            self.log(f"error handling {msg.method or msg.status} {msg.call_id}: {err!r}")
            if msg.is_request and msg.method != "ACK":
                self.send(sip.response(msg, 500, "Server Internal Error - media service"), addr)

    def reply(self, msg: sip.Message, addr, status: int, reason: str, call: Call | None = None, **kw) -> bytes:
        data = sip.response(msg, status, reason, to_tag=call.to_tag if call else uuid.uuid4().hex[:8], **kw)
        self.send(data, addr)
        return data

    # ------------------------------------------------------------ requests
    def on_request(self, msg: sip.Message, addr) -> None:
        method = msg.method
        if method == "OPTIONS":
            if self.is_trusted(addr) or self.untrusted.allow(addr[0]):
                self.reply(msg, addr, 200, "OK", headers=[("Allow", "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS")])
            return
        if method == "SUBSCRIBE":
            self.on_subscribe(msg, addr)
            return
        out = self.outgoing.get(msg.call_id)   # callback: a request within a leg this service placed
        if out is not None:
            out.on_request(msg, addr)
            return
        call = self.calls.get(msg.call_id)
        if method == "INVITE" and call is None and sip.tag_of(msg.get("to", "")) is None:
            self.new_call(msg, addr)
        elif call is None:
            if method != "ACK" and (self.is_trusted(addr) or self.untrusted.allow(addr[0])):
                self.reply(msg, addr, 481, "Call/Transaction Does Not Exist")
        elif method == "INVITE":
            if msg.branch == call.invite.branch and call.last:   # retransmission
                self.send(call.last, addr)
            else:                                                 # re-INVITE: keep the media as it is
                self.reply(msg, addr, 488, "Not Acceptable Here - re-INVITE not supported by the media service", call)
        elif method == "ACK":
            call.acked.set()
            if call.final and call.final.startswith(b"SIP/2.0 2"):
                call.confirmed = True
        elif method == "CANCEL":
            self.reply(msg, addr, 200, "OK", call)
            if call.final is None:
                self.finish(call, 487, "Request Terminated")
        elif method == "BYE":
            self.reply(msg, addr, 200, "OK", call)
            self.hang_up(call, "caller hung up")
        elif method == "INFO" and "x-kemi-position" in (msg.get("content-type") or "").lower():
            ok = msg.body.strip().isdigit() and len(msg.body.strip()) <= 6
            self.reply(msg, addr, 200 if ok else 400, "OK" if ok else "Bad Request - position must be a number", call)
            if ok:
                call.position = int(msg.body.strip())
        elif method == "INFO":
            digit = sip.info_digit(msg)
            self.reply(msg, addr, 200 if digit or not msg.body else 415,
                       "OK" if digit or not msg.body else "Unsupported Media Type - DTMF INFO only", call)
            if digit and call.leg:
                self.count("info_digits")
                call.leg.digit(digit)
        else:
            self.reply(msg, addr, 405, "Method Not Allowed", call,
                       headers=[("Allow", "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS")])

    def new_call(self, msg: sip.Message, addr) -> None:
        if not self.is_trusted(addr):
            self.count("untrusted")
            if self.untrusted.allow(addr[0]):
                self.log(f"INVITE from untrusted {addr[0]}:{addr[1]} refused")
                self.reply(msg, addr, 403, "Forbidden - the media service is reached through the proxy only")
            return
        call = Call(msg, addr, uuid.uuid4().hex[:10])
        call.last = self.reply(msg, addr, 100, "Trying", call)
        if self.active >= self.max_legs:
            self.count("full")
            self.log(f"call {msg.call_id} refused: {self.active} legs, the limit")
            self.reply(msg, addr, 503, "Service Unavailable - media service at capacity", call,
                       headers=[("Retry-After", "5")])
            return
        try:
            call.app = apps.parse(msg.get("x-kemi-app"))
            if isinstance(call.app, apps.Mwi):
                raise apps.AppError(400, "Bad Request - the mwi app is for SUBSCRIBE")
            offer = sdp.parse_offer(msg.body)
        except (apps.AppError, sdp.SdpError) as err:
            self.count("bad_request")
            self.log(f"call {msg.call_id} refused: {err.status} {err.reason}")
            self.reply(msg, addr, err.status, err.reason, call)
            return
        self.calls[msg.call_id] = call
        self.active += 1
        self.count("calls")
        call.task = asyncio.get_running_loop().create_task(self.run(call, offer))

    async def run(self, call: Call, offer: sdp.Offer) -> None:
        runner = self.runner_factory(self, call)
        try:
            call.leg = await legmod.open_leg(self.clock, self.address, offer.payload_type, offer.event_type,
                                            (offer.address, offer.port), self.log)
            refusal = await runner.check()
            if refusal is not None:
                self.finish(call, *refusal)
                return
            body = sdp.answer(offer, self.address, call.leg.port, random.getrandbits(31))
            contact = [("Contact", f"<sip:{self.address}:{self.port}>")]
            if isinstance(call.app, apps.TERMINAL):
                call.final = call.last = self.reply(call.invite, call.source, 200, "OK", call,
                                                    headers=contact, body=body)
                self.retransmit(call)
            else:
                call.last = self.reply(call.invite, call.source, 183, "Session Progress", call,
                                       headers=contact, body=body)
            call.leg.start()
            outcome = await runner.run()
            if isinstance(call.app, apps.TERMINAL):
                self.bye(call)
            else:
                self.finish(call, 302, "Moved Temporarily", outcome=outcome)
        except asyncio.CancelledError:
            await runner.cancelled()
        except Exception as err:
            self.count("errors")
            self.log(f"call {call.invite.call_id}: app {call.app} failed: {err!r}")
            if call.final is None and isinstance(call.app, apps.TERMINAL):
                self.finish(call, 503, "Service Unavailable - voicemail storage unavailable")
            elif call.final is None:
                self.finish(call, 302, "Moved Temporarily", outcome=("error", ""))
            else:
                self.bye(call)
        finally:
            self.release(call)

    def finish(self, call: Call, status: int, reason: str, outcome: tuple[str, str] | None = None) -> None:
        """Send the INVITE's final non-2xx response (retransmitted until ACK)."""
        if call.final is not None or call.ended:
            return
        headers = [("Contact", f"<sip:{self.address}:{self.port}>")] if status == 302 else []
        if outcome:
            headers.append(("X-Kemi-Outcome", outcome[0]))
            if outcome[0] == "digits":
                headers.append(("X-Kemi-Digits", outcome[1]))
        call.final = call.last = self.reply(call.invite, call.source, status, reason, call, headers=headers)
        call.ended = True
        self.retransmit(call)
        if call.task and asyncio.current_task() is not call.task:
            call.task.cancel()
        self.calls.setdefault(call.invite.call_id, call)
        asyncio.get_running_loop().call_later(TIMER_H, self.calls.pop, call.invite.call_id, None)

    def retransmit(self, call: Call) -> None:
        async def loop():
            interval = T1
            deadline = time.monotonic() + TIMER_H
            while not call.acked.is_set() and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(call.acked.wait(), interval)
                except asyncio.TimeoutError:
                    self.send(call.final, call.source)
                    interval = min(interval * 2, 4.0)
        asyncio.get_running_loop().create_task(loop())

    def hang_up(self, call: Call, why: str) -> None:
        call.ended = True
        if call.task and not call.task.done():
            call.task.cancel()

    def bye(self, call: Call) -> None:
        """End a confirmed call from our side: BYE to the caller's Contact via the route set."""
        if call.ended:
            return
        call.ended = True
        inv = call.invite
        routes = inv.all("record-route")          # UAS: in the order received
        contact = sip.uri_of(inv.get("contact") or inv.get("from"))
        target = sip.hostport_of(routes[0] if routes else contact)
        if not routes:
            target = call.source
        call.cseq += 1
        to = inv.get("to")
        headers = [("Via", f"SIP/2.0/UDP {self.address}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport"),
                   ("Max-Forwards", "70")] + [("Route", r) for r in routes] + [
                   ("From", f"{to};tag={call.to_tag}" if sip.tag_of(to) is None else to),
                   ("To", inv.get("from")), ("Call-ID", inv.call_id), ("CSeq", f"{call.cseq} BYE")]
        data = sip.request("BYE", contact, headers)
        # the BYE's response is not awaited; resend it twice in case one is lost
        self.send(data, target)
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, self.send, data, target)
        loop.call_later(1.5, self.send, data, target)

    def release(self, call: Call) -> None:
        self.active -= 1
        if call.leg is not None:
            if call.leg.received:
                self.jitter_samples.append(call.leg.jitter_ms())
                del self.jitter_samples[:-5000]
            call.leg.close()
        asyncio.get_running_loop().call_later(TIMER_H if call.final else 0, self.calls.pop, call.invite.call_id, None)

    def on_response(self, msg: sip.Message, addr) -> None:
        out = self.outgoing.get(msg.call_id)   # callback: responses to the legs this service placed
        if out is not None and self.is_trusted(addr):
            out.on_response(msg)
        # other responses (to our BYEs): nothing to do

    # ------------------------------------------------------------ statistics
    def stats(self) -> dict:
        late = list(self.clock.lateness)[-STATS_TICKS:] if self.clock else []
        return {"time": time.time(), "legs": sum(1 for c in self.calls.values() if c.leg and not c.ended),
                "active": self.active,
                "calls_tracked": len(self.calls), "ticks": self.clock.ticks if self.clock else 0,
                "lateness_ms_p50": 1000 * legmod.percentile(late, 50),
                "lateness_ms_p99": 1000 * legmod.percentile(late, 99),
                "lateness_ms_max": 1000 * max(late, default=0.0),
                "jitter_ms_p50": legmod.percentile(self.jitter_samples, 50),
                "jitter_ms_p99": legmod.percentile(self.jitter_samples, 99),
                "counters": dict(self.counters)}

    async def report(self, every: float = 2.0) -> None:
        while True:
            await asyncio.sleep(every)
            if self.stats_path:
                tmp = self.stats_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.stats()))
                tmp.replace(self.stats_path)
