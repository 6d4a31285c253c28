"""Issue 9 item 1: a captured Authorization / Proxy-Authorization header cannot be reused.

Each test first does what a genuine phone does (challenge, answer, accepted), keeps the header
it sent, and then replays that header as an attacker would: from another port or address,
with a new Call-ID and branch, toward the same or another R-URI. The replay must be
challenged again and never reach a phone or a trunk."""
from __future__ import annotations

import itertools
import re
import uuid

from tests.e2e import sipraw
from tests.e2e.helpers import explain
from tests.e2e.sipp import Phone
from tests.e2e.sipraw import SDP, Client, digest, request

_ips = itertools.count(200)   # loopback addresses of their own (test_trunks uses .10 upward)


def register(proxy, client: Client, number: str, password: str, qop: bool = True,
             call_id: str | None = None) -> tuple[sipraw.Reply, str]:
    """REGISTER as a phone does; returns the final reply and the Authorization header sent."""
    call_id = call_id or uuid.uuid4().hex
    ruri = f"sip:{proxy.address[0]}:{proxy.address[1]}"
    first = client.request(request("REGISTER", ruri, client, number, call_id=call_id, cseq=1,
                                   extra="Expires: 60"))
    assert first is not None and first.status == 401, first and first.text
    auth = digest("REGISTER", ruri, number, password, first.header("WWW-Authenticate"),
                  "Authorization", qop=qop)
    reply = client.request(request("REGISTER", ruri, client, number, call_id=call_id, cseq=2,
                                   extra=f"Expires: 60\r\n{auth}"))
    return reply, auth


def invite(proxy, client: Client, number: str, password: str, dial: str, qop: bool = True):
    """INVITE as a phone does; returns the final reply to the authenticated INVITE and the
    Proxy-Authorization header sent. The final reply is acknowledged."""
    call_id, tag = uuid.uuid4().hex, uuid.uuid4().hex[:8]
    ruri = f"sip:{dial}@{proxy.address[0]}:{proxy.address[1]}"
    first = client.request(request("INVITE", ruri, client, number, dial, call_id=call_id, tag=tag, body=SDP))
    assert first is not None and first.status == 407, first and first.text
    auth = digest("INVITE", ruri, number, password, first.header("Proxy-Authenticate"),
                  "Proxy-Authorization", qop=qop)
    reply = client.request(request("INVITE", ruri, client, number, dial, call_id=call_id, cseq=2, tag=tag,
                                   extra=auth, body=SDP), timeout=8)
    return reply, auth


def replay(proxy, client: Client, method: str, ruri: str, number: str, to_user: str, auth: str,
           contact_note: str = "") -> sipraw.Reply | None:
    """Send `auth` again in a brand-new request (new Call-ID, branch, tag)."""
    extra = auth + ("\r\nExpires: 60" if method == "REGISTER" else "")
    return client.request(request(method, ruri, client, number, to_user, extra=extra,
                                  body=SDP if method == "INVITE" else ""), timeout=5)


def contacts(proxy, number: str) -> list[str]:
    """The number's contacts as Kamailio routes to them (usrloc in shared memory; the table
    follows within kamailio.cfg's USRLOC_FLUSH seconds)."""
    # "s:": kamcmd would pass a number as an integer; the AOR is a string
    return re.findall(r"Address:\s*(\S+)", proxy.stack.kamailio.rpc("ul.lookup", "location", f"s:{number}"))


def test_replayed_register_header_is_challenged_again(proxy):
    number, password = proxy.subscriber()
    phone = Client(proxy.address)
    reply, auth = register(proxy, phone, number, password)
    assert reply.status == 200, reply.text
    assert contacts(proxy, number) == [f"sip:{number}@127.0.0.1:{phone.port}"]

    ruri = f"sip:{proxy.address[0]}:{proxy.address[1]}"
    for attacker in (Client(proxy.address), Client(proxy.address, ip=f"127.0.0.{next(_ips)}")):
        got = replay(proxy, attacker, "REGISTER", ruri, number, number, auth)
        assert got is not None and got.status == 401, got and got.text
        attacker.close()
    # the contact was not hijacked
    assert contacts(proxy, number) == [f"sip:{number}@127.0.0.1:{phone.port}"]
    phone.close()


