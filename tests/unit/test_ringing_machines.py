"""kemi/core/ringing.py: the hunt and trunk-failover state machines as tables, and their
AVP encodings (kemi/names.py) round-tripping."""
from __future__ import annotations

import pytest

from kemi import names
from kemi.core.ringing import (AllFailed, Cancelled, Exhausted, HuntState, HuntStep, Overflow, PassOn, RingNext,
                               StepFailed, TrunkAttempt, TrunkState, TryNext, hunt_exhausted, hunt_on_failure,
                               trunk_on_failure)

A, B, C = HuntStep("77721401", 15), HuntStep("77721402", 20), HuntStep("77721403", 10)
CHAIN = HuntState((A, B, C))

HUNT_CASES = [
    # (state, code, canceled, hunt_on_decline, expected index, expected busy, expected action)
    (CHAIN, 486, False, True, 1, True, RingNext(B)),
    (CHAIN, 408, False, True, 1, False, RingNext(B)),
    (CHAIN, 503, False, True, 1, False, RingNext(B)),
    (CHAIN, 603, False, True, 1, False, RingNext(B)),
    (CHAIN, 603, False, False, 0, False, PassOn(603)),
    (CHAIN, 487, True, True, 0, False, Cancelled()),
    (HuntState((A, B, C), 2), 408, False, True, 2, False, Exhausted(480, "Temporarily Unavailable - no member answered")),
    (HuntState((A, B, C), 2, busy=True), 408, False, True, 2, True, Exhausted(486, "Busy Here - all members busy or unavailable")),
    (HuntState((A, B, C), 2), 486, False, True, 2, True, Exhausted(486, "Busy Here - all members busy or unavailable")),
    (HuntState((A, B, C), 2, fallback="6000"), 408, False, True, 2, False, Overflow("6000")),
    (HuntState((HuntStep("*", 30),), fallback="flow:exhausted"), 408, False, True, 0, False, Overflow("flow:exhausted")),
]


@pytest.mark.parametrize("state,code,canceled,on_decline,index,busy,action", HUNT_CASES)
def test_hunt_machine(state, code, canceled, on_decline, index, busy, action):
    new, got = hunt_on_failure(state, StepFailed(code, canceled), on_decline)
    assert got == action
    assert (new.index, new.busy) == (index, busy)


def test_hunt_exhausted_when_devices_vanished():
    assert hunt_exhausted(HuntState((A, B), 1, fallback="7000")) == Overflow("7000")
    assert hunt_exhausted(HuntState((A, B), 1)) == Exhausted(480, "Temporarily Unavailable - no member answered")


def test_a_hunt_always_ends():
    """Feeding failures to any chain ends it within its length (no step is rung twice)."""
    state = HuntState(tuple(HuntStep(str(n), 5) for n in range(10, 70)))
    rung = [state.current]
    for _ in range(100):
        state, action = hunt_on_failure(state, StepFailed(408), True)
        if not isinstance(action, RingNext):
            break
        rung.append(action.step.number)
    assert len(rung) == len(set(rung)) == 60 and isinstance(action, Exhausted)


T1, T2 = TrunkAttempt(1, "sip:4930@192.0.2.10:5060"), TrunkAttempt(2, "sip:4930@192.0.2.11:5060")
TRUNK_CASES = [
    (TrunkState((T1, T2)), 503, False, 1, TryNext(T2)),
    (TrunkState((T1, T2)), 408, False, 1, TryNext(T2)),
    (TrunkState((T1, T2)), 486, False, 0, PassOn(486)),
    (TrunkState((T1, T2)), 404, False, 0, PassOn(404)),
    (TrunkState((T1, T2)), 487, True, 0, Cancelled()),
    (TrunkState((T1, T2), 1), 500, False, 1, AllFailed(503, "Service Unavailable - every trunk failed (last answer 500)")),
    (TrunkState((T1, T2), 1, overflow="flow:failed"), 500, False, 1, Overflow("flow:failed")),
]


@pytest.mark.parametrize("state,code,canceled,index,action", TRUNK_CASES)
def test_trunk_machine(state, code, canceled, index, action):
    new, got = trunk_on_failure(state, StepFailed(code, canceled))
    assert got == action and new.index == index


@pytest.mark.parametrize("state", [CHAIN, HuntState((HuntStep("*", 30),), 0, True, "flow:exhausted"),
                                   HuntState((A,), 0, False, "6000")])
def test_hunt_avps_round_trip(state):
    encoded = names.encode_hunt_steps(state.steps)
    assert names.decode_hunt(encoded, str(state.index), "1" if state.busy else "0", state.fallback) == state


def test_trunk_avps_round_trip():
    state = TrunkState((T1, T2), 1, "flow:failed")
    assert names.decode_trunk(names.encode_trunk_attempts(state.attempts), "1", "flow:failed") == state
    with pytest.raises(names.DecodeError):
        names.decode_trunk("x sip:a", "0", "")
    with pytest.raises(names.DecodeError):
        names.decode_hunt("77721401:abc", "0", "0", "")


# ------------------------------------------------------------------ queue entries

from kemi.core import queue_entry as qe  # noqa: E402

WAITING_ENTRY = qe.arrive(12, 345, 1700000000.125, "0301234567")
OFFERED_ENTRY = qe.QueueEntry(qe.OFFERED, 12, 345, 1700000000.125, "0301234567")


@pytest.mark.parametrize("entry,event,state,route", [
    (WAITING_ENTRY, qe.Offer(), qe.OFFERED, qe.OFFER_ROUTE),
    (WAITING_ENTRY, qe.TimeOut(), qe.OFFERED, qe.TIMEOUT_ROUTE),
    (WAITING_ENTRY, qe.Cancel(), qe.OFFERED, qe.TIMEOUT_ROUTE),
    (WAITING_ENTRY, qe.Requeue(), qe.WAITING, None),
    (OFFERED_ENTRY, qe.Offer(), qe.OFFERED, None),          # an offer in progress is never doubled
    (OFFERED_ENTRY, qe.TimeOut(), qe.OFFERED, None),
    (OFFERED_ENTRY, qe.Cancel(), qe.OFFERED, None),         # the offer's failure route handles the CANCEL
    (OFFERED_ENTRY, qe.Requeue(), qe.WAITING, None),        # no answer: back in line, same arrival time
])
def test_queue_entry_machine(entry, event, state, route):
    new, action = qe.on_event(entry, event)
    assert new.state == state
    assert (action.route if action else None) == route
    assert (new.arrived, new.caller, new.tindex, new.tlabel) == (entry.arrived, entry.caller, 12, 345)


@pytest.mark.parametrize("entry", [WAITING_ENTRY, OFFERED_ENTRY, qe.arrive(1, 2, 3.5, "caller|with|bars")])
def test_queue_entry_round_trip(entry):
    assert names.decode_entry(names.encode_entry(entry)) == entry


@pytest.mark.parametrize("bad", ["X|1|2|3|c", "W|a|2|3|c", "W|1|2|soon|c", "W|1|2"])
def test_bad_queue_entry_is_refused(bad):
    with pytest.raises(names.DecodeError):
        names.decode_entry(bad)
