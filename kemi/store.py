"""Data layer: loads the Directory from PostgreSQL and keeps it fresh, one copy per worker.

The per-call path never queries the database. Each worker holds one connection that LISTENs
on `kemi_config` (the provisioning triggers NOTIFY it); before each call the worker checks
the socket without blocking and reloads the whole snapshot if anything changed. If the
database goes away the last snapshot keeps serving and reconnects are retried at most every
`retry_interval` seconds, so a short outage does not stop routing.
"""
from __future__ import annotations

import select
import time
from typing import Callable

import psycopg

from kemi import metrics
from kemi.directory import (Did, Directory, HuntGroup, HuntMember, Queue, QueueAgent, RingAllGroup,
                            ServiceNumber, Subscriber, Trunk, TrunkRoute)

CHANNEL = "kemi_config"


def load_directory(conn: psycopg.Connection) -> Directory:
    with conn.cursor() as cur:
        cur.execute("SELECT subscriber, number FROM caller_id ORDER BY subscriber, position")
        caller_ids: dict[str, list[str]] = {}
        for owner, number in cur:
            caller_ids.setdefault(owner, []).append(number)
        cur.execute("SELECT number, ha1, active, display_name, public_name, default_caller_id, "
                    "hide_caller_id, send_pai FROM subscriber")
        subscribers = {r[0]: Subscriber(r[0], r[1].strip(), *r[2:], caller_ids=tuple(caller_ids.get(r[0], ())))
                       for r in cur}
        cur.execute("SELECT id, name, ring_timeout, timeout_target FROM hunt_group")
        groups = {r[0]: HuntGroup(*r) for r in cur}
        cur.execute("SELECT number, group_id, next_number, ring_timeout FROM hunt_member")
        members = {r[0]: HuntMember(*r) for r in cur}
        cur.execute("SELECT number, group_id, start_number FROM service_number")
        services = {r[0]: ServiceNumber(*r) for r in cur}
        cur.execute("SELECT trunk_id, host(address), port FROM trunk_address ORDER BY trunk_id, position")
        addresses: dict[int, list[tuple[str, int | None]]] = {}
        for trunk_id, address, port in cur:
            addresses.setdefault(trunk_id, []).append((address, port))
        cur.execute("SELECT id, name, transport, trusted, send_pai, default_caller_id, active FROM trunk")
        trunks = {r[0]: Trunk(*r, addresses=tuple(addresses.get(r[0], ()))) for r in cur}
        cur.execute("SELECT prefix, trunk_id, priority FROM trunk_route")
        routes = tuple(TrunkRoute(*r) for r in cur)
        cur.execute("SELECT number, trunk_id, target, caller_prefix, caller_suffix, display_tag FROM did")
        dids = {r[0]: Did(*r) for r in cur}
        cur.execute("SELECT group_id, number, logged_in FROM ringall_member ORDER BY group_id, position")
        ringall_members: dict[int, list[tuple[str, bool]]] = {}
        for group_id, number, logged_in in cur:
            ringall_members.setdefault(group_id, []).append((number, logged_in))
        cur.execute("SELECT id, name, number, display_format, ring_timeout, timeout_target FROM ringall_group")
        ringall = {r[2]: RingAllGroup(*r, members=tuple(ringall_members.get(r[0], ()))) for r in cur}
        cur.execute("SELECT queue_id, number, tier, logged_in FROM queue_agent ORDER BY queue_id, position")
        agents: dict[int, list[QueueAgent]] = {}
        for queue_id, number, tier, logged_in in cur:
            agents.setdefault(queue_id, []).append(QueueAgent(number, tier, logged_in))
        cur.execute("SELECT id, name, number, strategy, ring_timeout, max_wait, timeout_target, timeout_code, "
                    "sticky_window, max_calls FROM queue")
        queues = {r[2]: Queue(*r, agents=tuple(agents.get(r[0], ()))) for r in cur}
        cur.execute("SELECT number, group_kind, group_name FROM supervisor")
        supervising: dict[str, set[tuple[str, str]]] = {}
        for number, kind, name in cur:
            supervising.setdefault(number, set()).add((kind, name))
        supervisors = {n: frozenset(scopes) for n, scopes in supervising.items()}
        # flows:
        cur.execute("SELECT number, version, doc::text FROM flow")
        flows = {r[0]: (r[1], r[2]) for r in cur}
    return Directory(subscribers, groups, members, services, trunks, routes, dids, ringall, queues, supervisors,
                     flows=flows)


class DirectoryCache:
    def __init__(self, dsn: str, log: Callable[[str], None] = lambda _m: None,
                 retry_interval: float = 2.0, connect_timeout: int = 2):
        self.dsn = dsn
        self.log = log
        self.retry_interval = retry_interval
        self.connect_timeout = connect_timeout
        self.conn: psycopg.Connection | None = None
        self.snapshot: Directory | None = None
        self.loaded_at = 0.0
        self.reloads = 0
        self._next_attempt = 0.0

    def get(self) -> Directory | None:
        """The current snapshot, or None if the database was never reachable."""
        if self.conn is not None and self._changed():
            self._reload()
        if self.conn is None:
            # Also right after a lost connection is noticed: the database may be back
            # already (a restart), and changes made meanwhile were never notified.
            self._connect()
        metrics.directory_lookup(self.snapshot is not None)
        return self.snapshot

    def _connect(self) -> None:
        now = time.monotonic()
        if now < self._next_attempt:
            return
        self._next_attempt = now + self.retry_interval
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as err:
            self.log(f"database unreachable, {'serving cached routes' if self.snapshot else 'no routes yet'}: {err}")
            metrics.database_error("connect")
            return
        self.conn = conn
        # Notifications sent while we were away are lost: always load afresh.
        self._reload()

    def _changed(self) -> bool:
        """Drain pending notifications without blocking; True if any arrived."""
        conn = self.conn
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
            if not readable:
                return False
            pgconn = conn.pgconn
            pgconn.consume_input()
            changed = False
            while pgconn.notifies() is not None:
                changed = True
            if pgconn.status != psycopg.pq.ConnStatus.OK:
                raise psycopg.OperationalError("connection closed by the server")
            return changed
        except (psycopg.Error, OSError, ValueError) as err:
            self._drop(err)
            return False

    def _reload(self) -> None:
        started = time.monotonic()
        try:
            self.snapshot = load_directory(self.conn)
        except psycopg.Error as err:
            self._drop(err)
            return
        self.loaded_at = time.time()
        self.reloads += 1
        metrics.directory_loaded(time.monotonic() - started, self.snapshot)

    def _drop(self, err: Exception) -> None:
        self.log(f"database connection lost, serving cached routes: {err}")
        metrics.database_error("lost")
        try:
            self.conn.close()
        except Exception:
            pass
        self.conn = None
        self._next_attempt = 0.0   # try once at once; _connect() spaces out further attempts
