"""The edge's pure decisions (kemi/edge.py) and kemictl ban's parsing (provision/bans.py)."""
from __future__ import annotations

import pytest

from kemi import edge
from kemi.edge import Drop, Refuse, RequestFacts
from provision import bans
from provision.store import ProvisioningError


def facts(**kw) -> RequestFacts:
    base = dict(method="INVITE", ruri="sip:100@192.0.2.1", version="SIP/2.0", user_agent="Yealink", proxy_require="")
    base.update(kw)
    return RequestFacts(**base)


@pytest.mark.parametrize("kw,expected", [
    ({}, None),
    ({"ruri": "sips:100@192.0.2.1"}, None),
    ({"ruri": "SIP:100@192.0.2.1"}, None),
    ({"ruri": None, "version": None}, None),                     # unreadable: not judged here
    ({"user_agent": "friendly-scanner"}, Drop("scanner")),
    ({"user_agent": "SIPVicious 0.3.3"}, Drop("scanner")),
    ({"user_agent": "sipcli/v1.8"}, Drop("scanner")),
    ({"user_agent": "friendly-scanner", "version": "SIP/3.0"}, Drop("scanner")),   # scanners never answered
    ({"version": "SIP/3.0"}, Refuse(505, "Version Not Supported - only SIP/2.0")),
    ({"version": "sip/2.0"}, None),
    ({"ruri": "tel:+4930123"}, Refuse(416, "Unsupported URI Scheme - sip and sips only")),
    ({"ruri": "xyz:a@b"}, Refuse(416, "Unsupported URI Scheme - sip and sips only")),
    ({"ruri": "nocolon"}, Refuse(416, "Unsupported URI Scheme - sip and sips only")),
    ({"proxy_require": "foo"}, Refuse(420, "Bad Extension", ("Unsupported: foo",))),
    ({"proxy_require": "foo, bar"}, Refuse(420, "Bad Extension", ("Unsupported: foo, bar",))),
    ({"proxy_require": "x\r\nContact: <sip:evil>"}, Refuse(420, "Bad Extension", ("Unsupported: unknown",))),
    ({"proxy_require": "foo", "method": "ACK"}, None),
])
def test_screen(kw, expected):
    assert edge.screen(facts(**kw)) == expected


@pytest.mark.parametrize("vias,expected", [
    ("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1", None),
    ("SIP/2.0/UDP 127.0.0.1:5060;branch=a, SIP/2.0/UDP 255.255.255.255:5060;branch=b", Drop("broadcast_via")),
    ("SIP/2.0/UDP 127.0.0.1;branch=a,SIP/2.0/TCP 224.0.0.1;branch=b", Drop("broadcast_via")),
    ("SIP/2.0/UDP 0.0.0.0:5060", Drop("broadcast_via")),
    ("SIP/2.0/UDP [ff02::1]:5060", Drop("broadcast_via")),
    ("SIP/2.0/UDP phone.example.com:5060;received=192.0.2.4", None),
    ("", None),
])
def test_screen_reply(vias, expected):
    assert edge.screen_reply(vias) == expected


OWN = ("192.0.2.1", 5060)


@pytest.mark.parametrize("contacts,expected", [
    ("<sip:100@192.0.2.7:5062>", None),
    ("<sip:100@192.0.2.1>", "sip:100@192.0.2.1"),
    ("<sip:100@192.0.2.1:5060;transport=udp>;expires=60", "sip:100@192.0.2.1:5060;transport=udp"),
    ("<sip:100@192.0.2.1:5070>", None),                   # another port on the same host: a phone
    ("<sip:100@192.0.2.7:5062>, <sip:x@192.0.2.1>", "sip:x@192.0.2.1"),
    ("sip:100@192.0.2.1;expires=60", "sip:100@192.0.2.1"),
    ("*", None),
    ("", None),
])
def test_self_contact(contacts, expected):
    assert edge.self_contact(contacts, OWN) == expected


@pytest.mark.parametrize("source,number,expected", [
    (1, 1, (False, False)), (9, 19, (False, False)), (10, 1, (True, False)), (1, 20, (False, True)),
    (10, 20, (True, True)),
])
def test_after_failure(source, number, expected):
    assert edge.after_failure(source, number, edge.GuessLimits(10, 20)) == expected


def test_limits_of_zero_disable():
    assert edge.after_failure(1000, 1000, edge.GuessLimits(0, 0)) == (False, False)


@pytest.mark.parametrize("message,expected", [
    ("OPTIONS xyz:a@b SIP/2.0\r\nVia: x", "xyz:a@b"),
    ("garbage", None),
    ("", None),
])
def test_first_line_uri(message, expected):
    assert edge.first_line_uri(message) == expected


def test_safe_text_escapes_control_characters():
    assert edge.safe_text("a\x00b\r\nc") == "a\\x00b\\r\\nc"
    assert edge.safe_text(b"\xff\xfe") == "\\xff\\xfe"
    assert len(edge.safe_text("x" * 1000)) == 203


DUMP = """{
	entry: 184
	size: 1
	slot: {
		{
			name: 192.0.2.9
			value: flood:1000100
			type: str
		}
	}
}
"""


def test_parse_dump_and_entries():
    assert bans.parse_dump(DUMP) == {"192.0.2.9": "flood:1000100"}
    assert bans.entry("address", "192.0.2.9", "flood:1000100", 1000000) == bans.Entry("address", "192.0.2.9", "flood", 100)
    assert bans.entry("number", "100", "auth:x", 0).seconds_left is None
    assert bans.parse_dump("error: 404 - no such table") == {}


