"""The call journal without a database: the writer (kemi/journal.py), reading its files
(tools/journal_files.py), the wording of `kemictl journal` (provision/journal.py), and the
order in which the stack stops."""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from kemi import journal
from provision import journal as wording
from tools import journal_files


@pytest.fixture(autouse=True)
def unconfigured():
    journal.configure(None)
    yield
    journal.configure(None)


def lines(directory) -> dict[str, list[dict]]:
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        assert data.endswith(b"\n"), name
        out[name] = [json.loads(line) for line in data.split(b"\n")[:-1]]
    return out


def every_event(call_id: str) -> None:
    journal.call_started(call_id, "77721401", "8008001", "ringall", "sales")
    journal.queued(call_id, "support")
    journal.offered(call_id, "77721402")
    journal.leg_ended(call_id, "77721402", "answered_elsewhere", 487)
    journal.answered(call_id, "77721403")
    journal.call_ended(call_id, 200, "BYE")


# ------------------------------------------------------------------ the writer

def test_unconfigured_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    errors = journal.errors
    every_event("c1")
    assert os.listdir(tmp_path) == []
    assert journal.errors == errors


def test_each_event_is_one_complete_json_line(tmp_path):
    journal.configure(str(tmp_path))
    before = time.time()
    every_event("abc@host")
    files = lines(tmp_path / "journal")
    [(name, records)] = files.items()
    assert name.startswith(f"{os.getpid()}-") and name.endswith(".jsonl")
    assert [r["event"] for r in records] == ["call_started", "queued", "offered", "leg_ended", "answered", "call_ended"]
    assert all(r["call_id"] == "abc@host" and before <= r["ts"] <= time.time() for r in records)
    assert records[0] | {"ts": 0} == {"ts": 0, "event": "call_started", "call_id": "abc@host", "caller": "77721401",
                                      "dialled": "8008001", "kind": "ringall", "target": "sales"}
    assert records[1]["target"] == "support"
    assert records[3] | {"ts": 0} == {"ts": 0, "event": "leg_ended", "call_id": "abc@host", "member": "77721402",
                                      "outcome": "answered_elsewhere", "code": 487}
    assert (records[4]["member"], records[5]["code"], records[5]["reason"]) == ("77721403", 200, "BYE")


def test_odd_values_never_break_a_line(tmp_path):
    journal.configure(str(tmp_path))
    journal.call_started("a\nb\x00\"c", object(), b"\xff", "direct")
    journal.leg_ended("x", "y", "failed", code="oops")
    [records] = lines(tmp_path / "journal").values()
    assert records[0]["call_id"] == "a\nb\x00\"c" and records[0]["target"] is None
    assert records[1]["code"] == "oops"


def _writer(var_dir: str, worker: int, count: int) -> None:
    # Like a Kamailio worker: configured by the parent before the fork.
    for i in range(count):
        journal.offered(f"{worker}-{i}", "7" * (worker * 50 + 1))
    os._exit(0)


def test_forked_writers_never_share_interleave_or_split_lines(tmp_path):
    journal.configure(str(tmp_path))
    journal.call_started("parent", "1", "2", "direct")  # the parent has its file open when it forks
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 10_000)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    files = lines(tmp_path / "journal")  # every line parses
    assert len(files) == 5
    by_writer = {}
    for name, records in files.items():
        writers = {r["call_id"].split("-")[0] for r in records}
        assert len(writers) == 1, f"{name} has records of {writers}"
        by_writer[writers.pop()] = records
    assert [r["call_id"] for r in by_writer["parent"]] == ["parent"]
    for w in range(4):
        assert [r["call_id"] for r in by_writer[str(w)]] == [f"{w}-{i}" for i in range(10_000)]
        assert {r["member"] for r in by_writer[str(w)]} == {"7" * (w * 50 + 1)}


