"""The call journal end to end: records written through kemi.journal into the stack's
var_dir/journal are shipped into PostgreSQL by the stack's shipper and shown by
`kemictl journal`; a clean shipper stop loses nothing, a killed one doubles nothing."""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import types
import uuid
from dataclasses import replace

import psycopg
import pytest

from kemi import journal
from kemi.config import ROOT
from tools.journal_shipper import Busy, Shipper

_numbers = itertools.count(1)


def numbers(count: int) -> list[str]:
    return [f"9{os.getpid() % 1000:03d}{next(_numbers):04d}" for _ in range(count)]


def new_call_id() -> str:
    return f"{uuid.uuid4().hex}@journal-test"


class Clock:
    """Stands in for the time module in kemi.journal, so ring and wait times are exact."""

    def __init__(self):
        self.now = time.time()
        self.module = types.SimpleNamespace(time=lambda: self.now, time_ns=time.time_ns, monotonic=time.monotonic)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def writer(proxy):
    journal.configure(proxy.settings.var_dir)
    yield
    journal.configure(None)


@pytest.fixture
def clock(monkeypatch, writer):
    c = Clock()
    monkeypatch.setattr(journal, "time", c.module)
    return c


def query(proxy, sql: str, *params):
    with psycopg.connect(proxy.settings.database_url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def wait_until(what: str, check, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not shipped after {timeout}s: {what}")


def wait_shipped(proxy, call_id: str, events: int) -> None:
    wait_until(f"{events} events of {call_id}", lambda: query(
        proxy, "SELECT count(*) FROM journal_event WHERE call_id = %s", call_id)[0][0] >= events)


def row_for(output: str, caller: str) -> str:
    rows = [line for line in output.splitlines() if f"  {caller}  " in line]
    assert len(rows) == 1, output
    return rows[0]


# ------------------------------------------------------------------ what kemictl shows

def test_ring_all_answered_elsewhere_shows_who_took_it(proxy, clock):
    a, b, c, caller = numbers(4)
    cid = new_call_id()
    journal.call_started(cid, caller, "8009100", "ringall", "sales")
    for member in (a, b, c):
        journal.offered(cid, member)
    clock.advance(3.2)
    journal.answered(cid, a)
    journal.leg_ended(cid, a, "answered", 200)
    journal.leg_ended(cid, b, "answered_elsewhere", 487)
    journal.leg_ended(cid, c, "answered_elsewhere", 487)
    clock.advance(60)
    journal.call_ended(cid, 200)
    wait_shipped(proxy, cid, 9)

    for member in (b, c):
        line = row_for(proxy.kemictl("journal", member).stdout, caller)
        assert f"answered elsewhere by {a}" in line, line
        assert "8009100" in line and "ring-all sales" in line and "3.2s" in line and "after 1m00s talk" in line, line
    line = row_for(proxy.kemictl("journal", a).stdout, caller)
    assert "  answered  " in line and "elsewhere" not in line, line

    out = proxy.kemictl("journal", "--call", cid).stdout
    assert f"from {caller} to 8009100 via ring-all sales" in out and f"by {a}" in out, out
    legs = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in (a, b, c)}
    assert "answered elsewhere by" in legs[b] and "487" in legs[c] and " 200 " in legs[a], out


def test_hunt_outcomes_ring_times_and_who_answered(proxy, clock):
    a, b, c, d, caller = numbers(5)
    cid = new_call_id()
    journal.call_started(cid, caller, "8009200", "hunt", "support")
    journal.offered(cid, a)
    clock.advance(0.5)
    journal.leg_ended(cid, a, "busy", 486)
    journal.offered(cid, b)
    clock.advance(15)
    journal.leg_ended(cid, b, "no_answer", 408)
    journal.leg_ended(cid, d, "not_registered")  # skipped without ringing
    journal.offered(cid, c)
    clock.advance(4)
    journal.answered(cid, c)
    journal.leg_ended(cid, c, "answered", 200)
    clock.advance(30)
    journal.call_ended(cid, 200)
    wait_shipped(proxy, cid, 10)

    expect = {a: ("busy; answered by " + c, "0.5s"), b: ("no answer; answered by " + c, "15.0s"),
              c: ("answered", "4.0s"), d: ("not registered; answered by " + c, "-")}
    for member, (outcome, ring) in expect.items():
        line = row_for(proxy.kemictl("journal", member).stdout, caller)
        assert f"  {outcome}  " in line and f"  {ring}  " in line and "hunt support" in line, (member, line)
    line = row_for(proxy.kemictl("journal", caller).stdout, caller)
    assert f"outgoing, answered by {c}" in line, line


def test_queue_wait_and_an_agent_offered_twice(proxy, clock):
    a, b, caller = numbers(3)
    cid = new_call_id()
    journal.call_started(cid, caller, "8009300", "queue", "support")
    journal.queued(cid, "support")
    clock.advance(20)
    journal.offered(cid, a)
    clock.advance(15)
    journal.leg_ended(cid, a, "no_answer", 408)
    clock.advance(10)
    journal.offered(cid, a)
    journal.offered(cid, b)
    clock.advance(5)
    journal.answered(cid, b)
    journal.leg_ended(cid, b, "answered", 200)
    journal.leg_ended(cid, a, "answered_elsewhere", 487)
    clock.advance(100)
    journal.call_ended(cid, 200)
    wait_shipped(proxy, cid, 10)

    line = row_for(proxy.kemictl("journal", a).stdout, caller)
    assert f"answered elsewhere by {b} (offered 2x)" in line and "queue support" in line, line
    assert "  20.0s  50.0s  " in line, line  # rang 15 + 5 s; waited 50 s until answered
    line = row_for(proxy.kemictl("journal", b).stdout, caller)
    assert "  answered  5.0s  50.0s  " in line and "after 1m40s talk" in line, line


def test_newest_calls_first_and_limit(proxy, clock):
    member, *callers = numbers(4)
    for caller in callers:
        cid = new_call_id()
        journal.call_started(cid, caller, "8009400", "ringall", "sales")
        journal.offered(cid, member)
        clock.advance(2)
        journal.leg_ended(cid, member, "no_answer", 408)
        journal.call_ended(cid, 480, "Temporarily Unavailable")
        clock.advance(60)
    wait_shipped(proxy, cid, 4)
    out = proxy.kemictl("journal", member, "--limit", "2").stdout.splitlines()
    assert len(out) == 3 and callers[2] in out[1] and callers[1] in out[2], out
    assert "(480)" in out[1]
    assert "no journal records" in proxy.kemictl("journal", "1234567").stdout
    refused = proxy.kemictl("journal", check=False)
    assert refused.returncode == 2 and "NUMBER or --call" in refused.stderr
    refused = proxy.kemictl("journal", "--call", "no-such-call", check=False)
    assert refused.returncode == 2 and "no journal records" in refused.stderr


# ------------------------------------------------------------------ nothing lost, nothing doubled

def count(proxy, member: str) -> tuple[int, int]:
    return query(proxy, "SELECT count(*), count(DISTINCT call_id) FROM journal_event WHERE member = %s", member)[0]


def test_clean_stop_right_after_writing_loses_nothing(proxy, writer):
    [member] = numbers(1)
    for i in range(5000):
        journal.offered(f"stop-{member}-{i}", member)
    proxy.stack.shipper.stop()  # SIGTERM: the shipper ships what is left, then exits
    try:
        assert proxy.stack.shipper.proc.returncode == 0
        assert count(proxy, member) == (5000, 5000)  # right away: shipped before it exited
    finally:
        proxy.stack.shipper.start()
    journal.offered(f"stop-{member}-after", member)  # same file, after the others
    wait_until("the record written after the restart", lambda: count(proxy, member)[0] >= 5001)
    assert count(proxy, member) == (5001, 5001)


def test_killed_shipper_restarts_without_duplicates(proxy, writer):
    [member] = numbers(1)
    for i in range(30000):
        journal.offered(f"kill-{member}-{i}", member)
    wait_until("a first batch", lambda: count(proxy, member)[0] > 0)
    proc = proxy.stack.shipper.proc
    os.killpg(proc.pid, signal.SIGKILL)  # possibly in the middle of a transaction
    proc.wait()
    print(f"killed the shipper with {count(proxy, member)[0]} of 30000 records shipped")
    proxy.stack.shipper.start()
    journal.offered(f"kill-{member}-last", member)
    wait_until("every record", lambda: count(proxy, member)[0] >= 30001)
    assert count(proxy, member) == (30001, 30001)


def test_shipped_files_of_finished_writers_are_removed(proxy, tmp_path, monkeypatch):
    """A shipper of its own (another directory, same database): files of a writer that has
    exited, and files a writer ended, go once shipped; a file still being written stays."""
    (tmp_path / "run").mkdir()
    settings = replace(proxy.settings, var_dir=str(tmp_path))
    script = "import sys; from kemi import journal; journal.configure(sys.argv[1]); journal.offered('gone', '9')"
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, check=True)
    monkeypatch.setattr(journal, "MAX_FILE_BYTES", 300)
    journal.configure(str(tmp_path))
    for i in range(8):
        journal.offered(f"rotated-{i}", "9")
    files = set(os.listdir(tmp_path / "journal"))
    assert len(files) >= 3
    shipper = Shipper(settings, remove_idle=0)
    shipper.connect()
    try:
        with pytest.raises(Busy):
            Shipper(settings).connect()
        while shipper.ship_once():
            pass
        shipper.remove_finished()
        left = os.listdir(tmp_path / "journal")  # at most the file this process writes now
        assert len(left) <= 1 and all(n.startswith(f"{os.getpid()}-") for n in left), left
        assert len(left) < len(files)
        paths = [r[0] for r in query(proxy, "SELECT path FROM journal_file WHERE starts_with(path, %s)", str(tmp_path))]
        assert [os.path.basename(p) for p in paths] == left
    finally:
        shipper.disconnect()
        journal.configure(None)
    ids = [r[0] for r in query(proxy, "SELECT call_id FROM journal_event WHERE member = '9' ORDER BY ts")]
    assert ids == ["gone"] + [f"rotated-{i}" for i in range(8)]
