"""A small SIP phone with a real RTP leg for the media service tests and the benchmark.

It places calls (directly to the media service, or through Kamailio with digest auth),
records every audio frame it receives, plays PCM, sends RFC 4733 digits or SIP INFO, and
hangs up. It reuses the service's own RTP engine (media.leg) for the media side, so the
audio checks exercise G.711 both ways. asyncio; tests run it with asyncio.run()."""
from __future__ import annotations

import asyncio
import hashlib
import re
import uuid

import numpy as np

from media import leg as legmod, sdp, sip


class Phone(asyncio.DatagramProtocol):
    def __init__(self, user: str = "tester", password: str | None = None, address: str = "127.0.0.1"):
        self.user, self.password, self.address = user, password, address
        self.transport = None
        self.clock: legmod.MediaClock | None = None
        self.waiters: dict[str, asyncio.Queue] = {}     # call-id -> responses and requests
        self.requests: list[sip.Message] = []
        self.offer_formats: str | None = None

    async def open(self) -> "Phone":
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.address, 0))
        self.clock = legmod.MediaClock(loop)
        self.clock.start()
        return self

    def close(self) -> None:
        self.clock.stop()
        self.transport.close()

    @property
    def port(self) -> int:
        return self.transport.get_extra_info("sockname")[1]

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            msg = sip.parse(data)
        except sip.SipError:
            return
        if msg.is_request:
            self.requests.append(msg)
            if msg.method in ("BYE", "NOTIFY", "INFO", "OPTIONS"):
                self.transport.sendto(sip.response(msg, 200, "OK"), addr)
        queue = self.waiters.get(msg.call_id)
        if queue is not None:
            queue.put_nowait(msg)

    async def call(self, target: tuple[str, int], ruri: str, headers: list[tuple[str, str]] = (),
                   wait_for: tuple[int, ...] = (183, 200)) -> "Call":
        call = Call(self, target, ruri, list(headers))
        await call.start(wait_for)
        return call


async def subscribe(phone: Phone, target, ruri: str, expires: int = 3600, event: str = "message-summary"):
    """SUBSCRIBE (with digest on 407); returns (final response, call-id). NOTIFYs land in
    phone.requests and are answered 200."""
    call_id = uuid.uuid4().hex + "@media-peer"
    tag = uuid.uuid4().hex[:8]
    queue: asyncio.Queue = asyncio.Queue()
    phone.waiters[call_id] = queue
    auth = None
    for cseq in (1, 2):
        headers = [("Via", f"SIP/2.0/UDP {phone.address}:{phone.port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport"),
                   ("Max-Forwards", "70"), ("From", f"<sip:{phone.user}@{target[0]}>;tag={tag}"),
                   ("To", f"<{ruri}>"), ("Call-ID", call_id), ("CSeq", f"{cseq} SUBSCRIBE"),
                   ("Contact", f"<sip:{phone.user}@{phone.address}:{phone.port}>"), ("Event", event),
                   ("Expires", str(expires)), ("Accept", "application/simple-message-summary")]
        if auth:
            headers.append(auth)
        phone.transport.sendto(sip.request("SUBSCRIBE", ruri, headers), target)
        while True:
            msg = await asyncio.wait_for(queue.get(), 10)
            if not msg.is_request and msg.cseq[1] == "SUBSCRIBE" and msg.status >= 200:
                break
        if msg.status == 407 and auth is None and phone.password:
            auth = ("Proxy-Authorization", digest("SUBSCRIBE", ruri, phone.user, phone.password,
                                                  msg.get("proxy-authenticate")))
            continue
        return msg, call_id
    return msg, call_id