def test_unwritable_directory_never_raises(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    messages = []
    monkeypatch.setattr(journal, "errors", 0)
    journal.configure(str(not_a_dir), log=messages.append)
    for i in range(500):
        every_event(f"c{i}")
    assert journal.errors == 3000
    assert len(messages) == 4 and "cannot write" in messages[0]  # the 1st, 1000th, 2000th, 3000th


def test_journal_path_taken_by_a_file_never_raises(tmp_path):
    (tmp_path / "journal").write_text("not a directory")
    journal.configure(str(tmp_path))
    errors = journal.errors
    every_event("c1")
    assert journal.errors == errors + 6


def test_a_full_file_is_ended_and_the_next_one_started(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "MAX_FILE_BYTES", 1000)
    journal.configure(str(tmp_path))
    for i in range(40):
        journal.offered(f"call-{i}", "77721401")
    files = lines(tmp_path / "journal")
    assert len(files) > 2
    names = sorted(files, key=lambda n: int(n.split("-")[1].split(".")[0]))
    for name in names[:-1]:
        assert files[name][-1]["event"] == "eof"
        assert journal_files.ended(str(tmp_path / "journal" / name), (tmp_path / "journal" / name).stat().st_size)
    assert not journal_files.ended(str(tmp_path / "journal" / names[-1]), (tmp_path / "journal" / names[-1]).stat().st_size)
    shipped = [r["call_id"] for n in names for r in files[n] if r["event"] != "eof"]
    assert shipped == [f"call-{i}" for i in range(40)]


# ------------------------------------------------------------------ reading the files

def test_read_takes_complete_lines_only_and_skips_broken_ones(tmp_path):
    path = tmp_path / "1-1.jsonl"
    good = json.dumps({"ts": 1700000000.5, "event": "offered", "call_id": "c", "member": "m"}).encode() + b"\n"
    path.write_bytes(good + b"not json\n" + good + b'{"ts": 1, "event": "eof"}\n' + good[:10])
    chunk = journal_files.read(str(path), 0, 100)
    assert [r[0] for r in chunk.rows] == [0, len(good) + 9]
    assert chunk.bad == [len(good)]
    assert chunk.end == path.stat().st_size - 10
    row = dict(zip(("offset", *journal_files.COLUMNS), chunk.rows[0]))
    assert row["ts"] == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=timezone.utc)
    assert (row["call_id"], row["event"], row["member"], row["outcome"]) == ("c", "offered", "m", None)
    again = journal_files.read(str(path), chunk.end, 100)
    assert (again.rows, again.end) == ([], chunk.end)
    limited = journal_files.read(str(path), 0, 1)
    assert (len(limited.rows), limited.end) == (1, len(good))


@pytest.mark.parametrize("record", [
    {"event": "offered", "call_id": "c"},                       # no time
    {"ts": "now", "event": "offered", "call_id": "c"},
    {"ts": 1e30, "event": "offered", "call_id": "c"},
    {"ts": 1.0, "event": "dance", "call_id": "c"},
    {"ts": 1.0, "event": "offered", "call_id": ""},
    [1, 2],
])
def test_parse_refuses_what_is_not_a_record(record):
    assert journal_files.parse(json.dumps(record).encode()) is None


def test_parse_makes_text_storable():
    row = journal_files.parse(json.dumps({"ts": 1, "event": "leg_ended", "call_id": "a\u0000b\ud800",
                                          "member": 7, "code": "486", "reason": "x" * 1000}).encode())
    values = dict(zip(journal_files.COLUMNS, row))
    assert values["call_id"] == "ab?" and values["member"] == "7" and values["code"] == 486
    assert len(values["reason"]) == journal_files.TEXT_MAX
    assert journal_files.code(1000) is None and journal_files.code(None) is None


def test_a_file_is_finished_when_ended_or_its_writer_is_gone(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    files = {name: tmp_path / name for name in (f"{dead_pid}-1.jsonl", f"{os.getpid()}-1.jsonl", f"{os.getpid()}-2.jsonl")}
    files[f"{dead_pid}-1.jsonl"].write_text('{"ts":1,"event":"offered","call_id":"c"}\n')
    files[f"{os.getpid()}-1.jsonl"].write_text('{"ts":1,"event":"offered","call_id":"c"}\n{"ts":2,"event":"eof"}\n')
    files[f"{os.getpid()}-2.jsonl"].write_text('{"ts":1,"event":"offered","call_id":"c"}\n')
    now = time.time() + 100
    state = {name: journal_files.finished(str(p), p.stat(), now, idle=10) for name, p in files.items()}
    assert state == {f"{dead_pid}-1.jsonl": True, f"{os.getpid()}-1.jsonl": True, f"{os.getpid()}-2.jsonl": False}
    assert not journal_files.finished(str(files[f"{dead_pid}-1.jsonl"]), files[f"{dead_pid}-1.jsonl"].stat(),
                                      time.time(), idle=10)  # written just now


# ------------------------------------------------------------------ kemictl journal wording

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=timezone.utc)


