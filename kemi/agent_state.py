"""Agent state changes from phones (issue 12): log in / out, pause, unpause, do not disturb,
auto-pause. Data layer over PostgreSQL (psycopg), used by the SIP workers (agent keys) and by
kemictl; agent state stays provisioning data in PostgreSQL for now (issue 11 may move it to
shared memory). Every change is one statement or one transaction; the tables' triggers NOTIFY
every worker, so the next offer sees it.

Pause and do not disturb set logged_in = FALSE and keep why in paused_reason (a reason code,
'dnd' or 'auto'), so unpausing restores exactly the memberships the pause took.
"""
from __future__ import annotations

from dataclasses import dataclass

DND = "dnd"
AUTO = "auto"
DEFAULT_PAUSE = "break"


@dataclass(frozen=True)
class Change:
    ok: bool
    status: int
    reason: str


def _queue_filter(queue_number: str | None) -> tuple[str, list]:
    if queue_number is None:
        return "", []
    return " AND queue_id IN (SELECT id FROM queue WHERE number = %s)", [queue_number]


def login(conn, number: str, queue_number: str | None, logged_in: bool) -> Change:
    """*61 / *62 [queue]: in or out of one queue (by its number), or of every queue and
    ring-all group; clears any pause."""
    where, args = _queue_filter(queue_number)
    with conn.transaction():
        changed = conn.execute(f"UPDATE queue_agent SET logged_in = %s, paused_reason = NULL WHERE number = %s{where}",
                               [logged_in, number, *args]).rowcount
        if queue_number is None:
            changed += conn.execute("UPDATE ringall_member SET logged_in = %s, paused_reason = NULL WHERE number = %s",
                                    [logged_in, number]).rowcount
    what = f"queue {queue_number}" if queue_number else "all queues and groups"
    if not changed:
        return Change(False, 404 if queue_number else 403,
                      f"Not Found - {number} is no agent of queue {queue_number}" if queue_number
                      else f"Forbidden - {number} is no agent of any queue or group")
    return Change(True, 603, f"Done - logged {'in to' if logged_in else 'out of'} {what}")


def pause(conn, number: str, reason: str | None) -> Change:
    """*63 [code]: off every queue the agent is logged in to, with the reason kept."""
    code = reason or DEFAULT_PAUSE
    changed = conn.execute("UPDATE queue_agent SET logged_in = FALSE, paused_reason = %s "
                           "WHERE number = %s AND logged_in", [code, number]).rowcount
    if not changed:
        return _nothing(conn, number, "pause")
    return Change(True, 603, f"Done - paused ({code}) in {changed} queue(s)")


def unpause(conn, number: str) -> Change:
    """*64: back in every queue a pause (any reason but do not disturb) took."""
    changed = conn.execute("UPDATE queue_agent SET logged_in = TRUE, paused_reason = NULL "
                           "WHERE number = %s AND paused_reason IS NOT NULL AND paused_reason <> %s",
                           [number, DND]).rowcount
    if not changed:
        return _nothing(conn, number, "unpause")
    return Change(True, 603, f"Done - unpaused in {changed} queue(s)")


def toggle_dnd(conn, number: str) -> Change:
    """*65: do not disturb on (off every queue and ring-all group) or, if on, off again."""
    with conn.transaction():
        restored = 0
        for table in ("queue_agent", "ringall_member"):
            restored += conn.execute(f"UPDATE {table} SET logged_in = TRUE, paused_reason = NULL "
                                     "WHERE number = %s AND paused_reason = %s", [number, DND]).rowcount
        if restored:
            return Change(True, 603, "Done - do not disturb off")
        taken = 0
        for table in ("queue_agent", "ringall_member"):
            taken += conn.execute(f"UPDATE {table} SET logged_in = FALSE, paused_reason = %s "
                                  "WHERE number = %s AND logged_in", [DND, number]).rowcount
    if not taken:
        return _nothing(conn, number, "do not disturb")
    return Change(True, 603, "Done - do not disturb on")


def auto_pause(conn, number: str, queue_name: str) -> bool:
    """Pause an agent in one queue after too many unanswered offers. True if it changed."""
    return conn.execute("UPDATE queue_agent SET logged_in = FALSE, paused_reason = %s WHERE number = %s "
                        "AND logged_in AND queue_id IN (SELECT id FROM queue WHERE name = %s)",
                        [AUTO, number, queue_name]).rowcount > 0


def auto_pause_limits(conn) -> dict[str, int]:
    """queue name -> unanswered offers in a row that pause an agent (queues that set it)."""
    return dict(conn.execute("SELECT name, auto_pause FROM queue WHERE auto_pause IS NOT NULL").fetchall())


def set_auto_pause(conn, queue_name: str, limit: int | None) -> None:
    if limit is not None and not 1 <= limit <= 100:
        raise ValueError("field 'limit': must be 1..100 unanswered offers, or 'off'")
    if conn.execute("UPDATE queue SET auto_pause = %s WHERE name = %s", [limit, queue_name]).rowcount == 0:
        raise ValueError(f"field 'queue': no queue named {queue_name!r}")


def show(conn, number: str) -> list[tuple[str, str, str, str]]:
    """(kind, group or queue, state, reason) of every membership of `number`."""
    rows = conn.execute(
        "SELECT 'queue', q.name, CASE WHEN a.logged_in THEN 'logged in' WHEN a.paused_reason IS NULL "
        "THEN 'logged out' ELSE 'paused' END, coalesce(a.paused_reason, '') FROM queue_agent a "
        "JOIN queue q ON q.id = a.queue_id WHERE a.number = %s "
        "UNION ALL SELECT 'ringall', g.name, CASE WHEN m.logged_in THEN 'logged in' WHEN m.paused_reason IS NULL "
        "THEN 'logged out' ELSE 'paused' END, coalesce(m.paused_reason, '') FROM ringall_member m "
        "JOIN ringall_group g ON g.id = m.group_id WHERE m.number = %s ORDER BY 1, 2", [number, number])
    return [tuple(str(v) for v in row) for row in rows.fetchall()]


def _nothing(conn, number: str, what: str) -> Change:
    """Nothing changed: an agent who had nothing to change gets a harmless "Done"; someone who
    is no agent at all a 403."""
    if show(conn, number):
        return Change(True, 603, f"Done - nothing to {what}")
    return Change(False, 403, f"Forbidden - {number} is no agent of any queue or group")


def missed_offer_counts(code: int) -> bool:
    """Whether an offer that ended with `code` counts as unanswered for auto-pause: no answer,
    unreachable or declined; a busy phone (486/600) is not the agent ignoring a call."""
    return code not in (486, 600) and (code == 408 or code == 480 or code == 487 or code == 603 or code >= 500)


def reached(misses: int, limit: int | None) -> bool:
    return limit is not None and misses >= limit
