"""An agent's state as a pure state machine (issue 11): one state per membership (a queue or
a ring-all group the agent belongs to), changed by commands that act on all of them at once.

    membership state:  IN (logged in)  OUT (logged out)  PAUSED(reason)
    reasons: a pause code ([a-z0-9_]{1,32}, default "break"), DND ("dnd"), AUTO ("auto")

    login / logout [one queue]   every membership (or that queue's) -> IN / OUT, any pause cleared
    pause [reason]               every queue membership that is IN -> PAUSED(reason)
    unpause                      every queue membership PAUSED(reason != dnd) -> IN
    dnd (toggle)                 any membership PAUSED(dnd): all of those -> IN (off);
                                 else every membership that is IN -> PAUSED(dnd) (on)
    auto-pause (queue)           that queue's membership, if IN -> PAUSED(auto)

Unpause (and DND off) restores exactly the memberships the pause took, because the pause is
kept per membership. Every command returns the new memberships, only the ones it changed,
and the answer for the phone / kemictl (`Result`). Encoding of a membership state is
`encode_state`/`decode_state` (kept in shared memory and in the events file).
Pure: no I/O, no KSR; table-tested in tests/unit/test_agent_machine.py.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

IN = "in"
OUT = "out"
PAUSED = "paused"
DND = "dnd"
AUTO = "auto"
DEFAULT_PAUSE = "break"
QUEUE = "q"
RINGALL = "g"
REASON = re.compile(r"[a-z0-9_]{1,32}")


@dataclass(frozen=True)
class Membership:
    kind: str            # QUEUE or RINGALL
    group: str           # the queue's or ring-all group's number
    state: str = IN      # IN, OUT or PAUSED
    reason: str = ""     # the pause reason when PAUSED

    @property
    def logged_in(self) -> bool:
        return self.state == IN


@dataclass(frozen=True)
class Result:
    ok: bool
    status: int          # the SIP reply for a feature code (603 done, 403/404 refused)
    reason: str          # "Done - ..." or "Forbidden - ..." / "Not Found - ..."
    changed: tuple[Membership, ...] = ()   # the memberships whose state changed, new state

    @property
    def text(self) -> str:
        """The reason without its SIP prefix, for kemictl."""
        return self.reason.split(" - ", 1)[-1]


def encode_state(m: Membership) -> str:
    return f"p:{m.reason}" if m.state == PAUSED else m.state


def decode_state(text: str | None) -> tuple[str, str] | None:
    """(state, reason) from its encoding; None for anything else (a key never written)."""
    if text == IN or text == OUT:
        return text, ""
    if text and text.startswith("p:") and REASON.fullmatch(text[2:]):
        return PAUSED, text[2:]
    return None


def _no_agent(number: str) -> Result:
    return Result(False, 403, f"Forbidden - {number} is no agent of any queue or group")


def _done(text: str, changed: list[Membership]) -> Result:
    return Result(True, 603, f"Done - {text}", tuple(changed))


def _set(ms: tuple[Membership, ...], pick: Callable[[Membership], bool], state: str, reason: str = "") -> list[Membership]:
    return [replace(m, state=state, reason=reason) for m in ms
            if pick(m) and (m.state, m.reason) != (state, reason)]


def login(number: str, ms: tuple[Membership, ...], queue: str | None, logged_in: bool,
          kind: str = QUEUE) -> Result:
    """*61 / *62 [queue number]: in or out of one queue (or, from kemictl, one ring-all
    group), or of every queue and ring-all group."""
    target = IN if logged_in else OUT
    if queue is not None:
        what = f"queue {queue}" if kind == QUEUE else f"group {queue}"
        if not any(m.kind == kind and m.group == queue for m in ms):
            return Result(False, 404, f"Not Found - {number} is no agent of {what}")
        changed = _set(ms, lambda m: m.kind == kind and m.group == queue, target)
    else:
        if not ms:
            return _no_agent(number)
        changed = _set(ms, lambda m: True, target)
        what = "all queues and groups"
    return _done(f"logged {'in to' if logged_in else 'out of'} {what}", changed)


def pause(number: str, ms: tuple[Membership, ...], reason: str | None) -> Result:
    """*63 [code]: off every queue the agent is logged in to, with the reason kept."""
    code = reason or DEFAULT_PAUSE
    if not REASON.fullmatch(code):
        return Result(False, 484, "Address Incomplete - a pause reason is 1-32 of a-z, 0-9, _")
    if not ms:
        return _no_agent(number)
    changed = _set(ms, lambda m: m.kind == QUEUE and m.state == IN, PAUSED, code)
    if not changed:
        return _done("nothing to pause", [])
    return _done(f"paused ({code}) in {len(changed)} queue(s)", changed)


def unpause(number: str, ms: tuple[Membership, ...]) -> Result:
    """*64: back in every queue a pause (any reason but do not disturb) took."""
    if not ms:
        return _no_agent(number)
    changed = _set(ms, lambda m: m.kind == QUEUE and m.state == PAUSED and m.reason != DND, IN)
    if not changed:
        return _done("nothing to unpause", [])
    return _done(f"unpaused in {len(changed)} queue(s)", changed)


def toggle_dnd(number: str, ms: tuple[Membership, ...]) -> Result:
    """*65: do not disturb on (off every queue and ring-all group) or, if on, off again."""
    if not ms:
        return _no_agent(number)
    restored = _set(ms, lambda m: m.state == PAUSED and m.reason == DND, IN)
    if restored:
        return _done("do not disturb off", restored)
    taken = _set(ms, lambda m: m.state == IN, PAUSED, DND)
    if not taken:
        return _done("nothing to do not disturb", [])
    return _done("do not disturb on", taken)


def auto_pause(number: str, ms: tuple[Membership, ...], queue: str) -> Result:
    """The queue paused the agent after too many unanswered offers (only if logged in)."""
    changed = _set(ms, lambda m: m.kind == QUEUE and m.group == queue and m.state == IN, PAUSED, AUTO)
    return _done(f"paused (auto) in queue {queue}" if changed else "nothing to pause", changed)


def apply(ms: tuple[Membership, ...], changed: tuple[Membership, ...]) -> tuple[Membership, ...]:
    """The memberships after a result's changes."""
    new = {(c.kind, c.group): c for c in changed}
    return tuple(new.get((m.kind, m.group), m) for m in ms)


# ---------------------------------------------------------------- unanswered offers

def missed_offer_counts(code: int) -> bool:
    """Whether an offer that ended with `code` counts as unanswered for auto-pause: no answer,
    unreachable or declined; a busy phone (486/600) is not the agent ignoring a call."""
    return code not in (486, 600) and (code in (408, 480, 487, 603) or code >= 500)


def on_offer_ended(misses: int, code: int, limit: int | None) -> tuple[int, bool]:
    """(unanswered offers in a row after this one, whether to auto-pause now). An answer
    (2xx) resets the count; a pause resets it too (the count starts afresh after unpause)."""
    if 200 <= code < 300:
        return 0, False
    if not missed_offer_counts(code):
        return misses, False
    misses += 1
    if limit is not None and misses >= limit:
        return 0, True
    return misses, False
