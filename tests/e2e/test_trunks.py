"""Trunks, caller identity and dial suffixes (issue 4) with SIPp as carriers and phones.

Carriers sit on other loopback addresses (127.0.0.2, .3, ...) so that recognition by
source address is real. Every header the proxy writes is read in the message received."""
from __future__ import annotations

import itertools
import re
from collections import Counter

import pytest

from tests.e2e.sipp import Phone
from tests.e2e.helpers import explain, from_user, header

_names = itertools.count(1)
_ips = itertools.count(10)


def carrier(proxy, behaviour="answer", trusted=False, send_pai=False, calls=1, code=503,
            phrase="Service Unavailable", default_caller_id=None):
    """A trunk provisioned at its own loopback address, with a SIPp UAS there."""
    name = f"t{next(_names)}"
    ip = f"127.0.0.{next(_ips)}"
    uas = Phone(proxy.address, name, "", proxy.workdir, behaviour, code=code, phrase=phrase, ip=ip, calls=calls)
    proxy.phones.append(uas)
    args = ["trunk", "add", name, "--address", f"{ip}:{uas.port}", "--trusted", "yes" if trusted else "no",
            "--send-pai", "yes" if send_pai else "no"]
    if default_caller_id:
        args += ["--default-caller-id", default_caller_id]
    proxy.kemictl(*args)
    return name, uas


def prefix() -> str:
    """A fresh destination prefix per test, so routes of other tests do not interfere."""
    return f"4{next(_names):03d}"


def test_outbound_longest_prefix_and_failover(proxy):
    dest = prefix()
    broken, broken_uas = carrier(proxy, "reject", code=503)
    good, good_uas = carrier(proxy, "answer")
    general, general_uas = carrier(proxy, "answer")
    proxy.kemictl("route", "add", dest, broken, "--priority", "1")
    proxy.kemictl("route", "add", dest, good, "--priority", "2")
    proxy.kemictl("route", "add", dest[:2], general)
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, dest + "5550001")

    assert call.proc.returncode == 0, explain(call, broken_uas.uas, good_uas.uas, proxy.logs())
    assert len(broken_uas.invites()) == 1 and len(good_uas.invites()) == 1
    assert general_uas.invites() == [], "a shorter prefix must not win over a longer one"
    assert good_uas.invites()[0].startswith(f"INVITE sip:{dest}5550001@")


def test_every_trunk_failing_tells_the_caller(proxy):
    dest = prefix()
    first, first_uas = carrier(proxy, "reject", code=500, phrase="Server Internal Error")
    second, second_uas = carrier(proxy, "reject", code=503)
    proxy.kemictl("route", "add", dest, first, "--priority", "1")
    proxy.kemictl("route", "add", dest, second, "--priority", "2")
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, dest + "1", expect=503)

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert "every trunk failed" in call.received("SIP/2.0 503")[0]
    assert len(first_uas.invites()) == 1 and len(second_uas.invites()) == 1


def test_busy_far_end_is_final_not_failover(proxy):
    dest = prefix()
    busy, busy_uas = carrier(proxy, "reject", code=486, phrase="Busy Here")
    spare, spare_uas = carrier(proxy, "answer")
    proxy.kemictl("route", "add", dest, busy, "--priority", "1")
    proxy.kemictl("route", "add", dest, spare, "--priority", "2")
    caller, cpw = proxy.subscriber()
    call = proxy.call(caller, cpw, dest + "1", expect=486)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert spare_uas.invites() == []


def test_caller_id_random_among_the_trunks_numbers(proxy):
    dest = prefix()
    trunk, uas = carrier(proxy, "answer", calls=12)
    other, _ = carrier(proxy, "answer")
    proxy.kemictl("route", "add", dest, trunk)
    caller, cpw = proxy.subscriber()
    agent, _ = proxy.subscriber()
    d1, d2, d3 = f"49301{caller[-5:]}", f"49302{caller[-5:]}", f"49303{caller[-5:]}"
    proxy.kemictl("did", "add", d1, trunk, agent)
    proxy.kemictl("did", "add", d2, trunk, agent)
    proxy.kemictl("did", "add", d3, other, agent)
    proxy.kemictl("callerid", "set", caller, d3, d1, d2)
    proxy.kemictl("callerid", "policy", caller, "--public-name", "ACME Sales")

    call = proxy.call(caller, cpw, dest + "1", calls=12, timeout=60)

    assert call.proc.returncode == 0, explain(call, uas.uas, proxy.logs())
    invites = uas.invites()
    assert len(invites) == 12
    shown = Counter(from_user(i) for i in invites)
    assert set(shown) == {d1, d2}, shown          # never the other trunk's d3
    assert all('"ACME Sales"' in header(i, "From") for i in invites)


