"""A tiny SIP phone in Python for the tests SIPp cannot express: a phone behind NAT (it sends
from 127.0.0.1:PORT but writes another address in Via, Contact and SDP), BLF subscriptions
(SUBSCRIBE and the NOTIFYs that follow, on another Call-ID than SIPp would accept), feature
codes with immediate answers. UDP only, digest auth (MD5, qop=auth), one thread that answers
requests: INVITE (180 then 200 with SDP, or a given code), BYE, OPTIONS, NOTIFY, re-INVITE.
Every received message is kept for assertions."""
from __future__ import annotations

import hashlib
import itertools
import os
import queue
import re
import socket
import threading
import time
from dataclasses import dataclass, field

_ids = itertools.count(1)


@dataclass
class Message:
    first: str
    headers: list[tuple[str, str]]
    body: str
    source: tuple[str, int] = ("", 0)
    at: float = field(default_factory=time.monotonic)

    @property
    def is_request(self) -> bool:
        return not self.first.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        return self.first.split()[0] if self.is_request else self.get("CSeq").split()[1]

    @property
    def status(self) -> int:
        return 0 if self.is_request else int(self.first.split()[1])

    @property
    def reason(self) -> str:
        return self.first.split(" ", 2)[2] if not self.is_request else ""

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return default

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def text(self) -> str:
        return self.first + "\n" + "\n".join(f"{k}: {v}" for k, v in self.headers) + "\n\n" + self.body


