"""Registrar, digest authentication and direct calls through the real stack."""
from __future__ import annotations

import psycopg

from tests.e2e.sipp import Phone
from tests.e2e.helpers import explain


def test_direct_call_between_registered_phones(proxy):
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    callee = proxy.phone(b, pb)
    call = proxy.call(a, pa, b)
    assert call.proc.returncode == 0, explain(call, callee.uas, proxy.logs())
    invite = callee.invites()[0]
    assert "Record-Route:" in invite, "the proxy must stay in the dialog (BYE, media delete)"
    assert "Proxy-Authorization" not in invite, "credentials must not leak to the callee"


def test_direct_call_over_tcp(proxy):
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    callee = proxy.phone(b, pb)
    call = proxy.call(a, pa, b, transport="t1")
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert len(callee.invites()) == 1


def test_unknown_number_404_and_unregistered_480(proxy):
    a, pa = proxy.subscriber()
    offline, _ = proxy.subscriber()
    assert proxy.call(a, pa, "99999999", expect=404).proc.returncode == 0
    assert proxy.call(a, pa, offline, expect=480).proc.returncode == 0


def test_disabled_number_cannot_be_called_or_register(proxy):
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    proxy.kemictl("subscriber", "disable", b)
    assert proxy.call(a, pa, b, expect=480).proc.returncode == 0
    phone = Phone(proxy.address, b, pb, proxy.workdir)
    proxy.phones.append(phone)          # stopped after the test like every phone
    reg = phone.register(expect=401)
    assert reg.proc.returncode == 0, explain(reg)


def test_wrong_password_is_challenged_again(proxy):
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    phone = Phone(proxy.address, b, pb, proxy.workdir)
    proxy.phones.append(phone)
    reg = phone.register(expect=401, password="wrong-password")
    assert reg.proc.returncode == 0, explain(reg)
    call = proxy.call(a, "wrong-password", b, expect=407)
    assert call.proc.returncode == 0, explain(call)


def test_nobody_registers_or_calls_as_someone_else(proxy):
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    # a's credentials, b's address of record
    phone = Phone(proxy.address, b, pb, proxy.workdir)
    proxy.phones.append(phone)
    reg = phone.register(expect=403, auth_user=a, password=pa)
    assert reg.proc.returncode == 0, explain(reg)
    assert "403 Forbidden" in reg.messages()
    callee = proxy.phone(b, pb)
    call = proxy.call(a, pa, b, expect=403, from_user=b)
    assert call.proc.returncode == 0, explain(call)
    assert callee.invites() == []


def test_unauthenticated_invite_gets_a_challenge_not_a_route(proxy):
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    callee = proxy.phone(b, pb)
    # the call scenario always starts without credentials: the first reply must be 407
    call = proxy.call(a, pa, b)
    assert call.received("SIP/2.0 407"), explain(call)
    assert len(callee.invites()) == 1


def test_registrations_survive_a_kamailio_restart(proxy):
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    callee = proxy.phone(b, pb)
    # faults: usrloc writes contacts back every USRLOC_FLUSH s and when Kamailio stops; the
    # restart follows the REGISTER at once, so the contact survives through the flush on stop
    proxy.stack.kamailio.stop()
    with psycopg.connect(proxy.settings.database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM location WHERE username = %s", (b,)).fetchone()[0]
    assert rows == 1, "the contact must be in PostgreSQL once Kamailio has stopped"
    proxy.stack.kamailio.start()

    call = proxy.call(a, pa, b)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert len(callee.invites()) == 1