async def register(phone: Phone, target, expires: int = 300) -> sip.Message:
    """REGISTER this phone's address for its user (digest on 401)."""
    call_id = uuid.uuid4().hex + "@media-peer"
    tag = uuid.uuid4().hex[:8]
    queue: asyncio.Queue = asyncio.Queue()
    phone.waiters[call_id] = queue
    ruri = f"sip:{target[0]}:{target[1]}"
    auth = None
    for cseq in (1, 2):
        headers = [("Via", f"SIP/2.0/UDP {phone.address}:{phone.port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport"),
                   ("Max-Forwards", "70"), ("From", f"<sip:{phone.user}@{target[0]}>;tag={tag}"),
                   ("To", f"<sip:{phone.user}@{target[0]}>"), ("Call-ID", call_id), ("CSeq", f"{cseq} REGISTER"),
                   ("Contact", f"<sip:{phone.user}@{phone.address}:{phone.port}>"), ("Expires", str(expires))]
        if auth:
            headers.append(auth)
        phone.transport.sendto(sip.request("REGISTER", ruri, headers), target)
        while True:
            msg = await asyncio.wait_for(queue.get(), 10)
            if not msg.is_request and msg.status >= 200:
                break
        if msg.status == 401 and auth is None:
            auth = ("Authorization", digest("REGISTER", ruri, phone.user, phone.password, msg.get("www-authenticate")))
            continue
        return msg
    return msg


def notifies(phone: Phone, call_id: str | None) -> list[sip.Message]:
    return [r for r in phone.requests if r.method == "NOTIFY" and (call_id is None or r.call_id == call_id)]


def digest(method: str, uri: str, user: str, password: str, challenge: str) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    if "auth" in params.get("qop", ""):
        cnonce, nc = uuid.uuid4().hex[:8], "00000001"
        resp = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{resp}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"')
    resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{resp}", algorithm=MD5'