def call(call_id="c1", **kw) -> dict:
    base = {"call_id": call_id, "first_at": T0, "started_at": T0, "caller": "77721401", "dialled": "8008100",
            "kind": "ringall", "target": "sales", "queued_at": None, "queue": None, "answered_at": None,
            "answered_by": None, "ended_at": None, "end_code": None, "end_reason": None,
            "wait_seconds": None, "talk_seconds": None}
    return base | kw


def leg(member, outcome, ring=None, code=None, call_id="c1", offered=True) -> dict:
    return {"call_id": call_id, "member": member, "offered_at": T0 if offered else None,
            "ended_at": T0 + timedelta(seconds=ring or 0), "outcome": outcome, "code": code, "ring_seconds": ring}


def test_ring_all_answered_elsewhere_names_who_took_it():
    c = call(answered_at=T0 + timedelta(seconds=3), answered_by="77721402", ended_at=T0 + timedelta(seconds=63),
             end_code=200, talk_seconds=60.0)
    [row] = wording.member_rows("77721403", [c], [leg("77721403", "answered_elsewhere", 3.04, 487)])
    assert row[1:] == ("77721401", "8008100", "ring-all sales", "answered elsewhere by 77721402", "3.0s", "-",
                       wording.clock(T0 + timedelta(seconds=63)) + " after 1m00s talk")
    [row] = wording.member_rows("77721402", [c], [leg("77721402", "answered", 3.0, 200)])
    assert row[4] == "answered"


def test_hunt_outcomes_say_who_answered_in_the_end():
    c = call(kind="hunt", target=None, answered_by="77721404", answered_at=T0, ended_at=T0, end_code=200, talk_seconds=0)
    assert wording.member_rows("77721402", [c], [leg("77721402", "busy", 0.2, 486)])[0][3:6] == \
        ("hunt", "busy; answered by 77721404", "0.2s")
    assert wording.member_rows("77721403", [c], [leg("77721403", "no_answer", 15.0, 408)])[0][4] == \
        "no answer; answered by 77721404"
    assert wording.member_rows("77721405", [c], [leg("77721405", "not_registered", offered=False)])[0][4:6] == \
        ("not registered; answered by 77721404", "-")


def test_queue_wait_outgoing_and_unanswered_calls():
    queued = call(kind="queue", target="support", queue="support", queued_at=T0, wait_seconds=25.0,
                  ended_at=T0 + timedelta(seconds=30), end_code=487)
    row = wording.member_rows("77721402", [queued], [leg("77721402", "no_answer", 15.0, 408),
                                                     leg("77721402", "cancelled", 5.0, 487)])[0]
    assert row[3:7] == ("queue support", "cancelled (offered 2x)", "20.0s", "25.0s")
    assert row[7].endswith("(487)")
    mine = call(caller="77721402", ended_at=T0, end_code=480, end_reason="Temporarily Unavailable")
    assert wording.member_rows("77721402", [mine], [])[0][4] == "outgoing, not answered (480 Temporarily Unavailable)"
    ringing = call()
    assert wording.member_rows("77721402", [ringing], [leg("77721402", None)])[0][4] == "ringing"
    assert wording.seconds(125.4) == "2m05s"


# ------------------------------------------------------------------ the stack

def test_stack_stops_kamailio_before_the_shipper_drains():
    from kemi.config import Settings
    from tools.stack import Stack
    stack = Stack(Settings(dsn="postgresql://nobody@127.0.0.1:1/none"))
    order = []
    for name in ("kamailio", "shipper", "rtpengine"):
        getattr(stack, name).stop = lambda name=name: order.append(name)
    stack.stop()
    assert order == ["kamailio", "shipper", "rtpengine"]