def test_replayed_register_in_the_same_call_id_is_refused(proxy):
    """Even the phone's own Call-ID does not help: the nonce was used once."""
    number, password = proxy.subscriber()
    phone = Client(proxy.address)
    call_id = uuid.uuid4().hex
    reply, auth = register(proxy, phone, number, password, call_id=call_id)
    assert reply.status == 200, reply.text
    attacker = Client(proxy.address)
    ruri = f"sip:{proxy.address[0]}:{proxy.address[1]}"
    got = attacker.request(request("REGISTER", ruri, attacker, number, call_id=call_id, cseq=3,
                                   extra=f"Expires: 60\r\n{auth}"))
    assert got is not None and got.status == 401, got and got.text
    assert contacts(proxy, number) == [f"sip:{number}@127.0.0.1:{phone.port}"]


def test_replayed_invite_header_never_reaches_a_phone(proxy):
    caller, cpw = proxy.subscriber()
    b, bpw = proxy.subscriber()
    c, cpw2 = proxy.subscriber()
    callee = proxy.phone(b, bpw, "reject", code=486, calls=5)
    other = proxy.phone(c, cpw2, "reject", code=486, calls=5)
    phone = Client(proxy.address)
    reply, auth = invite(proxy, phone, caller, cpw, b)
    assert reply is not None and reply.status == 486, explain(reply and reply.text, proxy.logs())
    assert len(callee.invites()) == 1

    for ip in ("127.0.0.1", f"127.0.0.{next(_ips)}"):
        attacker = Client(proxy.address, ip=ip)
        for dial in (b, c):          # the same R-URI and another one
            ruri = f"sip:{dial}@{proxy.address[0]}:{proxy.address[1]}"
            got = replay(proxy, attacker, "INVITE", ruri, caller, dial, auth)
            assert got is not None and got.status == 407, explain(got and got.text, proxy.logs())
        attacker.close()
    assert len(callee.invites()) == 1, "a replayed INVITE reached the phone"
    assert other.invites() == [], "a replayed INVITE reached another phone"


def test_replayed_invite_header_never_reaches_a_trunk(proxy):
    name = f"edge{uuid.uuid4().hex[:6]}"
    ip = f"127.0.0.{next(_ips)}"
    uas = Phone(proxy.address, name, "", proxy.workdir, "reject", code=486, phrase="Busy Here", ip=ip, calls=5)
    proxy.phones.append(uas)
    proxy.kemictl("trunk", "add", name, "--address", f"{ip}:{uas.port}")
    dest = f"39{uuid.uuid4().int % 1000:03d}"
    proxy.kemictl("route", "add", dest, name)
    caller, cpw = proxy.subscriber()
    phone = Client(proxy.address)
    reply, auth = invite(proxy, phone, caller, cpw, dest + "5550001")
    assert reply is not None and reply.status == 486, explain(reply and reply.text, proxy.logs())
    assert len(uas.invites()) == 1

    attacker = Client(proxy.address, ip=f"127.0.0.{next(_ips)}")
    for dial in (dest + "5550001", dest + "9999999"):   # the same external number, and toll fraud
        ruri = f"sip:{dial}@{proxy.address[0]}:{proxy.address[1]}"
        got = replay(proxy, attacker, "INVITE", ruri, caller, dial, auth)
        assert got is not None and got.status == 407, explain(got and got.text, proxy.logs())
    assert len(uas.invites()) == 1, "a replayed INVITE reached the trunk"


def test_phones_without_qop_still_register_and_call(proxy):
    number, password = proxy.subscriber()
    b, bpw = proxy.subscriber()
    callee = proxy.phone(b, bpw, "reject", code=486)
    phone = Client(proxy.address)
    reply, auth = register(proxy, phone, number, password, qop=False)
    assert reply.status == 200, reply.text
    assert "qop" not in auth
    reply, auth = invite(proxy, phone, number, password, b, qop=False)
    assert reply is not None and reply.status == 486, explain(reply and reply.text, proxy.logs())
    assert len(callee.invites()) == 1
    # and its header cannot be replayed either
    attacker = Client(proxy.address)
    got = replay(proxy, attacker, "INVITE", f"sip:{b}@{proxy.address[0]}:{proxy.address[1]}", number, b, auth)
    assert got is not None and got.status == 407, got and got.text
    assert len(callee.invites()) == 1


