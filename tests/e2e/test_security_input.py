"""Issue 9 item 4: every request is answered or deliberately dropped.

Crafted messages over raw UDP, each with its documented answer (README "Security"); after
each one the proxy still answers OPTIONS and no traceback escaped into the Kamailio log."""
from __future__ import annotations

import itertools
import socket
import uuid

import pytest

from tests.e2e.edge_helpers import alive, log_text, metric, tracebacks
from tests.e2e.helpers import wait_until
from tests.e2e.sipraw import SDP, Client, digest, request

_ips = itertools.count(120)


def ruri(proxy, user: str = "") -> str:
    return f"sip:{user + '@' if user else ''}{proxy.address[0]}:{proxy.address[1]}"


def invite(proxy, client, **kw) -> bytes:
    return request("INVITE", ruri(proxy, "55500000"), client, "55599999", "55500000", body=SDP, **kw)


# (name, how to build the bytes from a fresh INVITE/OPTIONS, expected status or None, reason text)
CASES = [
    ("non-UTF-8 From", lambda p, c: invite(p, c).replace(b"From: <sip:55599999@", b'From: "\xff\xfe" <sip:5\xc3\x28@', 1),
     407, None),
    ("non-UTF-8 R-URI", lambda p, c: invite(p, c).replace(b"INVITE sip:55500000@", b"INVITE sip:555\xff0@", 1), 407, None),
    ("non-UTF-8 Call-ID", lambda p, c: invite(p, c).replace(b"Call-ID: ", b"Call-ID: \xff\xfe", 1), 407, None),
    ("NUL in a header", lambda p, c: invite(p, c, extra="Subject: a\x00b"), 407, None),
    ("NUL and 0xff in User-Agent", lambda p, c: request("OPTIONS", ruri(p), c, "1").replace(
        b"Max-Forwards: 70", b"User-Agent: a\x00\xffb\r\nMax-Forwards: 70", 1), 200, None),
    ("unknown URI scheme", lambda p, c: request("OPTIONS", ruri(p), c, "1").replace(b"OPTIONS sip:", b"OPTIONS xyz:", 1),
     416, "Unsupported URI Scheme"),
    ("tel URI", lambda p, c: request("OPTIONS", "tel:+4930123456", c, "1"), 416, "Unsupported URI Scheme"),
    ("Proxy-Require", lambda p, c: request("OPTIONS", ruri(p), c, "1", extra="Proxy-Require: foo, x;y"), 420,
     "Bad Extension"),
    ("SIP/3.0", lambda p, c: request("OPTIONS", ruri(p), c, "1").replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1), 505,
     "Version Not Supported"),
]


@pytest.mark.parametrize("name,build,status,reason", CASES, ids=[c[0] for c in CASES])
def test_malformed_request_gets_its_answer(proxy, name, build, status, reason):
    before = tracebacks(proxy)
    client = Client(proxy.address)
    reply = client.request(build(proxy, client))
    client.close()
    assert reply is not None, f"{name}: no answer"
    assert reply.status == status, reply.text
    if reason:
        assert reason in reply.reason
    if status == 420:
        assert reply.header("Unsupported") == "foo", "only well-formed option tags are echoed"
    assert alive(proxy)
    assert tracebacks(proxy) == before, f"{name}: a traceback escaped\n{log_text(proxy)[-3000:]}"


def test_malformed_request_from_a_trunk_is_answered(proxy):
    """Trunk traffic skips digest: the routing code itself reads the unreadable values."""
    ip = f"127.0.0.{next(_ips)}"
    proxy.kemictl("trunk", "add", f"edgein{uuid.uuid4().hex[:6]}", "--address", ip)
    before = tracebacks(proxy)
    client = Client(proxy.address, ip=ip)
    for data, status in (
            (invite(proxy, client).replace(b"From: <sip:55599999@", b'From: "\xff\xfe" <sip:5\xc3\x28@', 1), 404),
            (invite(proxy, client).replace(b"From: <sip:55599999@", b'From: "\xff\x00" <sip:5\xc3\x28@', 1), 400),
            (invite(proxy, client).replace(b"INVITE sip:55500000@", b"INVITE sip:555\xff0@", 1), 404)):
        reply = client.request(data)
        assert reply is not None and reply.status == status, reply and reply.text
    client.close()
    assert alive(proxy)
    assert tracebacks(proxy) == before


