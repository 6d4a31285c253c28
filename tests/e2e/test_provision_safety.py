"""Issue 9 item 5: provisioned text can never become a SIP header. CRLF (and other control
characters) in every provisioned text is refused by kemictl and by the database itself; a
weird-but-legal display name arrives at a phone as a correctly escaped quoted-string."""
from __future__ import annotations

import itertools
import re

import psycopg
import pytest

from tests.e2e.helpers import explain
from tools import migrate

_ids = itertools.count(1)
HA1 = "0123456789abcdef0123456789abcdef"
INJECTION = "Alice\r\nContact: <sip:evil@192.0.2.66>"


def fresh(proxy):
    """A subscriber, a trunk and a DID, a ring-all group: every holder of header text."""
    a, _ = proxy.subscriber()
    n = next(_ids)
    trunk, did, group = f"sf-trunk{n}", f"49300{a[-5:]}", f"sf-ra{n}"
    proxy.kemictl("trunk", "add", trunk, "--address", f"127.0.9.{n % 250 + 1}")
    proxy.kemictl("did", "add", did, trunk, a)
    proxy.kemictl("ringall", "add", group, f"7{a[1:]}")
    return a, trunk, did, group


def cases(a, trunk, did, group, value):
    """(field, kemictl arguments, SQL update) for each provisioned text."""
    return [
        ("name", ["subscriber", "change", a, "--name", value],
         ("UPDATE subscriber SET display_name = %s WHERE number = %s", (value, a))),
        ("public-name", ["callerid", "policy", a, "--public-name", value],
         ("UPDATE subscriber SET public_name = %s WHERE number = %s", (value, a))),
        ("display-tag", ["did", "add", did, trunk, a, "--display-tag", value],
         ("UPDATE did SET display_tag = %s WHERE number = %s", (value, did))),
        ("display-format", ["ringall", "change", group, "--display-format", value + " {caller}"],
         ("UPDATE ringall_group SET display_format = %s WHERE name = %s", (value + " {caller}", group))),
    ]


def values(proxy, a, did, group):
    with psycopg.connect(proxy.settings.database_url) as conn:
        return conn.execute(
            "SELECT s.display_name, s.public_name, d.display_tag, r.display_format FROM subscriber s, did d, "
            "ringall_group r WHERE s.number = %s AND d.number = %s AND r.name = %s", (a, did, group)).fetchone()


@pytest.mark.parametrize("bad, rule", [
    (INJECTION, "control character"),
    ("Alice\nBob", "control character"),
    ("Alice\u2028Bob", "line separator"),
    ("Alice\u202eevil", "format character"),
    ("x" * 100, "at most"),
])
def test_kemictl_refuses_header_text_with_control_characters_naming_field_and_rule(proxy, bad, rule):
    a, trunk, did, group = fresh(proxy)
    before = values(proxy, a, did, group)
    for field, args, _sql in cases(a, trunk, did, group, bad):
        out = proxy.kemictl(*args, check=False)
        assert out.returncode == 2, (field, out.stdout, out.stderr)
        assert f"field '{field}'" in out.stderr and rule in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert values(proxy, a, did, group) == before


def test_kemictl_refuses_invalid_utf8(proxy):
    a, *_ = fresh(proxy)
    import os
    import subprocess
    from kemi.config import ROOT
    out = subprocess.run([os.fsencode(ROOT / "kemictl"), b"subscriber", b"change", a.encode(), b"--name", b"Al\xffce"],
                         capture_output=True, env=proxy.env(), timeout=30)
    assert out.returncode == 2, out.stderr
    assert b"field 'name': must be valid UTF-8" in out.stderr


