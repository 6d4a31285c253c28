"""`kemictl journal`: a member's recent calls, and the legs of one call, from the journal
views of sql/004_journal.sql (journal_call, journal_leg). Querying here, wording in
`member_rows` / `outcome_text` (pure, so they are tested without a database)."""
from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from provision.store import ProvisioningError

OUTCOME_TEXT = {
    "answered": "answered",
    "busy": "busy",
    "no_answer": "no answer",
    "declined": "declined",
    "failed": "failed",
    "not_registered": "not registered",
    "cancelled": "cancelled",
    "answered_elsewhere": "answered elsewhere",
    "logged_out": "logged out",
}
KIND_TEXT = {"ringall": "ring-all", "hunt": "hunt", "service": "hunt", "queue": "queue", "trunk": "trunk",
             "direct": "direct"}

# The calls a number took part in (offered, or calling), newest first.
MEMBER_CALLS = """
SELECT call_id FROM (
    SELECT call_id, ts FROM journal_event WHERE member = %(number)s
    UNION ALL
    SELECT call_id, ts FROM journal_event WHERE event = 'call_started' AND caller = %(number)s
) x
GROUP BY call_id ORDER BY min(ts) DESC LIMIT %(limit)s
"""


def member_journal(conn: psycopg.Connection, number: str, limit: int = 20) -> list[tuple]:
    """Rows for `kemictl journal NUMBER` (see member_rows), newest first."""
    if not 1 <= limit <= 10000:
        raise ProvisioningError("field 'limit': must be between 1 and 10000")
    ids = [r[0] for r in conn.execute(MEMBER_CALLS, {"number": number, "limit": limit})]
    if not ids:
        return []
    with conn.cursor(row_factory=dict_row) as cur:
        calls = cur.execute("SELECT * FROM journal_call WHERE call_id = ANY(%s)", (ids,)).fetchall()
        legs = cur.execute("SELECT * FROM journal_leg WHERE call_id = ANY(%s) AND member = %s "
                           "ORDER BY coalesce(offered_at, ended_at)", (ids, number)).fetchall()
    return member_rows(number, calls, legs)


def call_legs(conn: psycopg.Connection, call_id: str) -> tuple[dict, list[dict]]:
    """One call (journal_call) and all its legs in order, for `kemictl journal --call`."""
    with conn.cursor(row_factory=dict_row) as cur:
        call = cur.execute("SELECT * FROM journal_call WHERE call_id = %s", (call_id,)).fetchone()
        if call is None:
            raise ProvisioningError(f"field 'call': no journal records for call {call_id!r}")
        legs = cur.execute("SELECT * FROM journal_leg WHERE call_id = %s ORDER BY coalesce(offered_at, ended_at), member",
                           (call_id,)).fetchall()
    return call, legs


# ------------------------------------------------------------------ wording

MEMBER_HEADER = ("time", "caller", "dialled", "via", "outcome", "ring", "wait", "ended")
LEG_HEADER = ("member", "offered", "ended", "outcome", "code", "ring")


def member_rows(number: str, calls: list[dict], legs: list[dict]) -> list[tuple]:
    """One row per call (MEMBER_HEADER), newest first: what happened to `number` on it."""
    mine: dict[str, list[dict]] = {}
    for leg in legs:
        mine.setdefault(leg["call_id"], []).append(leg)
    rows = []
    for call in sorted(calls, key=lambda c: c["started_at"] or c["first_at"], reverse=True):
        my_legs = mine.get(call["call_id"], [])
        rings = [float(leg["ring_seconds"]) for leg in my_legs if leg["ring_seconds"] is not None]
        rows.append((
            clock(call["started_at"] or call["first_at"], date=True),
            call["caller"] or "?",
            call["dialled"] or "?",
            via(call),
            member_outcome(number, call, my_legs),
            seconds(sum(rings)) if rings else "-",
            seconds(call["wait_seconds"]) if call["queued_at"] else "-",
            ended(call),
        ))
    return rows


def member_outcome(number: str, call: dict, legs: list[dict]) -> str:
    """What the call was for `number`: its (last) leg's outcome, and who took the call."""
    taker = call["answered_by"]
    if not legs:
        if call["caller"] == number:
            return "outgoing, " + (f"answered by {taker}" if taker else call_result(call))
        return "?"
    outcomes = [leg["outcome"] for leg in legs]
    if "answered" in outcomes or taker == number:
        text = "answered"
    else:
        text = outcome_text(outcomes[-1], legs[-1]["code"], taker, ended_at=call["ended_at"])
        if taker and outcomes[-1] != "answered_elsewhere":
            text += f"; answered by {taker}"
    if len(legs) > 1:
        text += f" (offered {len(legs)}x)"
    return text


def outcome_text(outcome: str | None, code: int | None, taker: str | None, ended_at=None) -> str:
    if outcome is None:
        return "ringing" if ended_at is None else "no result recorded"
    if outcome == "answered_elsewhere":
        return f"answered elsewhere by {taker}" if taker else "answered elsewhere"
    text = OUTCOME_TEXT.get(outcome, outcome)
    return f"{text} ({code})" if outcome == "failed" and code else text


def call_result(call: dict) -> str:
    if call["ended_at"] is None:
        return "in progress"
    code = call["end_code"]
    if code == 200:
        return "answered"
    return f"not answered ({code} {call['end_reason'] or ''})".replace(" )", ")")


def via(call: dict) -> str:
    kind = KIND_TEXT.get(call["kind"], call["kind"] or "?")
    target = call["target"]
    if call["queue"] and call["queue"] != target:
        return f"{kind} {target} > queue {call['queue']}" if target else f"queue {call['queue']}"
    return f"{kind} {target}" if target else kind


def ended(call: dict) -> str:
    """When the call ended, and how (talk time, or the final reply)."""
    if call["ended_at"] is None:
        return "-"
    when = clock(call["ended_at"])
    if call["answered_at"] is not None and call["end_code"] == 200:
        return f"{when} after {seconds(call['talk_seconds'])} talk"
    return f"{when} ({call['end_code']})" if call["end_code"] else when


def leg_rows(legs: list[dict], call: dict) -> list[tuple]:
    """All legs of one call (LEG_HEADER)."""
    return [(leg["member"], clock(leg["offered_at"]), clock(leg["ended_at"]),
             outcome_text(leg["outcome"], leg["code"], call["answered_by"], call["ended_at"]),
             leg["code"] if leg["code"] is not None else "-",
             seconds(leg["ring_seconds"]) if leg["ring_seconds"] is not None else "-") for leg in legs]


def call_summary(call: dict) -> list[str]:
    lines = [f"call {call['call_id']}",
             f"  started  {clock(call['started_at'] or call['first_at'], date=True)}  "
             f"from {call['caller'] or '?'} to {call['dialled'] or '?'} via {via(call)}"]
    if call["queued_at"]:
        lines.append(f"  queued   {clock(call['queued_at'])} in {call['queue']}, waited {seconds(call['wait_seconds'])}")
    if call["answered_by"]:
        lines.append(f"  answered {clock(call['answered_at'])} by {call['answered_by']}")
    lines.append(f"  ended    {ended(call)}" + (f" {call['end_reason']}" if call["end_reason"] else ""))
    return lines


def clock(when: datetime | None, date: bool = False) -> str:
    if when is None:
        return "-"
    local = when.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def seconds(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(round(value)), 60)
    return f"{minutes}m{secs:02d}s"
