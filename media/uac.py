"""Outgoing legs of the media service (issue 14): a call placed THROUGH the proxy, never
straight to a trunk. The INVITE carries an SDP offer for the leg's own RTP socket and the
headers the caller gives (e.g. `X-Kemi-Origin: callback;number=N`, which the proxy trusts
only from this service's SIP address). Handles 1xx, 2xx (+ ACK, to every retransmitted 2xx),
3xx-6xx (+ ACK), CANCEL when the far end rings too long, BYE both ways, and timeouts:
no response at all within TIMER_B -> 408; ringing beyond `ring_timeout` -> CANCEL -> 487.

The service (media/service.py) hands every response and in-dialog request whose Call-ID is
in `service.outgoing` to the OutgoingCall here.
"""
from __future__ import annotations

import asyncio
import random
import uuid

from media import leg as legmod, sdp, sip

T1 = 0.5
TIMER_B = 32.0           # no response at all to the INVITE
CANCEL_WAIT = 4.0        # after CANCEL, the 487 should come within this
LINGER = 32.0            # a finished call stays known for late retransmissions


class OutgoingCall:
    def __init__(self, service, number: str, from_user: str, headers: list[tuple[str, str]] = ()):
        self.service = service
        self.number = number
        self.from_user = from_user
        self.extra = list(headers)
        self.proxy: tuple[str, int] = service.proxy
        self.call_id = f"{uuid.uuid4().hex}@kemi-media"
        self.from_tag = uuid.uuid4().hex[:10]
        self.ruri = f"sip:{number}@{self.proxy[0]}:{self.proxy[1]}"
        self.branch = ""
        self.cseq = 1
        self.leg: legmod.Leg | None = None
        self.status = 0
        self.reason = ""
        self.provisional = asyncio.Event()
        self.final = asyncio.Event()
        self.ended = asyncio.Event()        # the dialog is over (either side)
        self.answered_at: float | None = None
        self.ok: sip.Message | None = None  # the 2xx
        self.routes: list[str] = []
        self.target = ""
        self.ended_by_peer = False

    def log(self, text: str) -> None:
        self.service.log(f"outgoing {self.call_id} to {self.number}: {text}")

    @property
    def address(self) -> str:
        return self.service.address

    def _via(self, branch: str) -> tuple[str, str]:
        return "Via", f"SIP/2.0/UDP {self.address}:{self.service.port};branch={branch};rport"

    def _send(self, data: bytes, dest: tuple[str, int] | None = None) -> None:
        self.service.send(data, dest or self.proxy)

    # ------------------------------------------------------------ INVITE
    def _invite(self) -> bytes:
        headers = [self._via(self.branch), ("Max-Forwards", "70"),
                   ("From", f"<sip:{self.from_user}@{self.address}:{self.service.port}>;tag={self.from_tag}"),
                   ("To", f"<sip:{self.number}@{self.proxy[0]}>"), ("Call-ID", self.call_id),
                   ("CSeq", f"{self.cseq} INVITE"),
                   ("Contact", f"<sip:{self.from_user}@{self.address}:{self.service.port}>")] + self.extra
        return sip.request("INVITE", self.ruri, headers,
                           sdp.offer(self.address, self.leg.port, random.getrandbits(31)))

    async def start(self, ring_timeout: float) -> int:
        """Place the call; returns the final status (200: answered; 408: no answer in time or
        no response; 487: cancelled by us)."""
        self.leg = await legmod.open_leg(self.service.clock, self.address, 0, 101, ("127.0.0.1", 9), self.log)
        self.service.outgoing[self.call_id] = self
        self.service.count("outgoing")
        self.branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        invite = self._invite()
        loop = asyncio.get_running_loop()
        started = loop.time()
        interval = T1
        self._send(invite)
        try:
            while not self.provisional.is_set() and not self.final.is_set():   # Timer A / B
                if loop.time() - started > TIMER_B:
                    return self._fail(408, "no response")
                try:
                    await asyncio.wait_for(self._any_response(), interval)
                except asyncio.TimeoutError:
                    self._send(invite)
                    interval = min(interval * 2, 4.0)
            remaining = ring_timeout - (loop.time() - started)
            try:
                await asyncio.wait_for(self.final.wait(), max(0.1, remaining))
            except asyncio.TimeoutError:
                self.log(f"no answer within {ring_timeout:.0f} s: CANCEL")
                self._cancel()
                try:
                    await asyncio.wait_for(self.final.wait(), CANCEL_WAIT)
                except asyncio.TimeoutError:
                    return self._fail(408, "no answer")
                if self.status == 200:     # answered while we cancelled: hang up at once
                    self.bye()
                    self.status = 408
                return self.status if self.status != 200 else 408
            return self.status
        except asyncio.CancelledError:
            if not self.final.is_set():
                self._cancel()
            else:
                self.bye()
            self.close()
            raise

    async def _any_response(self) -> None:
        waits = [asyncio.ensure_future(self.provisional.wait()), asyncio.ensure_future(self.final.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def _fail(self, status: int, why: str) -> int:
        self.status, self.reason = status, why
        self.log(f"failed: {status} {why}")
        self.ended.set()
        self.close()
        return status

    def _cancel(self) -> None:
        headers = [self._via(self.branch), ("Max-Forwards", "70"),
                   ("From", f"<sip:{self.from_user}@{self.address}:{self.service.port}>;tag={self.from_tag}"),
                   ("To", f"<sip:{self.number}@{self.proxy[0]}>"), ("Call-ID", self.call_id),
                   ("CSeq", f"{self.cseq} CANCEL")]
        self._send(sip.request("CANCEL", self.ruri, headers))

    # ------------------------------------------------------------ from the service
    def on_response(self, msg: sip.Message) -> None:
        number, method = msg.cseq
        if method != "INVITE" or number != self.cseq:
            return     # responses to our BYE / CANCEL
        if msg.status < 200:
            self.provisional.set()
            return
        if 200 <= msg.status < 300:
            if self.ok is None:
                self.ok = msg
                self.routes = list(reversed(msg.all("record-route")))
                self.target = sip.uri_of(msg.get("contact") or self.ruri)
                if not self.final.is_set():
                    self._media(msg)
            self._ack(msg)     # every 2xx retransmission is ACKed again
            if not self.final.is_set():
                self.status, self.reason = 200, msg.reason or "OK"
                self.answered_at = asyncio.get_running_loop().time()
                self.final.set()
            return
        headers = [self._via(self.branch), ("Max-Forwards", "70"), ("From", msg.get("from")),
                   ("To", msg.get("to")), ("Call-ID", self.call_id), ("CSeq", f"{self.cseq} ACK")]
        self._send(sip.request("ACK", self.ruri, headers))
        if not self.final.is_set():
            self.status, self.reason = msg.status, msg.reason or ""
            self.log(f"answered {msg.status} {msg.reason}")
            self.final.set()
            self.ended.set()
            self.close()

    def _media(self, msg: sip.Message) -> None:
        try:
            answer = sdp.parse_offer(msg.body)
        except sdp.SdpError as err:
            self.log(f"unusable SDP answer: {err.reason}")
            return
        self.leg.remote = (answer.address, answer.port)
        self.leg.payload_type, self.leg.event_type = answer.payload_type, answer.event_type
        self.leg.start()

    def _in_dialog(self, method: str, cseq: int) -> None:
        msg = self.ok
        headers = [self._via("z9hG4bK" + uuid.uuid4().hex[:16]), ("Max-Forwards", "70")]
        headers += [("Route", r) for r in self.routes]
        headers += [("From", msg.get("from")), ("To", msg.get("to")), ("Call-ID", self.call_id),
                    ("CSeq", f"{cseq} {method}")]
        dest = sip.hostport_of(self.routes[0]) if self.routes else sip.hostport_of(self.target)
        self._send(sip.request(method, self.target, headers), dest)

    def _ack(self, msg: sip.Message) -> None:
        self._in_dialog("ACK", self.cseq)

    def on_request(self, msg: sip.Message, addr) -> None:
        if not self.service.is_trusted(addr):
            return
        if msg.method == "BYE":
            self.service.send(sip.response(msg, 200, "OK"), addr)
            if not self.ended.is_set():
                self.log("the far end hung up")
                self.ended_by_peer = True
                self.ended.set()
        elif msg.method == "INFO":
            digit = sip.info_digit(msg)
            self.service.send(sip.response(msg, 200, "OK"), addr)
            if digit and self.leg is not None:
                self.leg.digit(digit)
        elif msg.method in ("OPTIONS", "UPDATE"):
            self.service.send(sip.response(msg, 200, "OK"), addr)
        elif msg.method == "INVITE":
            self.service.send(sip.response(msg, 488, "Not Acceptable Here - re-INVITE not supported"), addr)
        elif msg.method != "ACK":
            self.service.send(sip.response(msg, 405, "Method Not Allowed"), addr)

    # ------------------------------------------------------------ hang up
    def bye(self) -> None:
        """Our side ends an answered call (BYE resent twice in case one is lost)."""
        if self.ok is None or self.ended.is_set():
            self.ended.set()
            self.close()
            return
        self.ended.set()
        self.cseq += 1
        cseq = self.cseq
        self._in_dialog("BYE", cseq)
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, self._in_dialog, "BYE", cseq)
        self.close()

    def close(self) -> None:
        if self.leg is not None:
            self.leg.close()
        loop = asyncio.get_running_loop()
        loop.call_later(LINGER, self.service.outgoing.pop, self.call_id, None)

    def talk_seconds(self) -> float:
        if self.answered_at is None:
            return 0.0
        return asyncio.get_running_loop().time() - self.answered_at