def parse(data: bytes, source=("", 0)) -> Message:
    text = data.decode(errors="replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
        elif ":" in line:
            key, value = line.split(":", 1)
            headers.append((key.strip(), value.strip()))
    return Message(lines[0], headers, body, source)


def _digest(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params["realm"], params["nonce"]
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    out = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
    if "auth" in params.get("qop", "").split(","):
        cnonce, nc = os.urandom(4).hex(), "00000001"
        response = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        out += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    if "opaque" in params:
        out += f', opaque="{params["opaque"]}"'
    return out + f', response="{response}"'


class RawPhone:
    def __init__(self, proxy: tuple[str, int], number: str, password: str,
                 advertise: tuple[str, int] | None = None, media_port: int = 0,
                 answer_code: int = 200, ring_ms: int = 100):
        self.proxy, self.number, self.password = proxy, number, password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        # What the phone writes about itself (a NATed phone: its private address).
        self.host, self.sip_port = advertise or ("127.0.0.1", self.port)
        self.media_port = media_port
        self.answer_code, self.ring_ms = answer_code, ring_ms
        self.reliable_offer = False   # callee: a late offer answered with a reliable 183 (100rel) carrying the offer
        self.domain = proxy[0]
        self.received: list[Message] = []
        self.responses: queue.Queue[Message] = queue.Queue()
        self.cseq = itertools.count(1)
        self.pracked: set[tuple[str, str]] = set()   # (Call-ID, RSeq) of reliable 18x answered by PRACK
        self.pending: dict[str, tuple] = {}     # call-id -> the INVITE's (uri, Via, From, To, CSeq), for CANCEL
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    # ------------------------------------------------------------ plumbing

    def send(self, text: str) -> None:
        self.sock.sendto(text.replace("\n", "\r\n").encode(), self.proxy)

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while self.running:
            try:
                data, source = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data.strip():
                continue
            msg = parse(data, source)
            self.received.append(msg)
            if msg.is_request:
                self._answer(msg)
            else:
                if (100 < msg.status < 200 and "100rel" in msg.get("Require") and msg.method == "INVITE"
                        and (msg.get("Call-ID"), msg.get("RSeq")) not in self.pracked):
                    self.pracked.add((msg.get("Call-ID"), msg.get("RSeq")))
                    self._in_dialog(msg, "PRACK", int(msg.get("CSeq").split()[0]) + 1, self.sdp("p"),
                                    extra=f"RAck: {msg.get('RSeq')} {msg.get('CSeq')}")
                self.responses.put(msg)

    def stop(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()

    def requests(self, method: str) -> list[Message]:
        return [m for m in self.received if m.is_request and m.method == method]

    def sdp(self, session: str = "1") -> str:
        return (f"v=0\no=phone {session} {session} IN IP4 {self.host}\ns=-\nc=IN IP4 {self.host}\nt=0 0\n"
                f"m=audio {self.media_port} RTP/AVP 0\na=rtpmap:0 PCMU/8000\n")

    def _reply(self, req: Message, code: int, reason: str, to_tag: str = "", body: str = "",
               extra: str = "") -> None:
        to = req.get("To")
        if to_tag and ";tag=" not in to:
            to += f";tag={to_tag}"
        lines = [f"SIP/2.0 {code} {reason}"] + [f"Via: {v}" for v in req.all("Via")]
        lines += [f"Record-Route: {r}" for r in req.all("Record-Route")]
        lines += [f"From: {req.get('From')}", f"To: {to}", f"Call-ID: {req.get('Call-ID')}",
                  f"CSeq: {req.get('CSeq')}", f"Contact: <sip:{self.number}@{self.host}:{self.sip_port}>"]
        if extra:
            lines.append(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.replace(chr(10), chr(13) + chr(10)))}")
        self.send("\n".join(lines) + "\n\n" + body)

    def _answer(self, req: Message) -> None:
        method = req.method
        if method == "INVITE":
            tag = f"t{self.port}"
            in_dialog = ";tag=" in req.get("To")
            replaces = req.get("Replaces")
            if replaces:   # RFC 3891: a colleague picks up our ringing call: take it, cancel ours
                self._reply(req, 200, "OK", tag, self.sdp())
                self.cancel(replaces.split(";")[0].strip())
                return
            if self.reliable_offer and not in_dialog and not req.body.strip():
                self._reply(req, 183, "Session Progress", tag, self.sdp(), extra="Require: 100rel\nRSeq: 1")
                self._await_prack = (req, tag)
                return
            if not in_dialog:
                self._reply(req, 180, "Ringing", tag)
                if self.answer_code != 200:
                    self._reply(req, self.answer_code, "Busy Here", tag)
                    return
                time.sleep(self.ring_ms / 1000)
            self._reply(req, 200, "OK", tag, self.sdp("2" if in_dialog else "1"))
        elif method == "PRACK":
            self._reply(req, 200, "OK")
            invite, tag = getattr(self, "_await_prack", (None, None))
            if invite is not None:      # offer and answer are done: the 200 OK carries no SDP
                self._await_prack = (None, None)
                self._reply(invite, 200, "OK", tag)
        elif method == "UPDATE" and req.body.strip():
            self._reply(req, 200, "OK", "", self.sdp("u"))
        elif method in ("BYE", "OPTIONS", "NOTIFY", "CANCEL", "UPDATE"):
            self._reply(req, 200, "OK")
            if method == "CANCEL":
                pass
        # ACK: nothing to answer

    # ------------------------------------------------------------ requests

    def request(self, method: str, uri: str, to: str | None = None, headers: str = "", body: str = "",
                call_id: str | None = None, timeout: float = 10, from_tag: str | None = None,
                to_tag: str = "", route: list[str] | None = None) -> Message:
        """Send a request, authenticate once if challenged, return the final response."""
        call_id = call_id or f"raw{next(_ids)}-{os.getpid()}-{self.port}@test"
        from_tag = from_tag or f"f{next(_ids)}"
        to = to or uri
        auth = ""
        for _attempt in range(2):
            cseq = next(self.cseq)
            branch = f"z9hG4bK{os.urandom(6).hex()}"
            lines = [f"{method} {uri} SIP/2.0",
                     f"Via: SIP/2.0/UDP {self.host}:{self.sip_port};branch={branch}",   # no rport: a plain NAT
                     "Max-Forwards: 70",
                     f"From: <sip:{self.number}@{self.domain}>;tag={from_tag}",
                     f"To: <{to}>" + (f";tag={to_tag}" if to_tag else ""),
                     f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
                     f"Contact: <sip:{self.number}@{self.host}:{self.sip_port}>"]
            lines += [f"Route: {r}" for r in (route or [])]
            lines += [h for h in headers.splitlines() if h.strip()]
            if auth:
                lines.append(auth)
            if body:
                lines.append("Content-Type: " + ("application/sdp" if body.startswith("v=0") else "text/plain"))
            lines.append(f"Content-Length: {len(body.replace(chr(10), chr(13) + chr(10)))}")
            self.send("\n".join(lines) + "\n\n" + body)
            if method == "INVITE":
                self.pending[call_id] = (uri, lines[1], lines[3], lines[4], cseq)
            final = self._final(call_id, cseq, timeout, method)
            if method == "INVITE" and final.status >= 300:
                self._ack(final, uri, branch)
            if final.status in (401, 407) and not auth:
                name = "Authorization" if final.status == 401 else "Proxy-Authorization"
                challenge = final.get("WWW-Authenticate" if final.status == 401 else "Proxy-Authenticate")
                auth = f"{name}: " + _digest(challenge, method, uri, self.number, self.password)
                continue
            return final
        return final

    def _final(self, call_id: str, cseq: int, timeout: float, method: str = "") -> Message:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no final response for {call_id} CSeq {cseq}")
            try:
                msg = self.responses.get(timeout=left)
            except queue.Empty:
                continue
            if (msg.get("Call-ID") == call_id and msg.get("CSeq").split()[0] == str(cseq) and msg.status >= 200
                    and (not method or msg.method == method)):
                return msg

    def _ack(self, final: Message, uri: str, branch: str) -> None:
        self.send("\n".join([f"ACK {uri} SIP/2.0", f"Via: SIP/2.0/UDP {self.host}:{self.sip_port};branch={branch}",
                             "Max-Forwards: 70", f"From: {final.get('From')}", f"To: {final.get('To')}",
                             f"Call-ID: {final.get('Call-ID')}", f"CSeq: {final.get('CSeq').split()[0]} ACK",
                             "Content-Length: 0"]) + "\n\n")

    def cancel(self, call_id: str) -> None:
        pending = self.pending.get(call_id)
        if pending is None:
            return
        uri, via, from_, to, cseq = pending
        self.send("\n".join([f"CANCEL {uri} SIP/2.0", via, "Max-Forwards: 70", from_, to, f"Call-ID: {call_id}",
                             f"CSeq: {cseq} CANCEL", "Content-Length: 0"]) + "\n\n")

    def register(self, expires: int = 300) -> Message:
        return self.request("REGISTER", f"sip:{self.domain}", to=f"sip:{self.number}@{self.domain}",
                            headers=f"Expires: {expires}")

    # ------------------------------------------------------------ calls placed by this phone

    def call(self, dial: str, timeout: float = 20) -> Message:
        """INVITE (with SDP naming this phone's media port); returns the final response."""
        return self.request("INVITE", f"sip:{dial}@{self.domain}", body=self.sdp(), timeout=timeout)

    @staticmethod
    def _tag(header: str) -> str:
        match = re.search(r";tag=([^;>\s]+)", header)
        return match.group(1) if match else ""

    def _in_dialog(self, answer: Message, method: str, cseq: int, body: str = "", extra: str = "") -> str:
        target = re.search(r"<([^>]+)>", answer.get("Contact")).group(1)
        routes = [r.strip() for rr in answer.all("Record-Route") for r in rr.split(",")][::-1]
        lines = [f"{method} {target} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.host}:{self.sip_port};branch=z9hG4bK{os.urandom(6).hex()}",
                 "Max-Forwards: 70", f"From: {answer.get('From')}", f"To: {answer.get('To')}",
                 f"Call-ID: {answer.get('Call-ID')}", f"CSeq: {cseq} {method}",
                 f"Contact: <sip:{self.number}@{self.host}:{self.sip_port}>"]
        lines += [f"Route: {r}" for r in routes]
        if extra:
            lines.append(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.replace(chr(10), chr(13) + chr(10)))}")
        self.send("\n".join(lines) + "\n\n" + body)
        return answer.get("Call-ID")

    def ack(self, answer: Message, body: str = "") -> None:
        self._in_dialog(answer, "ACK", int(answer.get("CSeq").split()[0]), body)

    def update(self, answer: Message, timeout: float = 10) -> Message:
        """An UPDATE with a new offer in the dialog of `answer`; returns its final response."""
        cseq = next(self.cseq) + 100
        call_id = self._in_dialog(answer, "UPDATE", cseq, self.sdp("3"))
        return self._final(call_id, cseq, timeout, "UPDATE")

    def bye(self, answer: Message, timeout: float = 10) -> Message:
        cseq = next(self.cseq) + 100
        call_id = self._in_dialog(answer, "BYE", cseq)
        return self._final(call_id, cseq, timeout, "BYE")
