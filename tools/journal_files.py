"""Reading the journal files kemi/journal.py writes (no database here): which files there
are, the complete lines after an offset as journal_event rows, and when a file may go."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone

from kemi.journal import EVENTS, SUFFIX

# journal_event columns filled from a record, after (file_id, file_offset)
COLUMNS = ("ts", "call_id", "event", "member", "outcome", "code", "caller", "dialled", "kind", "target", "reason")
TEXT_MAX = 256
READ_BYTES = 1 << 20
EOF_RECORD_MAX = 128


@dataclass
class Chunk:
    """The complete lines of one file from `start` to `end` (bytes), as rows."""
    start: int
    end: int
    rows: list[tuple] = field(default_factory=list)  # (file_offset, *COLUMNS)
    bad: list[int] = field(default_factory=list)     # offsets of lines that were skipped


def names(directory: str) -> dict[str, os.stat_result]:
    """The journal files in `directory` with their stat; none if it does not exist."""
    try:
        with os.scandir(directory) as it:
            return {e.name: e.stat() for e in it if e.name.endswith(SUFFIX) and e.is_file()}
    except FileNotFoundError:
        return {}


def read(path: str, offset: int, max_records: int, max_bytes: int = READ_BYTES) -> Chunk:
    """Up to `max_records` complete lines after `offset`; a trailing partial line (a write in
    progress) is left for the next read."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(max_bytes)
    chunk = Chunk(offset, offset)
    pos = 0
    while len(chunk.rows) < max_records:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line_offset, line = offset + pos, data[pos:nl]
        pos = nl + 1
        record = parse(line)
        if record is None:
            chunk.bad.append(line_offset)
        elif record != "eof":
            chunk.rows.append((line_offset, *record))
    if pos == 0 and max_records > 0 and len(data) >= max_bytes:  # a line longer than max_bytes: not ours, skip it
        chunk.bad.append(offset)
        pos = len(data)
    chunk.end = offset + pos
    return chunk


def parse(line: bytes) -> tuple | str | None:
    """A journal line as a row (COLUMNS), "eof" for the writer's end marker, None if broken."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    event = record.get("event")
    if event == "eof":
        return "eof"
    ts = timestamp(record.get("ts"))
    call_id = text(record.get("call_id"))
    if event not in EVENTS or ts is None or not call_id:
        return None
    return (ts, call_id, event, text(record.get("member")), text(record.get("outcome")),
            code(record.get("code")), text(record.get("caller")), text(record.get("dialled")),
            text(record.get("kind")), text(record.get("target")), text(record.get("reason")))


def timestamp(value) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    try:
        return datetime.fromtimestamp(value, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def code(value) -> int | None:
    try:
        value = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if 0 <= value <= 999 else None


def text(value) -> str | None:
    """As PostgreSQL text can store it: no NUL, valid UTF-8, at most TEXT_MAX characters."""
    if value is None:
        return None
    value = str(value).replace("\x00", "")
    return value.encode("utf-8", "replace").decode("utf-8")[:TEXT_MAX]


# ------------------------------------------------------------------ removal

def writer_pid(name: str) -> int | None:
    try:
        return int(name.split("-", 1)[0])
    except ValueError:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ended(path: str, size: int) -> bool:
    """The writer put its end marker on the last line: it never writes to this file again."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, size - EOF_RECORD_MAX))
            tail = f.read(EOF_RECORD_MAX)
    except OSError:
        return False
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    return tail.endswith(b"\n") and parse(lines[-1]) == "eof"


def finished(path: str, stat: os.stat_result, now: float, idle: float) -> bool:
    """Nobody will write to this file again: idle for `idle` seconds, and its writer ended it
    or is gone."""
    if now - stat.st_mtime < idle:
        return False
    if ended(path, stat.st_size):
        return True
    pid = writer_pid(os.path.basename(path))
    return pid is not None and not pid_alive(pid)
