"""Per-call state machines of ringing: a hunt (serial steps, or one ring-all step) and an
outbound call's trunk failover. Pure: `on_failure(state, event) -> (state, action)`; the
adapters (kemi/ring.py, kemi/outbound.py) load the state from AVPs (kemi/names.py), call
these and apply the action. The rules themselves stay where they were (kemi.hunt,
kemi.trunks); this is the order in which they apply.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from kemi import hunt, trunks

# ------------------------------------------------------------------ hunt


@dataclass(frozen=True)
class HuntStep:
    number: str            # "*": every member at once (a ring-all step)
    ring_timeout: int


@dataclass(frozen=True)
class HuntState:
    steps: tuple[HuntStep, ...]
    index: int = 0
    busy: bool = False     # a device answered busy (set by the reply route)
    fallback: str = ""     # where the call goes when nobody answered ("" = reply)

    @property
    def current(self) -> str:
        return self.steps[self.index].number if 0 <= self.index < len(self.steps) else "?"


@dataclass(frozen=True)
class StepFailed:
    code: int              # the step's best final reply (408 when it only rang)
    canceled: bool = False


@dataclass(frozen=True)
class RingNext:
    step: HuntStep


@dataclass(frozen=True)
class Cancelled:
    pass


@dataclass(frozen=True)
class PassOn:
    """The hunt stops here and the caller gets this reply (e.g. 603 when declines end hunts)."""
    code: int


@dataclass(frozen=True)
class Overflow:
    target: str


@dataclass(frozen=True)
class Exhausted:
    code: int
    reason: str


HuntAction = RingNext | Cancelled | PassOn | Overflow | Exhausted


def hunt_on_failure(state: HuntState, event: StepFailed, hunt_on_decline: bool) -> tuple[HuntState, HuntAction]:
    if event.canceled:
        return state, Cancelled()
    busy = state.busy or event.code in hunt.BUSY_CODES
    state = replace(state, busy=busy)
    if not hunt.hunt_on_after(event.code, hunt_on_decline):
        return state, PassOn(event.code)
    if state.index + 1 < len(state.steps):
        state = replace(state, index=state.index + 1)
        return state, RingNext(state.steps[state.index])
    return state, hunt_exhausted(state)


def hunt_exhausted(state: HuntState) -> HuntAction:
    """Nobody is left to ring (also when the next step's devices are gone)."""
    if state.fallback:
        return Overflow(state.fallback)
    code, reason = hunt.exhausted_reply(state.busy)
    return Exhausted(code, reason)


# ------------------------------------------------------------------ trunk failover


@dataclass(frozen=True)
class TrunkAttempt:
    trunk_id: int
    uri: str


@dataclass(frozen=True)
class TrunkState:
    attempts: tuple[TrunkAttempt, ...]
    index: int = 0
    overflow: str = ""     # a flow's next node when every trunk failed ("" = reply)


@dataclass(frozen=True)
class TryNext:
    attempt: TrunkAttempt


@dataclass(frozen=True)
class AllFailed:
    code: int
    reason: str


TrunkAction = TryNext | Cancelled | PassOn | Overflow | AllFailed


def trunk_on_failure(state: TrunkState, event: StepFailed) -> tuple[TrunkState, TrunkAction]:
    if event.canceled:
        return state, Cancelled()
    if not trunks.fails_over(event.code):
        return state, PassOn(event.code)          # the far end's answer (busy, not found, ...)
    if state.index + 1 < len(state.attempts):
        state = replace(state, index=state.index + 1)
        return state, TryNext(state.attempts[state.index])
    if state.overflow:
        return state, Overflow(state.overflow)
    code, reason = trunks.failed_all_reply(event.code)
    return state, AllFailed(code, reason)
