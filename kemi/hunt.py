"""Hunt chains (seed 000) and what to do when a hunt step fails. Pure: no I/O, no KSR."""
from __future__ import annotations

from dataclasses import dataclass

from kemi.directory import Directory

# More steps than this cannot be told apart by q-values (1.00 down to 0.01) and no caller
# waits through them anyway; provisioning rejects longer chains.
MAX_STEPS = 60

BUSY_CODES = frozenset({486, 600})


@dataclass(frozen=True)
class Step:
    """One member to ring, for ring_timeout seconds, before the hunt moves on."""
    number: str
    ring_timeout: int


def chain_numbers(directory: Directory, start: str) -> tuple[list[str], list[str] | None]:
    """Follow next numbers from `start`. Returns (numbers in order, loop or None).

    A chain ends at a member without a next number, at a number that is no member (a
    plain subscriber rings and ends the chain), or where it would revisit a number; in
    that last case the loop is returned as [first repeated number, ..., same number].
    """
    order: list[str] = []
    seen: dict[str, int] = {}
    number: str | None = start
    while number is not None:
        if number in seen:
            return order, order[seen[number]:] + [number]
        seen[number] = len(order)
        order.append(number)
        member = directory.members.get(number)
        number = member.next_number if member else None
    return order, None


def ring_timeout(directory: Directory, number: str, default: int) -> int:
    """Member setting, else its group's, else the global default."""
    member = directory.members.get(number)
    if member is None:
        return default
    if member.ring_timeout:
        return member.ring_timeout
    group = directory.groups.get(member.group_id)
    return group.ring_timeout if group and group.ring_timeout else default


def hunt_steps(directory: Directory, start: str, default_timeout: int, ring_only: bool = False) -> list[Step]:
    """The members a call rings, in order: inactive subscribers are left out, a loop is cut."""
    numbers = [start] if ring_only else chain_numbers(directory, start)[0][:MAX_STEPS]
    return [Step(n, ring_timeout(directory, n, default_timeout))
            for n in numbers if directory.active_subscriber(n)]


def hunt_on_after(code: int, hunt_on_decline: bool) -> bool:
    """A step ended without an answer (busy, no answer 408, unreachable 5xx, declined...):
    does the hunt go on? Only a 603 Decline can end it, when so configured."""
    return not (code == 603 and not hunt_on_decline)


def exhausted_reply(any_busy: bool) -> tuple[int, str]:
    """The caller's final reply when no member answered."""
    if any_busy:
        return 486, "Busy Here - all members busy or unavailable"
    return 480, "Temporarily Unavailable - no member answered"


def leg_outcome(code: int) -> str:
    """How a member's ringing ended, for the journal."""
    if code in BUSY_CODES:
        return "busy"
    if code == 408:
        return "no_answer"
    if code == 603:
        return "declined"
    if code == 487:
        return "cancelled"
    return "failed"
