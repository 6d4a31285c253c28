"""kemictl against the real database: transactions, validation messages, import/export."""
from __future__ import annotations

import hashlib

import psycopg
import pytest

from provision.demo import EXAMPLE_1, NUMBERS


def count(proxy, table: str) -> int:
    with psycopg.connect(proxy.settings.database_url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture(scope="module")
def example1(proxy):
    for number in NUMBERS:
        proxy.kemictl("subscriber", "add", number, "--password", "example-pass")
    proxy.kemictl("hunt", "import", "example1", "-", stdin=EXAMPLE_1)
    return proxy


def test_passwords_are_stored_as_ha1_only(proxy):
    number, password = proxy.subscriber("a-long-password")
    with psycopg.connect(proxy.settings.database_url) as conn:
        row = conn.execute("SELECT * FROM subscriber WHERE number = %s", (number,)).fetchone()
    assert password not in " ".join(str(c) for c in row)
    expected = hashlib.md5(f"{number}:{proxy.settings.realm}:{password}".encode()).hexdigest()
    assert expected in row


def test_example1_exports_as_imported(example1):
    exported = example1.kemictl("hunt", "export", "example1").stdout
    assert exported.replace("00000", "0000") == EXAMPLE_1.replace("00000", "0000")
    csv = example1.kemictl("hunt", "export", "example1", "--csv").stdout
    assert csv.splitlines()[1] == "77721401,77721402,8008001,77721401"


def test_show_chain_as_it_would_ring(example1):
    out = example1.kemictl("hunt", "show", "8008003").stdout
    lines = out.splitlines()[1:]
    assert [line.split()[1] for line in lines] == ["77721403", "77721404", "77721405", "77721406"]
    assert all("not registered" in line for line in lines)
    assert "15s" in lines[0]


def test_reimport_with_csv_and_ring_timeout(example1):
    table = example1.kemictl("hunt", "export", "example1", "--csv").stdout
    example1.kemictl("hunt", "import", "example1", "-", "--ring-timeout", "7", stdin=table)
    assert "7s" in example1.kemictl("hunt", "show", "8008001").stdout
    example1.kemictl("hunt", "ring-timeout", "77721402", "20")
    lines = example1.kemictl("hunt", "show", "8008001").stdout.splitlines()
    assert "20s" in lines[2] and "7s" in lines[1]
    example1.kemictl("hunt", "ring-timeout", "example1", "default")
    example1.kemictl("hunt", "ring-timeout", "77721402", "default")


@pytest.mark.parametrize("table,message", [
    ("77721401\t77721499\t1\t1\n", "line 1, field 'Next Number': 77721499 is not an existing active SIP number"),
    ("77721401\t0000\t77721402\t77721401\n", "line 1, field 'Service number': 77721402 is a SIP number"),
    ("77721401\t0000\t7000001\t1\n", "line 1, field 'Start number': service number 7000001 needs a start number"),
    ("77721401\t0000\t7000001\t77721402\n", "line 1, field 'Start number': 77721402 is not a SIP number of this group"),
    ("77721401\t0000\t7000001\t77721401\n77721402\t0000\t7000002\t77721401\n77721403\t0000\t7000003\t77721401\n"
     "77721404\t0000\t7000004\t77721401\n", "already a member of group 'example1'"),
    ("88000001\t77721402\t7000001\t88000001\n", "88000001 is not an existing active SIP number"),
    ("77721401\tx\t1\t1\n", "line 1, field 'Next Number': 'x' is not a number"),
    ("77721401\t0000\t1\n", "line 1: expected 4 fields"),
])
def test_invalid_tables_name_line_field_and_rule_and_write_nothing(example1, table, message):
    before = (count(example1, "hunt_member"), count(example1, "service_number"), count(example1, "hunt_group"))
    out = example1.kemictl("hunt", "import", "bad", "-", stdin=table, check=False)
    assert out.returncode == 2
    assert message in out.stderr, out.stderr
    assert (count(example1, "hunt_member"), count(example1, "service_number"), count(example1, "hunt_group")) == before


def test_a_loop_is_rejected_naming_the_loop(proxy):
    a, _ = proxy.subscriber()
    b, _ = proxy.subscriber()
    c, _ = proxy.subscriber()
    table = f"{a}\t{b}\t7{a}\t{a}\n{b}\t{c}\t1\t1\n{c}\t{a}\t1\t1\n"
    out = proxy.kemictl("hunt", "import", "loop", "-", stdin=table, check=False)
    assert out.returncode == 2
    assert f"loops back on itself: {a} -> {b} -> {c} -> {a}" in out.stderr, out.stderr


def test_more_service_numbers_than_sip_numbers_is_rejected(proxy):
    a, _ = proxy.subscriber()
    b, _ = proxy.subscriber()
    # two rows, but a third service number cannot fit the four-column table: use two
    # rows with service numbers and one member row to make services outnumber members
    table = f"{a}\t0000\t7{a}\t{a}\n{a}\t0000\t8{a}\t{a}\n"
    out = proxy.kemictl("hunt", "import", "toomany", "-", stdin=table, check=False)
    assert out.returncode == 2
    assert "appears twice" in out.stderr
    assert "more service numbers than SIP numbers" in out.stderr, out.stderr


def test_subscriber_lifecycle(proxy):
    number, _ = proxy.subscriber()
    proxy.kemictl("subscriber", "change", number, "--password", "another-password", "--name", "Alice")
    listed = proxy.kemictl("subscriber", "list").stdout
    assert any(line.startswith(number) and "Alice" in line for line in listed.splitlines())
    proxy.kemictl("subscriber", "disable", number)
    proxy.kemictl("subscriber", "enable", number)
    proxy.kemictl("subscriber", "remove", number)
    assert number not in proxy.kemictl("subscriber", "list").stdout


def test_subscriber_errors_name_the_field(example1):
    cases = [
        (("subscriber", "add", "12ab"), "field 'number'"),
        (("subscriber", "add", "60000001", "--password", "short"), "field 'password'"),
        (("subscriber", "add", "77721401", "--password", "long-enough"), "already exists"),
        (("subscriber", "add", "8008001", "--password", "long-enough"), "is a service number"),
        (("subscriber", "remove", "77721403"), "member of hunt group 'example1'"),
        (("subscriber", "remove", "77721406"), "next number of 77721405"),
        (("subscriber", "disable", "77721401"), "start number of service number(s) 8008001, 8008002"),
        (("hunt", "show", "424242"), "neither a service number nor a hunt group member"),
        (("hunt", "export", "nope"), "no hunt group named 'nope'"),
    ]
    for args, message in cases:
        out = example1.kemictl(*args, check=False)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)


def test_unreachable_database_is_a_clear_error(proxy):
    import os
    import subprocess
    from kemi.config import ROOT
    env = {**os.environ, **proxy.settings.to_env(), "KEMI_DSN": "postgresql://postgres@127.0.0.1:1/kemi"}
    out = subprocess.run([str(ROOT / "kemictl"), "subscriber", "list"], capture_output=True, text=True, env=env)
    assert out.returncode == 3
    assert "cannot reach the database" in out.stderr
