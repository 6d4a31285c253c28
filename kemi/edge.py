"""The edge's decisions (issue 9): what to do with a request or a reply before any routing.
Pure code: facts in, a verdict out; kemi/guard.py reads the facts and applies the verdict.

Verdicts:
- `Drop(reason)`: no reply at all (scanners, banned or flooding sources, stray responses).
  Silence costs an attacker time and tells a scanner nothing.
- `Refuse(status, reason, headers)`: a reply that says what is wrong (RFC 3261 8.2.2:
  416 unknown URI scheme, 420 + Unsupported for Proxy-Require, 505 for another version).
- None: go on.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# User-Agents of SIP scanners and war-dialers. Their requests are dropped without a reply.
SCANNER_UA = re.compile(r"friendly-scanner|sipvicious|sipcli|sip-scan|sipscan|sundayddr|iwar|smap|"
                        r"vaxsipuseragent|vaxipuseragent|pplsip|sipptk|sivus|fx-scanner", re.I)
SCHEMES = ("sip", "sips")
VERSION = "SIP/2.0"
TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]{1,64}")


@dataclass(frozen=True)
class Drop:
    reason: str


@dataclass(frozen=True)
class Refuse:
    status: int
    reason: str
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestFacts:
    """What the screen needs of a request (read safely: any bytes become text)."""
    method: str
    ruri: str | None          # None: unreadable (not valid UTF-8), not checked here
    version: str | None
    user_agent: str = ""
    proxy_require: str = ""


def is_scanner(user_agent: str) -> bool:
    return bool(user_agent) and SCANNER_UA.search(user_agent) is not None


def uri_scheme(uri: str) -> str:
    head, sep, _ = uri.partition(":")
    return head.strip().lower() if sep else ""


def first_line_uri(message: str) -> str | None:
    """The Request-URI of a request's first line ("INVITE uri SIP/2.0"), None if unreadable."""
    parts = message.split("\r\n", 1)[0].split(" ")
    return parts[1] if len(parts) == 3 and parts[1] else None


def screen(f: RequestFacts) -> Drop | Refuse | None:
    """The checks every request passes first, in this order."""
    if is_scanner(f.user_agent):
        return Drop("scanner")
    if f.version is not None and f.version.strip().upper() != VERSION:
        return Refuse(505, "Version Not Supported - only SIP/2.0")
    if f.ruri is not None and uri_scheme(f.ruri) not in SCHEMES:
        return Refuse(416, "Unsupported URI Scheme - sip and sips only")
    tags = [t.strip() for t in f.proxy_require.split(",") if t.strip()]
    if tags and f.method not in ("ACK", "CANCEL"):
        # None is supported. Echo only well-formed option tags into the reply.
        safe = [t for t in tags if TOKEN.fullmatch(t)] or ["unknown"]
        return Refuse(420, "Bad Extension", (f"Unsupported: {', '.join(safe[:8])}",))
    return None


# ------------------------------------------------------------------ replies

def via_hosts(vias: str) -> list[str]:
    """Hosts of every Via in a header value list ("SIP/2.0/UDP h:p;branch=..., SIP/2.0/TCP ...")."""
    hosts = []
    for m in re.finditer(r"SIP\s*/\s*[^/\s]+\s*/\s*[A-Za-z]+\s+(\[[^\]]*\]|[^\s;:,]+)", vias, re.I):
        hosts.append(m.group(1).strip("[]"))
    return hosts