@pytest.mark.parametrize("bad", ["A\r\nContact: <sip:e@x>", "Alice\x07", "Alice\u200bBob", "y" * 100])
def test_the_database_refuses_header_text_with_control_characters(proxy, bad):
    a, trunk, did, group = fresh(proxy)
    for field, _args, (statement, params) in cases(a, trunk, did, group, bad):
        with psycopg.connect(proxy.settings.database_url) as conn:
            with pytest.raises(psycopg.errors.CheckViolation) as refused:
                conn.execute(statement, params)
            # over-long values may also meet the older length checks (..._check)
            assert refused.value.diag.constraint_name.endswith("_printable" if len(bad) < 30 else ""), refused.value
    # and an INSERT, not only an UPDATE
    with psycopg.connect(proxy.settings.database_url) as conn:
        with pytest.raises(psycopg.errors.CheckViolation) as refused:
            conn.execute("INSERT INTO subscriber (number, ha1, display_name) VALUES (%s, %s, %s)",
                         (f"59{a[-6:]}1", HA1, bad))
        assert refused.value.diag.constraint_name == "subscriber_display_name_printable"


def test_weird_but_legal_text_is_accepted_and_arrives_correctly_quoted(proxy):
    (a, pa), (b, pb) = proxy.subscriber(), proxy.subscriber()
    weird = 'O\'Brien "VIP" \\ Ünïcødé <x>;'
    name, number = f"sf-quote{next(_ids)}", f"7{b[1:]}"
    proxy.kemictl("ringall", "add", name, number, "--display-format", weird + " {caller}")
    proxy.kemictl("ringall", "members", name, b)
    proxy.kemictl("subscriber", "change", a, "--name", weird)   # accepted as well
    callee = proxy.phone(b, pb)
    call = proxy.call(a, pa, number)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    invite = callee.invites()[0]
    from_line = next(ln for ln in invite.splitlines() if re.match(r"(?i)^(from|f)\s*:", ln))
    # SIPp's own display name is "Caller N"; the format puts it after the escaped text
    expected = '"O\'Brien \\"VIP\\" \\\\ Ünïcødé <x>; Caller ' + a + '" <sip:' + a + "@"
    assert expected in from_line, from_line
    assert "evil" not in invite


def test_weak_passwords_are_refused_and_generated_ones_stay_the_default(proxy):
    number = f"58{next(_ids):06d}"
    for password, rule in [("short", "at least 10"), (f"x{number}x", "must not contain the SIP number"),
                           ("password", "at least 10"), ("aaaaaaaaaaaa", "too easy"), ("1234567890", "too easy")]:
        out = proxy.kemictl("subscriber", "add", number, "--password", password, check=False)
        assert out.returncode == 2 and rule in out.stderr, (password, out.stderr)
    out = proxy.kemictl("subscriber", "add", number)
    assert "with password" in out.stdout
    generated = out.stdout.rsplit(" ", 1)[1].strip()
    assert len(generated) >= 16


def test_migration_repairs_existing_bad_rows_instead_of_failing(proxy):
    """Rows written before 006 with CR/LF or too long are repaired (forbidden characters
    become spaces, cut to the limit), so the migration never fails on a live database."""
    name = f"kemi_mig{next(_ids)}"
    admin = proxy.stack.postgres._admin_dsn()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    dsn = admin.rsplit("/", 1)[0] + "/" + name
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for path in migrate.migrations():
                if path.name < "006":
                    conn.execute(path.read_text())
            conn.execute("INSERT INTO subscriber (number, ha1, display_name, public_name) VALUES "
                         "('1001', %s, %s, %s), ('1002', %s, 'Plain Bob', NULL)",
                         (HA1, INJECTION, "\r\n", HA1))
            conn.execute("INSERT INTO ringall_group (name, number, display_format) VALUES ('g', '7001', %s)",
                         ("\x1b[31m{caller}",))
            six = next(p for p in migrate.migrations() if p.name.startswith("006"))
            conn.execute(six.read_text())
            rows = conn.execute("SELECT number, display_name, public_name FROM subscriber ORDER BY number").fetchall()
            fmt = conn.execute("SELECT display_format FROM ringall_group").fetchone()[0]
        assert rows == [("1001", "Alice  Contact: <sip:evil@192.0.2.66>", None), ("1002", "Plain Bob", None)]
        assert fmt == "[31m{caller}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