def test_credentials_for_another_realm_are_challenged(proxy):
    number, password = proxy.subscriber()
    phone = Client(proxy.address)
    ruri = f"sip:{proxy.address[0]}:{proxy.address[1]}"
    call_id = uuid.uuid4().hex
    first = phone.request(request("REGISTER", ruri, phone, number, call_id=call_id))
    assert first is not None and first.status == 401
    forged = first.header("WWW-Authenticate").replace(f'realm="{proxy.settings.realm}"', 'realm="elsewhere"')
    auth = digest("REGISTER", ruri, number, password, forged, "Authorization")
    reply = phone.request(request("REGISTER", ruri, phone, number, call_id=call_id, cseq=2, extra=auth))
    assert reply is not None and reply.status == 401, reply and reply.text
    assert contacts(proxy, number) == []
    phone.close()


def test_digest_uri_must_name_the_register_request_uri(proxy):
    """A correct digest for another uri= (here the phone's AOR) on this REGISTER's R-URI:
    the nonce's own binding is satisfied (the challenge was for this R-URI), so only the
    uri= check refuses it. The phone's own correct REGISTER right after works."""
    number, password = proxy.subscriber()
    phone = Client(proxy.address)
    ruri = f"sip:{proxy.address[0]}:{proxy.address[1]}"
    call_id = uuid.uuid4().hex
    first = phone.request(request("REGISTER", ruri, phone, number, call_id=call_id, extra="Expires: 60"))
    assert first is not None and first.status == 401, first and first.text
    elsewhere = f"sip:{number}@{proxy.address[0]}:{proxy.address[1]}"
    auth = digest("REGISTER", elsewhere, number, password, first.header("WWW-Authenticate"), "Authorization")
    got = phone.request(request("REGISTER", ruri, phone, number, call_id=call_id, cseq=2,
                                extra=f"Expires: 60\r\n{auth}"))
    assert got is not None and got.status == 401, got and got.text
    assert contacts(proxy, number) == []
    assert "is not the R-URI" in proxy.stack.kamailio.log.read_text(errors="replace")
    # what phones send (uri= is the R-URI) is accepted; variants: tests/unit/test_edge.py
    reply, _ = register(proxy, phone, number, password)
    assert reply.status == 200, reply.text
    assert contacts(proxy, number) == [f"sip:{number}@127.0.0.1:{phone.port}"]
    phone.close()


def test_digest_uri_must_name_the_invite_request_uri(proxy):
    """An INVITE toward b whose credentials were computed for uri=c (another phone) or a trunk
    number is challenged again and reaches nobody; computed for b's R-URI it goes through."""
    caller, cpw = proxy.subscriber()
    b, bpw = proxy.subscriber()
    c, cpw2 = proxy.subscriber()
    callee = proxy.phone(b, bpw, "reject", code=486, calls=5)
    other = proxy.phone(c, cpw2, "reject", code=486, calls=5)
    phone = Client(proxy.address)
    host = f"{proxy.address[0]}:{proxy.address[1]}"
    ruri = f"sip:{b}@{host}"
    for moved in (f"sip:{c}@{host}", f"sip:00491701234567@{host}", f"sip:{c}@127.0.0.9:{proxy.address[1]}"):
        call_id, tag = uuid.uuid4().hex, uuid.uuid4().hex[:8]
        first = phone.request(request("INVITE", ruri, phone, caller, b, call_id=call_id, tag=tag, body=SDP))
        assert first is not None and first.status == 407, first and first.text
        auth = digest("INVITE", moved, caller, cpw, first.header("Proxy-Authenticate"), "Proxy-Authorization")
        got = phone.request(request("INVITE", ruri, phone, caller, b, call_id=call_id, cseq=2, tag=tag,
                                    extra=auth, body=SDP), timeout=8)
        assert got is not None and got.status == 407, explain(got and got.text, proxy.logs())
    assert callee.invites() == [] and other.invites() == [], "an INVITE with a moved uri= was routed"
    # the same INVITE with uri= as phones send it (the R-URI) is routed
    reply, _ = invite(proxy, phone, caller, cpw, b)
    assert reply is not None and reply.status == 486, explain(reply and reply.text, proxy.logs())
    assert len(callee.invites()) == 1
    phone.close()
