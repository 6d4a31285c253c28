"""The call journal, writing side: one JSON line per call event, appended to a file of this
process (var_dir/journal/<pid>-<ns>.jsonl), never a database query on the call path.

Kamailio workers must not block on PostgreSQL and cannot run threads, so each event is one
`os.write` of one complete line to a file opened with O_APPEND: a record is never split or
interleaved, it is in the page cache (and so survives a Kamailio stop or crash) as soon as
the call returns, and it costs a few microseconds. tools/journal_shipper.py, a process
outside Kamailio, tails the directory and moves the records into PostgreSQL.

Every function is a no-op until `configure(var_dir)` ran, and none ever raises: an error is
counted in `errors` and logged (the first, then every 1000th). The file is opened lazily in
the process that writes, so `configure` may run before Kamailio forks its workers; a process
starts a new file when its file reaches MAX_FILE_BYTES, ending the old one with an "eof"
record so the shipper knows it may remove it once shipped.
"""
from __future__ import annotations

import json
import os
import time

from kemi.config import ROOT

EVENTS = ("call_started", "queued", "offered", "leg_ended", "answered", "call_ended", "eof")
KINDS = ("direct", "hunt", "service", "ringall", "queue", "trunk")
OUTCOMES = ("answered", "busy", "no_answer", "declined", "failed", "not_registered", "cancelled",
            "answered_elsewhere", "logged_out")
SUFFIX = ".jsonl"
MAX_FILE_BYTES = 64 * 1024 * 1024
RETRY_SECONDS = 1.0  # after a failed open, writes are dropped (and counted) this long

errors = 0      # records that could not be written, since start
_dir: str | None = None
_log = None
_fd = -1
_pid = 0
_size = 0
_last_ns = 0
_retry_at = 0.0
_open_error: Exception | None = None
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def directory(var_dir: str) -> str:
    """Where the files go; a relative var_dir is relative to the repository, like the
    launcher's (Kamailio's working directory is not)."""
    return os.path.join(ROOT, var_dir, "journal")


def configure(var_dir: str | None, log=None) -> None:
    """Write records under var_dir/journal from now on (None: stop writing). `log` is called
    with a message when writing fails."""
    global _dir, _log, _retry_at
    _close()
    _dir = directory(var_dir) if var_dir else None
    _log = log
    _retry_at = 0.0


# ------------------------------------------------------------------ the events

def call_started(call_id: str, caller: str, dialled: str, kind: str, target: str | None = None) -> None:
    """A call arrived; kind is one of KINDS, target the group, queue or trunk name."""
    _emit({"ts": time.time(), "event": "call_started", "call_id": call_id, "caller": caller,
           "dialled": dialled, "kind": kind, "target": target})


def queued(call_id: str, queue: str) -> None:
    """The caller starts waiting in `queue`."""
    _emit({"ts": time.time(), "event": "queued", "call_id": call_id, "target": queue})


def offered(call_id: str, member: str) -> None:
    """A member or agent starts ringing."""
    _emit({"ts": time.time(), "event": "offered", "call_id": call_id, "member": member})


def leg_ended(call_id: str, member: str, outcome: str, code: int | None = None) -> None:
    """A member's leg is over; outcome is one of OUTCOMES (skipped members too: no offered)."""
    _emit({"ts": time.time(), "event": "leg_ended", "call_id": call_id, "member": member,
           "outcome": outcome, "code": code})


def answered(call_id: str, member: str) -> None:
    """`member` took the call."""
    _emit({"ts": time.time(), "event": "answered", "call_id": call_id, "member": member})


def call_ended(call_id: str, code: int, reason: str | None = None) -> None:
    """The final reply went to the caller, or a BYE ended the call (code 200: after talk)."""
    _emit({"ts": time.time(), "event": "call_ended", "call_id": call_id, "code": code, "reason": reason})


def agent_paused(call_id: str, member: str, target: str, reason: str) -> None:
    """phones: an agent was paused in queue `target` (auto-pause after unanswered offers)."""
    _emit({"ts": time.time(), "event": "agent_paused", "call_id": call_id, "member": member,
           "target": target, "reason": reason})


# ------------------------------------------------------------------ the file

def _emit(record: dict) -> None:
    global _size, errors
    if _dir is None:
        return
    try:
        data = _dumps(record).encode() + b"\n"
        fd = _fd if _fd >= 0 and _pid == os.getpid() else _open()
        if fd < 0:
            errors += 1
            _report(_open_error)
            return
        written = os.write(fd, data)
        _size += written
        if written != len(data):  # disk full: end the broken line, the shipper skips it
            _size += os.write(fd, b"\n")
            raise OSError(f"short write ({written} of {len(data)} bytes)")
        if _size >= MAX_FILE_BYTES:
            _end_file()
    except Exception as err:  # never into the call path
        errors += 1
        _report(err)


def _open() -> int:
    """This process's file: a new one (the fd of a parent, inherited by fork, is left alone)."""
    global _fd, _pid, _size, _last_ns, _retry_at, _open_error
    if _pid != os.getpid():
        _fd, _pid, _last_ns = -1, os.getpid(), 0
    if time.monotonic() < _retry_at:
        return -1
    _last_ns = max(time.time_ns(), _last_ns + 1)
    path = os.path.join(_dir, f"{_pid}-{_last_ns}{SUFFIX}")
    try:
        os.makedirs(_dir, exist_ok=True)
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        _retry_at = time.monotonic() + RETRY_SECONDS
        _open_error = err
        return -1
    _size = 0
    return _fd


def _end_file() -> None:
    """Mark the file complete for the shipper; the next record opens a new one."""
    try:
        os.write(_fd, _dumps({"ts": time.time(), "event": "eof"}).encode() + b"\n")
    except OSError:
        pass  # the shipper still removes it once this process is gone
    _close()


def _close() -> None:
    global _fd
    if _fd >= 0 and _pid == os.getpid():
        try:
            os.close(_fd)
        except OSError:
            pass
    _fd = -1


def _report(err: Exception | None) -> None:
    if _log is not None and (errors == 1 or errors % 1000 == 0):
        try:
            _log(f"journal: cannot write under {_dir} ({errors} records lost so far): {err}")
        except Exception:
            pass