def test_default_caller_ids_and_anonymous_option(proxy):
    dest = prefix()
    trunk, uas = carrier(proxy, "answer", calls=3, trusted=True, default_caller_id="4999000")
    proxy.kemictl("route", "add", dest, trunk)
    caller, cpw = proxy.subscriber()

    assert proxy.call(caller, cpw, dest + "1").proc.returncode == 0         # trunk default
    proxy.kemictl("callerid", "policy", caller, "--default-caller-id", "4988000")
    assert proxy.call(caller, cpw, dest + "1").proc.returncode == 0         # subscriber default
    proxy.kemictl("callerid", "policy", caller, "--hide", "yes")
    assert proxy.call(caller, cpw, dest + "1").proc.returncode == 0         # never send caller ID

    first, second, third = uas.invites()
    assert from_user(first) == "4999000"
    assert from_user(second) == "4988000"
    assert header(third, "From").startswith('"Anonymous" <sip:anonymous@anonymous.invalid>')
    assert header(third, "Privacy") == "id"
    assert header(third, "P-Asserted-Identity") == f"<sip:4988000@{proxy.settings.domain}>"   # trusted


@pytest.mark.parametrize("trusted", [True, False])
def test_h_suffix_and_pai_only_toward_trusted_trunks(proxy, trusted):
    dest = prefix()
    trunk, uas = carrier(proxy, "answer", trusted=trusted)
    proxy.kemictl("route", "add", dest, trunk)
    caller, cpw = proxy.subscriber()
    agent, _ = proxy.subscriber()
    did = f"4977{caller[-5:]}"
    proxy.kemictl("did", "add", did, trunk, agent)        # a public number this trunk carries
    proxy.kemictl("callerid", "set", caller, did)

    call = proxy.call(caller, cpw, dest + "1h")

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    invite = uas.invites()[0]
    assert invite.startswith(f"INVITE sip:{dest}1@"), "the suffix must not reach the carrier"
    assert header(invite, "From").startswith('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=')
    assert header(invite, "Privacy") == "id"
    pai = header(invite, "P-Asserted-Identity")
    assert pai == (f"<sip:{did}@{proxy.settings.domain}>" if trusted else None)
    without_pai = re.sub(r"^P-Asserted-Identity:.*$", "", invite, flags=re.M)
    assert did not in without_pai and caller not in header(invite, "From"), "real identity leaked"


@pytest.mark.parametrize("trusted", [True, False])
def test_send_pai_adds_pai_and_ppi_on_trusted_trunks_only(proxy, trusted):
    dest = prefix()
    trunk, uas = carrier(proxy, "answer", trusted=trusted, send_pai=True)
    proxy.kemictl("route", "add", dest, trunk)
    caller, cpw = proxy.subscriber()
    proxy.kemictl("callerid", "set", caller, "4977222", "4977333")
    proxy.kemictl("callerid", "policy", caller, "--public-name", "Help Desk")

    call = proxy.call(caller, cpw, dest + "1c2")

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    invite = uas.invites()[0]
    assert from_user(invite) == "4977333"
    if trusted:
        assert header(invite, "P-Asserted-Identity") == f"<sip:4977333@{proxy.settings.domain}>"
        assert header(invite, "P-Preferred-Identity") == f'"Help Desk" <sip:4977333@{proxy.settings.domain}>'
    else:
        assert header(invite, "P-Asserted-Identity") is None
        assert header(invite, "P-Preferred-Identity") is None


