"""The agent shipper (issue 11): moves agent state changes and queue statistics from
var_dir/agents/<pid>.jsonl (appended by Kamailio's processes, kemi/agent_keys.py) into
PostgreSQL (queue_agent / ringall_member state columns, agent_stat; sql/013), so agent state
survives a restart while no SIP worker ever talks to the database.

Every TICK it reads the new complete lines of every file and applies them in one transaction
together with the new read offsets (agent_event_offset): a crash neither loses nor repeats a
change. A state line is applied only if it is newer than the row's state_at (kemictl may have
written a newer state meanwhile). None of these columns makes the directory loader reload.
A file whose writer is gone, fully shipped and idle for REMOVE_IDLE seconds is removed.
SIGTERM or SIGINT: ship what is left, exit.

    python -m tools.agent_shipper        # settings from KEMI_* like everything else
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import psycopg

from kemi import agent_state
from kemi.config import Settings
from kemi.core import agent_machine as am

TICK = 0.2
REMOVE_IDLE = 60.0
RECONNECT = 1.0
MAX_BYTES = 1 << 20     # read at most this much of one file per transaction


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} agent-shipper: {message}", flush=True)


def apply_line(conn, line: bytes) -> bool:
    """One event into the database; False (and a log line) for a line that is no event."""
    try:
        rec = json.loads(line)
        if rec.get("t") == "state":
            decoded = am.decode_state(rec["state"])
            if decoded is None or rec["kind"] not in (am.QUEUE, am.RINGALL):
                raise ValueError(f"bad state {rec.get('state')!r}")
            m = am.Membership(rec["kind"], str(rec["group"]), *decoded)
            agent_state.save(conn, str(rec["agent"]), [m], float(rec["ts"]))
        elif rec.get("t") == "stat":
            agent_state.add_stats(conn, str(rec["queue"]), str(rec["agent"]), int(rec["ans"]), int(rec["talk"]),
                                  int(rec["end"]), int(rec["miss"]))
        else:
            raise ValueError("unknown event")
        return True
    except (ValueError, KeyError, TypeError) as err:
        log(f"skipped a line ({err}): {line[:200]!r}")
        return False


class Shipper:
    def __init__(self, settings: Settings, tick: float = TICK):
        self.dir = Path(agent_state.events_directory(settings.var_dir))
        self.dsn = settings.database_url
        self.tick = tick
        self.pidfile = Path(settings.var_dir) / "run" / "agent-shipper.pid"
        self.conn: psycopg.Connection | None = None
        self.offsets: dict[str, int] = {}
        self.stopping = False
        self.shipped = 0

    def connect(self) -> None:
        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        if not conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", ("kemi-agents " + str(self.dir),)).fetchone()[0]:
            conn.close()
            raise RuntimeError(f"another agent shipper holds {self.dir}")
        self.offsets = dict(conn.execute('SELECT file, "offset" FROM agent_event_offset').fetchall())
        self.conn = conn

    def ship_once(self) -> int:
        """Ship the new lines of every file; returns how many events were applied."""
        assert self.conn is not None
        done = 0
        for path in sorted(self.dir.glob("*.jsonl")):
            offset = self.offsets.get(path.name, 0)
            try:
                size = path.stat().st_size
                if size <= offset:
                    continue
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read(min(size - offset, MAX_BYTES))
            except OSError:
                continue
            end = data.rfind(b"\n") + 1
            if end == 0:
                continue
            with self.conn.transaction():
                for line in data[:end].splitlines():
                    if line.strip():
                        done += apply_line(self.conn, line)
                self.conn.execute('INSERT INTO agent_event_offset (file, "offset") VALUES (%s, %s) '
                                  'ON CONFLICT (file) DO UPDATE SET "offset" = excluded."offset"',
                                  [path.name, offset + end])
            self.offsets[path.name] = offset + end
        self.shipped += done
        return done

    def housekeeping(self) -> None:
        """Remove shipped files of processes that are gone, idle for REMOVE_IDLE seconds."""
        assert self.conn is not None
        for path in self.dir.glob("*.jsonl"):
            try:
                pid = int(path.stem)
                st = path.stat()
            except (ValueError, OSError):
                continue
            if st.st_size != self.offsets.get(path.name) or time.time() - st.st_mtime < REMOVE_IDLE or _alive(pid):
                continue
            with self.conn.transaction():
                self.conn.execute("DELETE FROM agent_event_offset WHERE file = %s", [path.name])
                path.unlink(missing_ok=True)
            self.offsets.pop(path.name, None)

    def run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        next_housekeeping = 0.0
        written = False
        while True:
            try:
                if self.conn is None:
                    self.connect()
                    log(f"shipping {self.dir} to the database")
                if not written:
                    self.pidfile.write_text(str(os.getpid()))
                    written = True
                self.ship_once()
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + 5.0
                    self.housekeeping()
            except (psycopg.Error, RuntimeError, OSError) as err:
                log(f"database: {err}; retrying in {RECONNECT:.0f} s")
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if self.stopping:
                    return
                time.sleep(RECONNECT)
                continue
            if self.stopping:
                log(f"stopped after shipping {self.shipped} events")
                return
            time.sleep(self.tick)

    def _stop(self, _sig, _frame) -> None:
        self.stopping = True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main() -> int:
    Shipper(Settings.from_env()).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