@pytest.mark.parametrize("text,expected", [
    ("192.0.2.9", ("address", "192.0.2.9")),
    (" 2001:db8::1 ", ("address", "2001:db8::1")),
    ("77721401", ("number", "77721401")),
])
def test_ban_target(text, expected):
    assert bans.target(text) == expected


@pytest.mark.parametrize("text", ["", "1.2.3.4; rm -rf /", "192.0.2.300", "1", "abc", "127.0.0.1\nx"])
def test_ban_target_refused(text):
    with pytest.raises(ProvisioningError, match="field 'target'"):
        bans.target(text)


def conn(cid, ip="192.0.2.5", age=0.0, completed=False):
    return edge.TcpConn(cid, ip, age, completed)


@pytest.mark.parametrize("conns,banned,expected", [
    ([], frozenset(), ([], [])),
    ([conn(1, age=3)], frozenset(), ([], [])),                                   # young: kept
    ([conn(1, age=10)], frozenset(), ([1], [])),                                 # idle too long
    ([conn(1, age=100, completed=True)], frozenset(), ([], [])),                 # carried SIP: kept
    ([conn(i) for i in range(4)], frozenset(), ([], [])),                        # at the limit
    ([conn(i) for i in range(5)], frozenset(), ([0, 1, 2, 3, 4], ["192.0.2.5"])),   # over it: all, and ban
    ([conn(i, completed=True) for i in range(9)] + [conn(9)], frozenset(), ([], [])),  # a busy NAT is fine
    ([conn(1, completed=True), conn(2, ip="192.0.2.6")], frozenset({"192.0.2.5"}), ([1], [])),
    ([conn(i, ip=f"192.0.2.{i}") for i in range(10)], frozenset(), ([], [])),   # many addresses, one each
])
def test_tcp_sweep(conns, banned, expected):
    assert edge.tcp_sweep(conns, per_source=4, idle_seconds=10, banned=banned) == expected


def test_parse_tcp_list():
    rows = [{"id": 1, "src_ip": "192.0.2.5", "state": "CONN_ACCEPT"}, {"id": "x"}, {"src_ip": "a"}]
    assert edge.parse_tcp_list(rows) == [(1, "192.0.2.5")]
    assert edge.parse_tcp_list({"id": 2, "src_ip": "192.0.2.6"}) == [(2, "192.0.2.6")]
    assert edge.parse_tcp_list(None) == []


@pytest.mark.parametrize("digest_uri, ruri, expected", [
    ("sip:100@192.0.2.1", "sip:100@192.0.2.1", True),
    ("sip:192.0.2.1:5070", "sip:192.0.2.1:5070", True),                 # REGISTER
    ("SIP:100@Proxy.Example.COM", "sip:100@proxy.example.com", True),   # case of scheme and host
    ("sip:100@192.0.2.1:5060", "sip:100@192.0.2.1", True),              # default port written
    ("sips:100@192.0.2.1", "sips:100@192.0.2.1:5061", True),
    ("sip:100@192.0.2.1;transport=udp", "sip:100@192.0.2.1", True),     # parameters ignored
    ("sip:+4930123@192.0.2.1;user=phone", "sip:+4930123@192.0.2.1", True),
    ("sip:%31%30%30@192.0.2.1", "sip:100@192.0.2.1", True),             # escaped user
    ("sip:100@[2001:db8::1]:5060", "sip:100@[2001:DB8::1]", True),
    ("sip:100@192.0.2.1", "sip:101@192.0.2.1", False),                  # another number
    ("sip:100@192.0.2.1", "sip:0049301234@192.0.2.1", False),           # moved to a trunk number
    ("sip:192.0.2.1", "sip:100@192.0.2.1", False),                      # user left out
    ("sip:100@192.0.2.1", "sip:100@192.0.2.2", False),                  # another host
    ("sip:100@192.0.2.1:5070", "sip:100@192.0.2.1", False),             # another port
    ("sips:100@192.0.2.1", "sip:100@192.0.2.1", False),                 # another scheme
    ("sip:ABC@192.0.2.1", "sip:abc@192.0.2.1", False),                  # users are case-sensitive
    ("", "sip:100@192.0.2.1", False),
    ("*", "sip:100@192.0.2.1", False),
    ("tel:100", "tel:100", False),                                       # not a SIP URI at all
    ("sip:100@192.0.2.1", "", False),
])
def test_digest_uri_matches(digest_uri, ruri, expected):
    assert edge.digest_uri_matches(digest_uri, ruri) is expected


@pytest.mark.parametrize("digest_uri, ruri, expected", [
    ("sip:192.0.2.1:5070", "sip:100@192.0.2.1:5070", True),       # SIPp: the proxy's address
    ("sip:192.0.2.1:5070", "sip:0049301234@192.0.2.1:5070", True),  # names no destination
    ("sip:192.0.2.9:5070", "sip:100@192.0.2.1:5070", False),      # another host
    ("sip:192.0.2.1", "sip:100@192.0.2.1:5070", False),           # another port (5060)
    ("sip:101@192.0.2.1:5070", "sip:100@192.0.2.1:5070", False),  # another number still refused
    ("sips:192.0.2.1:5070", "sip:100@192.0.2.1:5070", False),
])
def test_digest_uri_of_the_proxy_itself(digest_uri, ruri, expected):
    assert edge.digest_uri_matches(digest_uri, ruri, ("192.0.2.1", 5070)) is expected