def test_phone_forged_identity_is_removed(proxy):
    dest = prefix()
    trunk, uas = carrier(proxy, "answer", trusted=True)
    proxy.kemictl("route", "add", dest, trunk)
    caller, cpw = proxy.subscriber()
    callee, callee_pw = proxy.subscriber()
    phone = proxy.phone(callee, callee_pw)
    forged = "P-Asserted-Identity: <sip:110@evil.example>\nP-Preferred-Identity: <sip:112@evil.example>"

    internal = proxy.call(caller, cpw, callee, headers=forged)
    external = proxy.call(caller, cpw, dest + "1", headers=forged)

    assert internal.proc.returncode == 0 and external.proc.returncode == 0, explain(internal, external)
    for invite in (phone.invites()[0], uas.invites()[0]):
        assert "evil.example" not in invite
    assert header(uas.invites()[0], "P-Asserted-Identity") is None   # no send_pai, not anonymous


def test_c_suffixes_on_internal_calls(proxy):
    caller, cpw = proxy.subscriber()
    proxy.kemictl("callerid", "set", caller, "4966111", "4966222")
    a, apw = proxy.subscriber()
    b, bpw = proxy.subscriber()
    proxy.kemictl("hunt", "import", f"cg{next(_names)}", "-", stdin=f"{a}\t{b}\t1\t1\n{b}\t0000\t1\t1\n")
    busy = proxy.phone(a, apw, "reject", code=486, phrase="Busy Here")
    next_member = proxy.phone(b, bpw, "answer")

    call = proxy.call(caller, cpw, a + "c2T", expect=486)       # cNT: that member only, as c2
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert from_user(busy.invites()[0]) == "4966222"
    assert next_member.invites() == []

    plain = proxy.phone(a, apw, "answer")
    call = proxy.call(caller, cpw, a + "c1hT")
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    invite = plain.invites()[0]
    assert header(invite, "From").startswith('"Anonymous" <sip:anonymous@anonymous.invalid>')
    assert header(invite, "P-Asserted-Identity") is None, "phones never get an identity assertion"

    missing = proxy.call(caller, cpw, a + "c3", expect=403)
    assert missing.proc.returncode == 0, explain(missing)
    assert "no caller ID c3" in missing.received("SIP/2.0 403")[0]


def test_inbound_did_to_hunt_group_with_prefix_rewriting(proxy):
    a, apw = proxy.subscriber()
    b, bpw = proxy.subscriber()
    service = f"8{a}"
    proxy.kemictl("hunt", "import", f"in{next(_names)}", "-",
                  stdin=f"{a}\t{b}\t{service}\t{a}\n{b}\t0000\t1\t1\n")
    name = f"t{next(_names)}"
    ip = f"127.0.0.{next(_ips)}"
    proxy.kemictl("trunk", "add", name, "--address", ip, "--trusted", "yes")   # any source port
    did = f"4940{a[-6:]}"
    proxy.kemictl("did", "add", did, name, service, "--caller-prefix", "0", "--caller-suffix", "99",
                  "--display-tag", "[Sales]")
    busy = proxy.phone(a, apw, "reject", code=486, phrase="Busy Here")
    agent = proxy.phone(b, bpw, "answer")

    call = proxy.call("01701234567", None, did, ip=ip, headers="P-Asserted-Identity: <sip:01701234567@carrier>")

    assert call.proc.returncode == 0, explain(call, agent.uas, proxy.logs())
    for invite in (busy.invites()[0], agent.invites()[0]):
        assert from_user(invite) == "0017012345679" + "9"
        assert header(invite, "From").startswith('"[Sales] Caller 01701234567"')
        assert header(invite, "P-Asserted-Identity") is None


def test_unknown_source_is_refused_and_never_relayed(proxy):
    dest = prefix()
    trunk, uas = carrier(proxy, "answer", calls=1)
    proxy.kemictl("route", "add", dest, trunk)
    stranger = f"127.0.0.{next(_ips)}"

    # not a trunk, not a subscriber: challenged like anyone (issue 9: the answer must not
    # tell whether the number exists), and nothing reaches the carrier
    call = proxy.call("0123456", None, dest + "1", ip=stranger, expect=407)
    assert call.proc.returncode == 0, explain(call, proxy.logs())

    # a trunk may only reach its own DIDs, never another trunk
    name = f"t{next(_names)}"
    ip = f"127.0.0.{next(_ips)}"
    proxy.kemictl("trunk", "add", name, "--address", ip)
    call = proxy.call("0123456", None, dest + "1", ip=ip, expect=404)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert uas.invites() == []
