"""Data layer: loads the Directory from PostgreSQL; each SIP worker reads it from a local file.

Scale (issue 11): the snapshot file holds only the small tables (groups, queues, trunks,
routes, DIDs, flows, voicemail rules). Subscribers live once per machine in Kamailio's shared
memory (htable `subs`, loaded natively from the view kemi_subscriber_htable, kept current key
by key by the loader): a worker reads them through kemi/subscribers.py, kemictl through
`DbSubscribers` (one indexed query per number it asks about). README "Data path".

No SIP worker ever talks to the database (issue 9: a database that drops packets must never
block a worker). One process outside Kamailio, the directory loader
(`tools/directory_loader.py`, supervised by the launcher), LISTENs on `kemi_config` (the
provisioning triggers NOTIFY it), loads the whole snapshot with `load_directory` after each
change and writes it atomically (write + rename) to `var/run/directory.pickle`. Before each
call a worker `stat`s that file (about a microsecond) and reads it again only when it was
replaced. If the database goes away or hangs, the loader waits and retries while every worker
keeps routing from the last file.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Callable

import psycopg

from kemi import metrics, names
from kemi.directory import (Did, Directory, HuntGroup, HuntMember, Queue, QueueAgent, RingAllGroup,
                            ServiceNumber, Subscriber, Trunk, TrunkRoute)
from kemi.voicemail_route import load_rules
from kemi.conference_route import load_rooms  # conference rooms
from kemi.callback_route import load_numbers as load_callbacks  # callback

CHANNEL = "kemi_config"


class DbSubscribers(Mapping[str, Subscriber]):
    """Subscribers read from the database on demand (kemictl's validation): one indexed query
    per number asked about, never the whole table unless iterated. Not for SIP workers."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def __getitem__(self, number: str) -> Subscriber:
        sub = self.get(number)
        if sub is None:
            raise KeyError(number)
        return sub

    def get(self, number: str, default=None):   # type: ignore[override]
        row = self.conn.execute(f"SELECT key_value FROM {names.SUBSCRIBER_VIEW} WHERE key_name = %s",
                                (number,)).fetchone()
        sub = names.decode_subscriber(number, row[0]) if row else None
        return default if sub is None else sub

    def __contains__(self, number: object) -> bool:
        return isinstance(number, str) and self.conn.execute(
            "SELECT 1 FROM subscriber WHERE number = %s", (number,)).fetchone() is not None

    def __iter__(self) -> Iterator[str]:
        return iter([r[0] for r in self.conn.execute("SELECT number FROM subscriber ORDER BY number")])

    def __len__(self) -> int:
        return self.conn.execute("SELECT count(*) FROM subscriber").fetchone()[0]

    def items(self):   # type: ignore[override]
        return [(n, s) for n, s in ((k, names.decode_subscriber(k, v)) for k, v in self.conn.execute(
            f"SELECT key_name, key_value FROM {names.SUBSCRIBER_VIEW} ORDER BY key_name")) if s is not None]

    def values(self):   # type: ignore[override]
        return [s for _, s in self.items()]


def subscriber_rows(conn: psycopg.Connection, numbers: list[str] | None = None) -> dict[str, str]:
    """number -> encoded value (kemi/subscriber_codec.py) from the view Kamailio loads:
    the given numbers (those that exist), or all of them."""
    if numbers is None:
        rows = conn.execute(f"SELECT key_name, key_value FROM {names.SUBSCRIBER_VIEW}")
    else:
        rows = conn.execute(f"SELECT key_name, key_value FROM {names.SUBSCRIBER_VIEW} "
                            "WHERE key_name = ANY(%s)", (numbers,))
    return {k: v for k, v in rows}


def load_snapshot(conn: psycopg.Connection) -> Directory:
    """What the loader writes for the SIP workers: the small tables, no subscriber rows."""
    return load_directory(conn, subscribers=False)


def load_directory(conn: psycopg.Connection, subscribers: bool = True) -> Directory:
    """Everything provisioned. Subscribers are read lazily (DbSubscribers) with this
    connection; `subscribers=False` leaves them out (the snapshot file)."""
    with conn.cursor() as cur:
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
        # phones: per-queue auto-pause and repeated-182 settings
        cur.execute("SELECT name, number, auto_pause, progress_interval FROM queue")
        queue_rows = cur.fetchall()
        cur.execute("SELECT name FROM queue WHERE supervised")   # whisper and barge
        supervised = frozenset(r[0] for r in cur)
    voicemail_rules = load_rules(conn)   # media
    queue_hold = load_queue_hold(conn)   # media
    callbacks = load_callbacks(conn)   # callback
    people: Mapping[str, Subscriber] = DbSubscribers(conn) if subscribers else {}
    return Directory(people, groups, members, services, trunks, routes, dids, ringall, queues, supervisors,
                     flows=flows, voicemail_rules=voicemail_rules,
                     auto_pause={name: n for name, _, n, _ in queue_rows if n is not None},
                     progress_intervals={number: s for _, number, _, s in queue_rows if s is not None},
                     queue_hold=queue_hold,
                     conferences=load_rooms(conn),   # conference rooms
                     callbacks=callbacks,
                     supervised=supervised)   # whisper and barge


def load_queue_hold(conn) -> dict:
    """media: queues whose waiting callers hear music (sql/014)."""
    from kemi.directory import QueueHold
    with conn.cursor() as cur:
        cur.execute("SELECT number, hold_music, announce_interval, announce FROM queue WHERE hold_music IS NOT NULL")
        return {r[0]: QueueHold(r[1], r[2], r[3]) for r in cur}


def snapshot_path(var_dir: str) -> Path:
    return Path(var_dir) / "run" / "directory.pickle"


def write_snapshot(path: Path, directory: Directory, loaded_since_ns: int | None = None) -> None:
    """Atomically replace the snapshot file (readers see the old or the new one, never half).
    Its modification time is set to when the load began (`loaded_since_ns`, wall clock), so
    kemictl can tell that a snapshot includes what it committed (provision/live.py)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(directory, f, protocol=pickle.HIGHEST_PROTOCOL)
    if loaded_since_ns is not None:
        os.utime(tmp, ns=(loaded_since_ns, loaded_since_ns))
    os.replace(tmp, path)


class DirectoryCache:
    """The worker side: the current snapshot from the loader's file, re-read only when the
    file was replaced. Never any network I/O; never raises."""

    def __init__(self, dsn: str = "", log: Callable[[str], None] = lambda _m: None,
                 path: Path | None = None, subscribers: Mapping[str, Subscriber] | None = None):
        from kemi.config import Settings
        self.path = path or snapshot_path(Settings.from_env().var_dir)
        self.log = log
        self.snapshot: Directory | None = None
        self.loaded_at = 0.0
        self.reloads = 0
        self._seen: tuple | None = None
        self.subscribers = subscribers   # scale: shared memory in a SIP worker (kemi/subscribers.py)

    def get(self) -> Directory | None:
        """The current snapshot, or None if the loader never wrote one."""
        try:
            st = os.stat(self.path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key is not None and key != self._seen:
            self._load(key)
        metrics.directory_lookup(self.snapshot is not None)
        return self.snapshot

    def _load(self, key: tuple) -> None:
        started = time.monotonic()
        try:
            with open(self.path, "rb") as f:
                snapshot = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
            self.log(f"routing snapshot {self.path} unreadable, keeping the last one: {err}")
            self._seen = key    # do not retry the same file on every call
            return
        if self.subscribers is not None and isinstance(snapshot, Directory):
            snapshot = dataclasses.replace(snapshot, subscribers=self.subscribers)
        self.snapshot, self._seen = snapshot, key
        self.loaded_at = time.time()
        self.reloads += 1
        metrics.directory_loaded(time.monotonic() - started, snapshot)


# scale (issue 11): "this change is live" for kemictl (provision/live.py). The loader sets
# this file's modification time to when it began reading the database for the change it
# has just applied (snapshot written or subscriber keys set in Kamailio's shared memory).
def applied_path(var_dir: str) -> Path:
    return Path(var_dir) / "run" / "directory.applied"


def mark_applied(path: Path, since_ns: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(str(since_ns))
    os.utime(tmp, ns=(since_ns, since_ns))
    os.replace(tmp, path)
