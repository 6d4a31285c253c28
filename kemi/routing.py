"""Where a new call goes: dial string + directory -> plan. Pure: no I/O, no KSR."""
from __future__ import annotations

from dataclasses import dataclass

from kemi import dialstring, hunt
from kemi.directory import Directory


@dataclass(frozen=True)
class Reject:
    status: int
    reason: str


@dataclass(frozen=True)
class RingPlan:
    """Ring these members one after another (one member: a direct call)."""
    dialled: str
    kind: str                      # "direct", "hunt" or "service"
    steps: tuple[hunt.Step, ...]


def plan_call(ruri_user: str, directory: Directory, default_timeout: int) -> RingPlan | Reject:
    try:
        dial = dialstring.parse(ruri_user)
    except dialstring.DialError as err:
        return Reject(err.status, err.reason)
    if dial.spy:
        return Reject(501, f"Not Implemented - supervisor {dial.spy} ({dial.spy[0]}#) is not available yet")
    if dial.anonymous or dial.caller_id_index is not None:
        return Reject(501, "Not Implemented - suffixes h and cN are not available yet")

    service = directory.services.get(dial.number)
    if service is not None:
        start, kind = service.start_number, "service"
    elif dial.number in directory.subscribers:
        if directory.active_subscriber(dial.number) is None:
            return Reject(480, "Temporarily Unavailable - number disabled")
        start = dial.number
        kind = "hunt" if dial.number in directory.members and not dial.ring_only else "direct"
    else:
        return Reject(404, "Not Found - unknown number")

    steps = hunt.hunt_steps(directory, start, default_timeout, ring_only=dial.ring_only)
    if not steps:
        return Reject(480, "Temporarily Unavailable - no active member")
    return RingPlan(dial.number, kind, tuple(steps))
