"""Agent state in PostgreSQL (issue 11): where the shared-memory state (htable agentst, see
kemi/agent_keys.py) is persisted. Used by kemictl (provision/agent_cli.py) and by the agent
shipper (tools/agent_shipper.py); never by a SIP worker. The decisions are
kemi/core/agent_machine.py's.

A membership's state lives in queue_agent / ringall_member (logged_in, paused_reason) with
`state_at`, the unix time it was set: a write older than what is stored is ignored, so a
phone's change shipped late never undoes a newer kemictl change. These columns fire no
directory reload (sql/013): a state change costs one row, not a reload of every worker.
"""
from __future__ import annotations

from kemi.core import agent_machine as am
from kemi.core.agent_machine import Membership

DND = am.DND
AUTO = am.AUTO
DEFAULT_PAUSE = am.DEFAULT_PAUSE
missed_offer_counts = am.missed_offer_counts

_TABLES = {am.QUEUE: ("queue_agent", "queue", "queue_id"), am.RINGALL: ("ringall_member", "ringall_group", "group_id")}


def events_directory(var_dir: str) -> str:
    """Where Kamailio's processes append agent events for tools/agent_shipper.py."""
    import os
    from kemi.config import ROOT
    return os.path.join(ROOT, var_dir, "agents")


def reached(misses: int, limit: int | None) -> bool:
    return limit is not None and misses >= limit


def state_of(logged_in: bool, reason: str | None) -> tuple[str, str]:
    """(state, reason) of a stored row."""
    if logged_in:
        return am.IN, ""
    return (am.PAUSED, reason) if reason else (am.OUT, "")


def memberships(conn, number: str) -> tuple[Membership, ...]:
    """Every queue and ring-all group `number` belongs to, with its persisted state."""
    rows = conn.execute(
        "SELECT 'q', q.number, a.logged_in, a.paused_reason FROM queue_agent a JOIN queue q ON q.id = a.queue_id "
        "WHERE a.number = %s UNION ALL SELECT 'g', g.number, m.logged_in, m.paused_reason FROM ringall_member m "
        "JOIN ringall_group g ON g.id = m.group_id WHERE m.number = %s ORDER BY 1 DESC, 2", [number, number]).fetchall()
    return tuple(Membership(kind, group, *state_of(li, reason)) for kind, group, li, reason in rows)


def save(conn, number: str, changed, at: float) -> int:
    """Persist changed memberships (new states) set at unix time `at`; rows changed since
    (a newer state_at) are left alone. Returns the rows written."""
    written = 0
    for m in changed:
        table, parent, key = _TABLES[m.kind]
        written += conn.execute(
            f"UPDATE {table} SET logged_in = %s, paused_reason = %s, state_at = %s WHERE number = %s "
            f"AND {key} = (SELECT id FROM {parent} WHERE number = %s) AND state_at <= %s",
            [m.state == am.IN, m.reason if m.state == am.PAUSED else None, at, number, m.group, at]).rowcount
    return written


def add_stats(conn, queue: str, number: str, answered: int, talk: int, end: int, missed: int) -> None:
    conn.execute(
        "INSERT INTO agent_stat AS s (queue_number, number, answered, talk_seconds, last_end, unanswered) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (queue_number, number) DO UPDATE SET "
        "answered = s.answered + excluded.answered, talk_seconds = s.talk_seconds + excluded.talk_seconds, "
        "last_end = greatest(s.last_end, excluded.last_end), unanswered = s.unanswered + excluded.unanswered",
        [queue, number, answered, talk, end, missed])


def names(conn) -> dict[tuple[str, str], str]:
    """(kind, number) -> name of every queue and ring-all group."""
    rows = conn.execute("SELECT 'q', number, name FROM queue UNION ALL SELECT 'g', number, name FROM ringall_group")
    return {(kind, number): name for kind, number, name in rows.fetchall()}


def auto_pause_limits(conn) -> dict[str, int]:
    """queue name -> unanswered offers in a row that pause an agent (queues that set it)."""
    return dict(conn.execute("SELECT name, auto_pause FROM queue WHERE auto_pause IS NOT NULL").fetchall())


def set_auto_pause(conn, queue_name: str, limit: int | None) -> None:
    if limit is not None and not 1 <= limit <= 100:
        raise ValueError("field 'limit': must be 1..100 unanswered offers, or 'off'")
    if conn.execute("UPDATE queue SET auto_pause = %s WHERE name = %s", [limit, queue_name]).rowcount == 0:
        raise ValueError(f"field 'queue': no queue named {queue_name!r}")
