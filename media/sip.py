"""A small SIP message codec (RFC 3261 over UDP): parse requests and responses, build replies
and in-dialog requests. Pure. Compact header forms are expanded; header names are
case-insensitive; multi-valued headers keep their order."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
           "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding", "o": "event"}
MAX_MESSAGE = 8192


class SipError(ValueError):
    pass


@dataclass
class Message:
    method: str | None            # None for a response
    uri: str | None
    status: int | None
    reason: str | None
    headers: list[tuple[str, str]] = field(default_factory=list)   # (lower-case name, value)
    body: str = ""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def all(self, name: str) -> list[str]:
        name = name.lower()
        out = []
        for key, value in self.headers:
            if key == name:
                out.extend(split_commas(value) if name in ("via", "record-route", "route") else [value])
        return out

    @property
    def call_id(self) -> str:
        return self.get("call-id", "")

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.get("cseq") or "").strip().partition(" ")
        try:
            return int(number), method.strip()
        except ValueError:
            raise SipError("malformed CSeq") from None

    @property
    def branch(self) -> str:
        via = self.all("via")
        m = re.search(r";\s*branch=([^;,\s]+)", via[0]) if via else None
        return m.group(1) if m else ""


def split_commas(value: str) -> list[str]:
    """Split a header value on commas outside <> and quotes."""
    out, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(value):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            out.append(value[start:i].strip())
            start = i + 1
    out.append(value[start:].strip())
    return [v for v in out if v]


def parse(data: bytes) -> Message:
    if len(data) > MAX_MESSAGE:
        raise SipError("message too large")
    text = data.decode("utf-8", errors="replace")
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        head, sep, body = text.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    first = lines[0].split(" ", 2)
    if len(first) < 3:
        raise SipError("malformed start line")
    if first[0] == "SIP/2.0":
        try:
            msg = Message(None, None, int(first[1]), first[2])
        except ValueError:
            raise SipError("malformed status line") from None
    else:
        if first[2].strip() != "SIP/2.0" or not re.fullmatch(r"[A-Z]{2,16}", first[0]):
            raise SipError("malformed request line")
        msg = Message(first[0], first[1], None, None)
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and msg.headers:   # folded continuation
            name, value = msg.headers[-1]
            msg.headers[-1] = (name, value + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipError(f"malformed header line {line[:40]!r}")
        name = name.strip().lower()
        msg.headers.append((COMPACT.get(name, name), value.strip()))
    length = msg.get("content-length")
    if length is not None:
        try:
            body = body[:int(length)]
        except ValueError:
            raise SipError("malformed Content-Length") from None
    msg.body = body
    for required in ("via", "from", "to", "call-id", "cseq"):
        if msg.get(required) is None:
            raise SipError(f"missing {required} header")
    msg.cseq  # validates
    return msg


def tag_of(value: str) -> str | None:
    m = re.search(r";\s*tag=([^;>\s]+)", value.split(">", 1)[-1] if ">" in value else value)
    return m.group(1) if m else None


def uri_of(value: str) -> str:
    """The URI inside a name-addr (<...>) or the addr-spec before its parameters."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def user_of(uri: str) -> str:
    m = re.match(r"sips?:([^@;>]+)@", uri)
    return m.group(1) if m else ""


def hostport_of(uri: str) -> tuple[str, int]:
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.split("@", 1)[-1].split(";", 1)[0].split(">", 1)[0].split("?", 1)[0]
    host, _, port = rest.partition(":")
    return host, int(port) if port.isdigit() else 5060


def response(req: Message, status: int, reason: str, to_tag: str | None = None,
             headers: list[tuple[str, str]] | None = None, body: str = "",
             content_type: str = "application/sdp") -> bytes:
    lines = [f"SIP/2.0 {status} {reason}"]
    for name, value in req.headers:
        if name == "via":
            lines.append(f"Via: {value}")
    to = req.get("to", "")
    if to_tag and tag_of(to) is None:
        to = f"{to};tag={to_tag}"
    lines += [f"From: {req.get('from')}", f"To: {to}", f"Call-ID: {req.call_id}", f"CSeq: {req.get('cseq')}"]
    if 100 < status < 300:
        lines += [f"Record-Route: {rr}" for rr in req.all("record-route")]
    lines += [f"{n}: {v}" for n, v in (headers or [])]
    lines.append("Server: kemi-media")
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def request(method: str, uri: str, headers: list[tuple[str, str]], body: str = "",
            content_type: str = "application/sdp") -> bytes:
    lines = [f"{method} {uri} SIP/2.0"] + [f"{n}: {v}" for n, v in headers]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def info_digit(msg: Message) -> str | None:
    """The digit of a SIP INFO (application/dtmf-relay 'Signal=5', or application/dtmf '5')."""
    ctype = (msg.get("content-type") or "").lower()
    body = msg.body.strip()
    if "dtmf-relay" in ctype:
        m = re.search(r"^\s*signal\s*=\s*(\S)", body, re.I | re.M)
        digit = m.group(1) if m else None
    elif "application/dtmf" in ctype:
        digit = body[:1] if len(body) == 1 else None
    else:
        return None
    return digit.upper() if digit and digit.upper() in "0123456789*#ABCD" else None
