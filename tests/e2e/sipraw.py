"""A tiny SIP client over raw sockets for the attack tests: it sends exactly the bytes a test
builds (malformed ones included), computes digest responses itself (with or without qop), and
reads replies with a bounded wait. UDP or TCP, from any loopback address and port."""
from __future__ import annotations

import hashlib
import re
import socket
import time
import uuid
from dataclasses import dataclass


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class Reply:
    raw: bytes

    @property
    def text(self) -> str:
        return self.raw.decode(errors="replace")

    @property
    def status(self) -> int:
        return int(self.text.split(" ", 2)[1])

    @property
    def reason(self) -> str:
        return self.text.split("\r\n", 1)[0].split(" ", 2)[2]

    def header(self, name: str) -> str | None:
        m = re.search(rf"^{re.escape(name)}\s*:\s*(.*?)\r?$", self.text, re.M | re.I)
        return m.group(1).strip() if m else None


def challenge_params(value: str) -> dict[str, str]:
    return {k.lower(): v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', value)}


def digest(method: str, uri: str, user: str, password: str, challenge: str, header: str,
           nc: int = 1, qop: bool = True, cnonce: str = "0a4f113b") -> str:
    """An Authorization / Proxy-Authorization header answering `challenge`."""
    p = challenge_params(challenge)
    ha1 = md5(f"{user}:{p['realm']}:{password}")
    ha2 = md5(f"{method}:{uri}")
    base = f'{header}: Digest username="{user}", realm="{p["realm"]}", nonce="{p["nonce"]}", uri="{uri}", '
    if qop and "qop" in p:
        ncs = f"{nc:08x}"
        resp = md5(f"{ha1}:{p['nonce']}:{ncs}:{cnonce}:auth:{ha2}")
        return base + f'response="{resp}", algorithm=MD5, qop=auth, nc={ncs}, cnonce="{cnonce}"'
    resp = md5(f"{ha1}:{p['nonce']}:{ha2}")
    return base + f'response="{resp}", algorithm=MD5'


class Client:
    """One socket bound to (ip, any port): send requests, collect replies."""

    def __init__(self, proxy: tuple[str, int], ip: str = "127.0.0.1", tcp: bool = False):
        self.proxy, self.ip, self.tcp = proxy, ip, tcp
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.port = self.sock.getsockname()[1]
        if tcp:
            self.sock.settimeout(5)
            self.sock.connect(proxy)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        if self.tcp:
            self.sock.sendall(data)
        else:
            self.sock.sendto(data, self.proxy)

    def _read_one(self, deadline: float) -> Reply | None:
        while True:
            if self.tcp:
                end = self.buffer.find(b"\r\n\r\n")
                if end >= 0:
                    m = re.search(rb"^content-length\s*:\s*(\d+)", self.buffer[:end], re.M | re.I)
                    total = end + 4 + (int(m.group(1)) if m else 0)
                    if len(self.buffer) >= total:
                        msg, self.buffer = self.buffer[:total], self.buffer[total:]
                        return Reply(msg)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except (socket.timeout, OSError):
                return None
            if not self.tcp:
                return Reply(data)
            if not data:
                return None
            self.buffer += data

    def final(self, timeout: float = 3.0) -> Reply | None:
        """The next final reply (provisional ones skipped), or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_one(deadline)
            if reply is None or not reply.text.startswith("SIP/2.0 1"):
                return reply

    def request(self, data: bytes, timeout: float = 3.0) -> Reply | None:
        self.send(data)
        return self.final(timeout)


def request(method: str, ruri: str, client: Client, from_user: str, to_user: str | None = None,
            call_id: str | None = None, cseq: int = 1, extra: str = "", body: str = "",
            domain: str | None = None, tag: str | None = None, contact: str | None = None) -> bytes:
    domain = domain or client.proxy[0]
    transport = "TCP" if client.tcp else "UDP"
    branch = "z9hG4bK" + uuid.uuid4().hex
    call_id = call_id or uuid.uuid4().hex
    to_user = to_user or from_user
    lines = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/{transport} {client.ip}:{client.port};branch={branch};rport",
             "Max-Forwards: 70",
             f"From: <sip:{from_user}@{domain}>;tag={tag or uuid.uuid4().hex[:8]}",
             f"To: <sip:{to_user}@{domain}>",
             f"Call-ID: {call_id}",
             f"CSeq: {cseq} {method}",
             f"Contact: {contact or f'<sip:{from_user}@{client.ip}:{client.port}>'}"]
    lines += [h for h in extra.split("\r\n") if h]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