class Call:
    def __init__(self, phone: Phone, target, ruri: str, headers):
        self.phone, self.target, self.ruri, self.extra = phone, target, ruri, headers
        self.call_id = uuid.uuid4().hex + "@media-peer"
        self.from_tag = uuid.uuid4().hex[:8]
        self.cseq = 1
        self.queue: asyncio.Queue = asyncio.Queue()
        phone.waiters[self.call_id] = self.queue
        self.leg: legmod.Leg | None = None
        self.responses: list[sip.Message] = []
        self.final: sip.Message | None = None
        self.answer: sip.Message | None = None     # the response that carried the SDP
        self.branch = ""
        self.ended_by_peer = asyncio.Event()

    def _invite(self, auth: tuple[str, str] | None) -> bytes:
        self.branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        p = self.phone
        headers = [("Via", f"SIP/2.0/UDP {p.address}:{p.port};branch={self.branch};rport"),
                   ("Max-Forwards", "70"), ("From", f"<sip:{p.user}@{self.target[0]}>;tag={self.from_tag}"),
                   ("To", f"<{self.ruri}>"), ("Call-ID", self.call_id), ("CSeq", f"{self.cseq} INVITE"),
                   ("Contact", f"<sip:{p.user}@{p.address}:{p.port}>")] + self.extra
        if auth:
            headers.append(auth)
        body = sdp.offer(p.address, self.leg.port, 1)
        if self.phone.offer_formats:   # e.g. "9 101": a phone that offers only G.722
            body = body.replace("RTP/AVP 0 8 101", f"RTP/AVP {self.phone.offer_formats}").replace(
                "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000", "a=rtpmap:9 G722/8000")
        return sip.request("INVITE", self.ruri, headers, body)

    async def start(self, wait_for) -> None:
        self.leg = await legmod.open_leg(self.phone.clock, self.phone.address, 0, 101, ("127.0.0.1", 9))
        self.leg.recording = []
        self.phone.transport.sendto(self._invite(None), self.target)
        authed = False
        while True:
            msg = await asyncio.wait_for(self._next_response(), 10)
            code = msg.status
            if code in (401, 407) and not authed and self.phone.password:
                self._ack_failure(msg)
                authed = True
                self.cseq += 1
                hdr = "Authorization" if code == 401 else "Proxy-Authorization"
                challenge = msg.get("www-authenticate" if code == 401 else "proxy-authenticate")
                self.phone.transport.sendto(self._invite((hdr, digest("INVITE", self.ruri, self.phone.user,
                                                                          self.phone.password, challenge))),
                                            self.target)
                continue
            if code >= 200 or code in wait_for:
                if code >= 300:
                    self.final = msg
                    self._ack_failure(msg)
                    self.leg.close()
                    return
                if code >= 200:
                    self.final = msg
                    self._ack_2xx(msg)
                if msg.body:
                    self._media(msg)
                return

    async def _next_response(self) -> sip.Message:
        while True:
            msg = await self.queue.get()
            if msg.is_request:
                if msg.method == "BYE":
                    self.ended_by_peer.set()
                continue
            if msg.cseq[1] != "INVITE":
                continue
            self.responses.append(msg)
            return msg

    def _media(self, msg: sip.Message) -> None:
        try:
            offer = sdp.parse_offer(msg.body)
        except sdp.SdpError:   # an answer in a codec this peer cannot play (transcoding tests)
            self.answer = msg
            return
        self.answer = msg
        self.leg.remote = (offer.address, offer.port)
        self.leg.payload_type, self.leg.event_type = offer.payload_type, offer.event_type
        self.leg.start()

    def _ack_failure(self, msg: sip.Message) -> None:
        p = self.phone
        headers = [("Via", f"SIP/2.0/UDP {p.address}:{p.port};branch={self.branch};rport"),
                   ("Max-Forwards", "70"), ("From", msg.get("from")), ("To", msg.get("to")),
                   ("Call-ID", self.call_id), ("CSeq", f"{self.cseq} ACK")]
        p.transport.sendto(sip.request("ACK", self.ruri, headers), self.target)

    def _in_dialog(self, method: str, msg: sip.Message, cseq: int, body: str = "", ctype: str = "") -> None:
        p = self.phone
        routes = list(reversed(msg.all("record-route")))
        contact = sip.uri_of(msg.get("contact") or self.ruri)
        headers = [("Via", f"SIP/2.0/UDP {p.address}:{p.port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport"),
                   ("Max-Forwards", "70")] + [("Route", r) for r in routes] + [
                   ("From", msg.get("from")), ("To", msg.get("to")), ("Call-ID", self.call_id),
                   ("CSeq", f"{cseq} {method}")]
        kw = {"content_type": ctype} if ctype else {}
        p.transport.sendto(sip.request(method, contact, headers, body, **kw), self.target)

    def _ack_2xx(self, msg: sip.Message) -> None:
        self._in_dialog("ACK", msg, self.cseq)

    # ------------------------------------------------------------ during the call
    def dtmf(self, digits: str) -> None:
        for d in digits:
            self.leg.send_digit(d)

    async def dtmf_slow(self, digits: str, gap: float = 0.15) -> None:
        for d in digits:
            self.leg.send_digit(d)
            await asyncio.sleep(gap)

    def info(self, digit: str) -> None:
        dialog = self.final or self.answer
        self.cseq += 1
        self._in_dialog("INFO", dialog, self.cseq, f"Signal={digit}\r\nDuration=160\r\n", "application/dtmf-relay")

    def play(self, pcm: np.ndarray, loops: int = 1):
        return self.leg.play(pcm, loops)

    def received(self) -> np.ndarray:
        chunks = self.leg.recording or []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def received_since(self, start: int) -> np.ndarray:
        return self.received()[start:]

    async def wait_final(self, timeout: float = 30) -> sip.Message:
        """For early-media apps: the final response (302 with the outcome)."""
        if self.final is None:
            while True:
                msg = await asyncio.wait_for(self._next_response(), timeout)
                if msg.status >= 200:
                    self.final = msg
                    if msg.status >= 300:
                        self._ack_failure(msg)
                    else:
                        self._ack_2xx(msg)
                    break
        return self.final

    async def wait_bye(self, timeout: float = 30) -> None:
        async def watch():
            while not self.ended_by_peer.is_set():
                try:
                    await self._next_response()
                except asyncio.CancelledError:
                    raise
        waiter = asyncio.ensure_future(watch())
        try:
            await asyncio.wait_for(self.ended_by_peer.wait(), timeout)
        finally:
            waiter.cancel()

    def bye(self) -> None:
        if self.final is not None and 200 <= self.final.status < 300:
            self.cseq += 1
            self._in_dialog("BYE", self.final, self.cseq)
        self.leg.close()

    def cancel(self) -> None:
        p = self.phone
        headers = [("Via", f"SIP/2.0/UDP {p.address}:{p.port};branch={self.branch};rport"),
                   ("Max-Forwards", "70"), ("From", f"<sip:{p.user}@{self.target[0]}>;tag={self.from_tag}"),
                   ("To", f"<{self.ruri}>"), ("Call-ID", self.call_id), ("CSeq", f"{self.cseq} CANCEL")]
        p.transport.sendto(sip.request("CANCEL", self.ruri, headers), self.target)