def test_preloaded_route_is_removed(proxy):
    """An initial request naming another hop in Route goes nowhere but where the proxy decides."""
    hop = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hop.bind(("127.0.0.1", 0))
    hop.settimeout(0.5)
    caller, cpw = proxy.subscriber()
    client = Client(proxy.address)
    removed = metric(proxy, "kemi_edge_refused_total", reason="preloaded_route")
    route = f"Route: <sip:127.0.0.1:{hop.getsockname()[1]};lr>"
    first = client.request(request("INVITE", ruri(proxy, "99999999"), client, caller, "99999999", extra=route, body=SDP))
    assert first is not None and first.status == 407
    auth = digest("INVITE", ruri(proxy, "99999999"), caller, cpw, first.header("Proxy-Authenticate"),
                  "Proxy-Authorization")
    reply = client.request(request("INVITE", ruri(proxy, "99999999"), client, caller, "99999999",
                                   extra=f"{route}\r\n{auth}", body=SDP))
    assert reply is not None and reply.status == 404, reply and reply.text   # routed by the proxy: no such number
    with pytest.raises(socket.timeout):
        hop.recv(65535)
    hop.close()
    wait_until(lambda: metric(proxy, "kemi_edge_refused_total", reason="preloaded_route") >= removed + 2)


@pytest.mark.parametrize("address", ["255.255.255.255", "224.0.0.1"])
def test_reply_toward_broadcast_or_multicast_via_is_dropped(proxy, address):
    before = metric(proxy, "kemi_edge_dropped_total", reason="broadcast_via")
    client = Client(proxy.address)
    port = proxy.address[1]
    reply = (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
             f"Via: SIP/2.0/UDP {address}:5060;branch=z9hG4bK{uuid.uuid4().hex}\r\n"
             "From: <sip:a@example.invalid>;tag=1\r\nTo: <sip:b@example.invalid>;tag=2\r\n"
             f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
    client.send(reply)
    client.close()
    wait_until(lambda: metric(proxy, "kemi_edge_dropped_total", reason="broadcast_via") == before + 1)
    assert alive(proxy)


def test_register_contact_pointing_at_the_proxy_is_refused(proxy):
    number, password = proxy.subscriber()
    client = Client(proxy.address)
    contact = f"<sip:{number}@{proxy.address[0]}:{proxy.address[1]}>"
    call_id = uuid.uuid4().hex
    first = client.request(request("REGISTER", ruri(proxy), client, number, call_id=call_id, contact=contact))
    assert first is not None and first.status == 401
    auth = digest("REGISTER", ruri(proxy), number, password, first.header("WWW-Authenticate"), "Authorization")
    reply = client.request(request("REGISTER", ruri(proxy), client, number, call_id=call_id, cseq=2,
                                   contact=contact, extra=auth))
    assert reply is not None and reply.status == 403, reply and reply.text
    assert "points at this proxy" in reply.reason
    client.close()


def test_mutated_messages_never_raise(proxy):
    """A bounded, seeded fuzz run in the spirit of PROTOS c07-sip: bytes of a valid INVITE and
    OPTIONS replaced by NUL, 0xff, CR, LF, quotes or random bytes. Whatever the proxy makes of
    them (an answer, or a drop by the parser), no exception reaches a route boundary, no
    traceback escapes and the proxy keeps answering."""
    import random
    rng = random.Random(9)
    client = Client(proxy.address, ip=f"127.0.0.{next(_ips)}")
    errors = metric(proxy, "kemi_handler_errors_total")
    before = tracebacks(proxy)
    answered = 0
    total = 150
    for i in range(total):
        base = invite(proxy, client) if i % 2 else request("OPTIONS", ruri(proxy), client, "1")
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            data[pos:pos + 1] = rng.choice([b"\x00", b"\xff", b"\r", b"\n", b'"', b"<", b";", b":",
                                            bytes([rng.randrange(256)]), b"\xc3\x28"])
        if client.request(bytes(data), timeout=0.3) is not None:
            answered += 1
    client.close()
    assert alive(proxy)
    assert tracebacks(proxy) == before, log_text(proxy)[-3000:]
    assert metric(proxy, "kemi_handler_errors_total") == errors
    print(f"fuzz: {answered} of {total} mutated messages answered, the rest dropped by the parser or the edge")
