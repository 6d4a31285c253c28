"""The directory loader: the only process that reads routing data from PostgreSQL for the
SIP workers (kemi/store.py). It LISTENs on `kemi_config` and applies each change at the cost
of what changed (scale, issue 11):

- `subscriber:<number>` (row triggers on subscriber and caller_id, sql/012): that one key of
  Kamailio's shared-memory htable `subs` is set (htable.sets) or deleted (htable.delete) over
  the jsonrpcs FIFO (tools/kamailio_rpc.py); notifications that arrive together are read
  with one query;
- any other table name: the small snapshot (groups, queues, trunks, routes, DIDs, flows; no
  subscriber rows) is loaded and written atomically to var/run/directory.pickle, which every
  worker re-reads when it was replaced;
- `subscriber` alone (TRUNCATE): the whole table is resynchronised.

Resynchronisation: on every (re)connection to the database (notifications sent while away
are lost) and whenever Kamailio is new (its `core.uptime` start time changed: a restart, or
Kamailio was not reachable) the loader asks Kamailio to `htable.reload subs`, which reloads
the table from the view in Kamailio's RPC process and swaps it in slot by slot (workers keep
reading). After each applied change var/run/directory.applied gets the time its reading
began, which is what kemictl waits for (provision/live.py). Workers never touch the network
for routing data.

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
from kemi import names
from kemi.store import (CHANNEL, applied_path, load_snapshot, mark_applied, snapshot_path, subscriber_rows,
                        write_snapshot)
from provision.live import TOKEN, synced_dir
from tools.kamailio_rpc import KamailioRpc, RpcError

RETRY = 1.0      # seconds between attempts while the database is away
PING = 5.0       # seconds between liveness checks of an idle connection
DEADLINE = 5     # seconds any one database step may take
KAMAILIO_WAIT = 0.5    # seconds between checks while Kamailio's table awaits a resync
RELOAD_TIMEOUT = 300   # seconds htable.reload may take (a million rows: see README "Data path")
RELOAD_ABOVE = 20000   # more changed keys than this at once: one reload instead
SUBSCRIBER = "subscriber"


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
        self.applied = applied_path(settings.var_dir)
        self.synced = synced_dir(settings.var_dir)
        self.synced.mkdir(parents=True, exist_ok=True)
        self.conn: psycopg.Connection | None = None
        self.failing_since: float | None = None
        self.rpc = KamailioRpc.for_var_dir(settings.var_dir)
        self.kamailio: str | None = None   # start time of the Kamailio whose table is current
        self.pending: set[str] = set()     # notification payloads not applied yet
        self.unapplied: set[str] = set()   # subscriber keys Kamailio may not have yet
        self.need_full = False             # reload all whatever Kamailio's age (a TRUNCATE)
        self.listen_since: float | None = None   # wall clock when LISTEN began

    def connect(self) -> None:
        with deadline():
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=DEADLINE,
                                   keepalives=1, keepalives_idle=5, keepalives_interval=2,
                                   keepalives_count=2, tcp_user_timeout=DEADLINE * 1000)
            conn.execute(f"LISTEN {CHANNEL}")
            # notifications that arrive while a query runs are taken by psycopg: keep them
            conn.add_notify_handler(lambda note: self.pending.add(note.payload))
        self.conn = conn
        if self.failing_since is not None:
            log(f"database back after {time.monotonic() - self.failing_since:.1f} s")
            self.failing_since = None
        # notifications sent while away are lost: always load afresh, and resync subscribers
        since = time.time_ns()
        self.listen_since = since / 1e9
        self.load(since)
        # A Kamailio that started before this LISTEN may lack what was committed meanwhile: it
        # is reloaded whole; one that starts later loads everything itself (sync_kamailio).
        self.kamailio = None
        if self.sync_kamailio():
            mark_applied(self.applied, since)

    def load(self, since: int | None = None) -> None:
        started, since = time.monotonic(), since or time.time_ns()
        with deadline():
            directory = load_snapshot(self.conn)
        write_snapshot(self.path, directory, loaded_since_ns=since)
        log(f"snapshot written in {(time.monotonic() - started) * 1000:.1f} ms")

    def sync_kamailio(self) -> bool:
        """True when Kamailio runs and its subscriber table is current; False when Kamailio
        cannot be reached (retried soon). A Kamailio new to us is brought up to date:
        - if it started after this loader began listening (a restart, or the stack's first
          start), its own load at start-up read everything committed before, and this loader
          heard everything after: only the keys not applied since are set again;
        - otherwise (this loader just (re)connected to the database and may have missed
          notifications, or lost track of Kamailio) the whole table is reloaded."""
        try:
            uptime = self.rpc.call("core.uptime") or {}
            started = str(uptime.get("up_since"))
            if started != self.kamailio:
                started_at = time.time() - float(uptime.get("uptime") or 0)
                fresh = self.listen_since is not None and started_at > self.listen_since + 2   # 1 s resolution
                begun = time.monotonic()
                if self.need_full or not fresh or len(self.unapplied) > RELOAD_ABOVE:
                    self.rpc.call("htable.reload", names.SUBSCRIBER_TABLE, timeout=RELOAD_TIMEOUT)
                    how = "reloaded (htable.reload)"
                else:
                    keys = set(self.unapplied)
                    self.set_keys(keys)
                    how = f"up to date after {len(keys)} key(s) set again"
                log(f"subscriber table of the Kamailio started {started}: {how} in "
                    f"{(time.monotonic() - begun) * 1000:.0f} ms")
                self.unapplied.clear()
                self.need_full = False
                self.kamailio = started
                if not self.applied.exists():
                    # the first Kamailio to answer (it may start after this loader connected):
                    # from now on kemictl waits for its change to be applied (provision/live.py
                    # treats a missing marker as "no stack runs here" and would not wait)
                    mark_applied(self.applied, int((self.listen_since or 0) * 1e9))
            return True
        except RpcError as err:
            if self.kamailio is not None:
                log(f"Kamailio unreachable, its subscriber table is brought up to date when it answers: {err}")
            self.kamailio = None
            return False

    def set_keys(self, numbers: set[str]) -> None:
        """Set or delete each key as the database has it now (RpcError if Kamailio fails)."""
        if not numbers:
            return
        with deadline():
            rows = subscriber_rows(self.conn, sorted(numbers))
        for number in sorted(numbers):
            if number in rows:
                self.rpc.call("htable.sets", names.SUBSCRIBER_TABLE, number, rows[number])
            else:
                self.delete(number)

    def apply_subscribers(self, numbers: set[str]) -> bool:
        """Set or delete these keys in Kamailio's table; False if Kamailio is unreachable
        (they are then set when it answers again)."""
        started = time.monotonic()
        if not self.sync_kamailio():
            self.unapplied |= numbers
            return False
        try:
            self.set_keys(numbers)
        except RpcError as err:
            log(f"subscriber change not applied, Kamailio is brought up to date when it answers: {err}")
            self.unapplied |= numbers
            self.kamailio = None
            return self.sync_kamailio()
        log(f"{len(numbers)} subscriber key(s) applied in {(time.monotonic() - started) * 1000:.1f} ms")
        return True

    def step(self) -> None:
        """Connect if needed, then wait up to PING s for a change (or check the connection)."""
        if self.conn is None:
            self.connect()
            return
        wait = 0 if self.pending else PING if self.kamailio else KAMAILIO_WAIT
        readable, _, _ = select.select([self.conn.fileno()], [], [], wait)
        if readable or self.pending:
            with deadline():
                pgconn = self.conn.pgconn
                pgconn.consume_input()
                while (note := pgconn.notifies()) is not None:
                    self.pending.add(note.extra.decode(errors="replace"))
                if pgconn.status != psycopg.pq.ConnStatus.OK:
                    raise psycopg.OperationalError("connection closed by the server")
            payloads, self.pending = self.pending, set()
            if payloads:
                self.apply(payloads)
        else:
            with deadline():
                self.conn.execute("SELECT 1")
            self.sync_kamailio()    # a restarted Kamailio, or one that is back

    def delete(self, number: str) -> None:
        try:
            self.rpc.call("htable.delete", names.SUBSCRIBER_TABLE, number)
        except RpcError as err:
            if err.code != 404:    # 404: not there, which is what we want
                raise

    def apply(self, payloads: set[str]) -> None:
        since = time.time_ns()     # before any reading: what kemictl committed earlier is included
        numbers = {p.split(":", 1)[1] for p in payloads if p.startswith(SUBSCRIBER + ":")}
        tokens = {p[5:] for p in payloads if p.startswith("sync:") and TOKEN.match(p[5:])}
        small = {p for p in payloads if not p.startswith((SUBSCRIBER, "sync:"))}
        if small:
            self.load(since)
        if SUBSCRIBER in payloads or len(numbers) > RELOAD_ABOVE:   # TRUNCATE, or cheaper as one reload
            self.kamailio, self.need_full = None, True
            applied = self.sync_kamailio()
        else:
            applied = self.apply_subscribers(numbers) if numbers else True
        if applied:
            mark_applied(self.applied, since)
            for token in tokens:    # kemictl waits for these (provision/live.py)
                (self.synced / token).touch()
            if tokens:
                self.prune_tokens()

    def prune_tokens(self, older_than: float = 60.0) -> None:
        """Confirmations nobody collected (a kemictl that gave up) do not pile up."""
        limit = time.time() - older_than
        for path in self.synced.iterdir():
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
            except OSError:
                pass

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
