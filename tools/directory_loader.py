"""The directory loader: the only process that reads routing data from PostgreSQL for the
SIP workers (kemi/store.py). It LISTENs on `kemi_config`, loads the whole Directory after
each provisioning change and writes it atomically to var/run/directory.pickle, which every
worker re-reads when it was replaced. Workers never touch the network for routing data.

Whatever the database does (refuses, drops packets, hangs mid-query), this process is the
only one that waits: every database step has a deadline (SIGALRM), after which the
connection is dropped and retried every RETRY seconds; the last snapshot keeps serving.
An idle connection is checked every PING seconds, so a dead server is noticed without calls.
tools/stack.py starts it before Kamailio (ready: the file exists) and supervises it.

    python -m tools.directory_loader        # settings from KEMI_* like everything else
"""
from __future__ import annotations

import select
import signal
import sys
import time
from contextlib import contextmanager

import psycopg

from kemi import metrics
from kemi.config import Settings
from kemi.store import CHANNEL, load_directory, snapshot_path, write_snapshot

RETRY = 1.0      # seconds between attempts while the database is away
PING = 5.0       # seconds between liveness checks of an idle connection
DEADLINE = 5     # seconds any one database step may take


class DeadlineExceeded(Exception):
    pass


def log(message: str) -> None:
    print(f"directory_loader: {message}", flush=True)


@contextmanager
def deadline(seconds: int = DEADLINE):
    def expired(_sig, _frame):
        raise DeadlineExceeded(f"no answer from the database within {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class Loader:
    def __init__(self, settings: Settings):
        self.dsn = settings.database_url
        self.path = snapshot_path(settings.var_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn: psycopg.Connection | None = None
        self.failing_since: float | None = None

    def connect(self) -> None:
        with deadline():
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=DEADLINE,
                                   keepalives=1, keepalives_idle=5, keepalives_interval=2,
                                   keepalives_count=2, tcp_user_timeout=DEADLINE * 1000)
            conn.execute(f"LISTEN {CHANNEL}")
        self.conn = conn
        if self.failing_since is not None:
            log(f"database back after {time.monotonic() - self.failing_since:.1f} s")
            self.failing_since = None
        self.load()   # notifications sent while away are lost: always load afresh

    def load(self) -> None:
        started, since = time.monotonic(), time.time_ns()
        with deadline():
            directory = load_directory(self.conn)
        write_snapshot(self.path, directory, loaded_since_ns=since)
        log(f"snapshot written: {len(directory.subscribers)} subscribers in "
            f"{(time.monotonic() - started) * 1000:.1f} ms")

    def step(self) -> None:
        """Connect if needed, then wait up to PING s for a change (or check the connection)."""
        if self.conn is None:
            self.connect()
            return
        readable, _, _ = select.select([self.conn.fileno()], [], [], PING)
        if readable:
            with deadline():
                pgconn = self.conn.pgconn
                pgconn.consume_input()
                changed = False
                while pgconn.notifies() is not None:
                    changed = True
                if pgconn.status != psycopg.pq.ConnStatus.OK:
                    raise psycopg.OperationalError("connection closed by the server")
            if changed:
                self.load()
        else:
            with deadline():
                self.conn.execute("SELECT 1")

    def drop(self, err: Exception) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log(f"database unreachable, workers route from the last snapshot "
                f"({'present' if self.path.exists() else 'none yet'}): {err}")
        metrics.database_error("lost" if self.conn is not None else "connect")
        if self.conn is not None:
            try:
                self.conn.pgconn.finish()   # no goodbye round trip to a server that may be gone
            except Exception:
                pass
        self.conn = None


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    loader = Loader(Settings.from_env())
    log(f"writing {loader.path}")
    while True:
        try:
            loader.step()
        except (psycopg.Error, OSError, DeadlineExceeded) as err:
            loader.drop(err)
            time.sleep(RETRY)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