def unsafe_destination(host: str) -> bool:
    """A broadcast, multicast or unspecified address: never send anything there."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_multicast or ip.is_unspecified or str(ip) == "255.255.255.255"


def screen_reply(vias: str) -> Drop | None:
    """A reply whose Via path names a broadcast or multicast address is dropped (RFC 4475 3.3.10)."""
    if any(unsafe_destination(h) for h in via_hosts(vias)):
        return Drop("broadcast_via")
    return None


# ------------------------------------------------------------------ REGISTER contacts

def contact_uris(contacts: str) -> list[str]:
    """The URIs of a Contact header value list; '*' is returned as is."""
    text = contacts.strip()
    if text == "*":
        return ["*"]
    uris = re.findall(r"<([^>]*)>", text)
    if uris:
        return [u.strip() for u in uris]
    return [part.split(";", 1)[0].strip() for part in text.split(",") if part.strip()]


def uri_host_port(uri: str) -> tuple[str, int | None]:
    m = re.match(r"\s*sips?:(?:[^@]*@)?(\[[^\]]+\]|[^:;?>]+)(?::(\d+))?", uri, re.I)
    if not m:
        return "", None
    return m.group(1).strip("[]").lower(), int(m.group(2)) if m.group(2) else None


def points_at(uri: str, own: tuple[str, int]) -> bool:
    """Does `uri` address this proxy (its SIP address and port; no port means 5060)?"""
    host, port = uri_host_port(uri)
    if not host:
        return False
    own_host, own_port = own
    same_host = host == own_host.lower() or (host in ("localhost",) and own_host.startswith("127."))
    return same_host and (port or 5060) == own_port


def self_contact(contacts: str, own: tuple[str, int]) -> str | None:
    """The first Contact that points at the proxy itself, or None."""
    for uri in contact_uris(contacts):
        if uri != "*" and points_at(uri, own):
            return uri
    return None


# ------------------------------------------------------------------ digest credentials

_URI = re.compile(r"\s*(sips?):(?:([^@;?>]*)@)?(\[[^\]]+\]|[^:;?>\s]+)(?::(\d{1,5}))?\s*(?:[;?].*)?$",
                  re.I | re.S)


def _uri_key(uri: str) -> tuple[str, str, str, int] | None:
    """(scheme, user, host, port) of a SIP URI for comparing it with another; None if it is
    not one. The user loses a password part and %-escapes; no port means the scheme's
    default; parameters and headers are not part of the key."""
    m = _URI.match(uri or "")
    if not m:
        return None
    scheme, user, host, port = m.group(1).lower(), m.group(2) or "", m.group(3).lower(), m.group(4)
    user = re.sub(r"%([0-9A-Fa-f]{2})", lambda e: chr(int(e.group(1), 16)), user.split(":", 1)[0])
    default = 5061 if scheme == "sips" else 5060
    return scheme, user, host.strip("[]"), int(port) if port else default


def digest_uri_matches(digest_uri: str, request_uri: str, own: tuple[str, int] | None = None) -> bool:
    """Do the credentials' `uri=` and the request's R-URI (as received) name the same
    resource (RFC 3261 22.4, RFC 2617 3.2.2.5)? A header computed for one R-URI is then
    worth nothing on another, whatever the nonce is bound to. What phones really send is
    allowed: another case in scheme or host, the default port written or left out, URI
    parameters (transport, user=phone) and headers present on one side only.

    One more form is accepted: the proxy's own address without a user (`sip:proxy:port`,
    `own`), which SIPp puts in every request's credentials. Such a header names no
    destination; the nonce's binding to the challenged R-URI is what keeps it from being
    moved (kamailio.cfg auth_checks_*)."""
    a, b = _uri_key(digest_uri), _uri_key(request_uri)
    if a is None or b is None:
        return False
    if a == b:
        return True
    if own is None or a[1] or a[0] != b[0]:
        return False
    return (a[2], a[3]) == (own[0].lower(), own[1])


# ------------------------------------------------------------------ guessing

@dataclass(frozen=True)
class GuessLimits:
    per_source: int     # failed authentications from one address in the window: ban the address
    per_number: int     # failed authentications for one number in the window: lock the number out


def after_failure(source_failures: int, number_failures: int, limits: GuessLimits) -> tuple[bool, bool]:
    """(ban the source, lock the number out) after a failed authentication."""
    return (limits.per_source > 0 and source_failures >= limits.per_source,
            limits.per_number > 0 and number_failures >= limits.per_number)


# ------------------------------------------------------------------ TCP

@dataclass(frozen=True)
class TcpConn:
    id: int
    src_ip: str
    age: float            # seconds since the guard first saw it
    completed: bool       # at least one whole SIP message arrived on it


def tcp_sweep(conns: list[TcpConn], per_source: int, idle_seconds: float,
              banned: frozenset[str] = frozenset()) -> tuple[list[int], list[str]]:
    """(connections to close, addresses to ban) for one look at the TCP connection table.

    - a connection that has not completed a SIP message within idle_seconds is closed;
    - an address holding more than per_source such half-open connections loses all of them
      at once and is banned (that many half-open connections are an attack);
    - a banned address loses every connection.
    Connections that carried SIP (registered phones, even many behind one NAT) are kept."""
    by_ip: dict[str, list[TcpConn]] = {}
    for c in conns:
        by_ip.setdefault(c.src_ip, []).append(c)
    close: list[int] = []
    ban: list[str] = []
    for ip, group in by_ip.items():
        if ip in banned:
            close += [c.id for c in group]
            continue
        half_open = [c for c in group if not c.completed]
        over = per_source > 0 and len(half_open) > per_source
        close += [c.id for c in half_open if over or c.age >= idle_seconds]
        if over:
            ban.append(ip)
    return sorted(close), sorted(ban)


def parse_tcp_list(result) -> list[tuple[int, str]]:
    """(id, source address) of each connection in a core.tcp_list JSON-RPC result."""
    rows = result if isinstance(result, list) else [result] if isinstance(result, dict) else []
    out = []
    for row in rows:
        try:
            out.append((int(row["id"]), str(row["src_ip"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def exempt_sources(text: str) -> frozenset[str]:
    return frozenset(a.strip() for a in text.split(",") if a.strip())


def safe_text(value, limit: int = 200, newlines: bool = False) -> str:
    """Any value as printable text for a log line: control characters and invalid UTF-8
    escaped (newlines kept if asked, for tracebacks), bounded."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    text = str(value).encode("utf-8", errors="backslashreplace").decode("utf-8")
    out = "".join(c if c.isprintable() or (newlines and c == "\n") else repr(c)[1:-1] for c in text)
    return out if len(out) <= limit else out[:limit] + "..."
