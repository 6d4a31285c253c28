"""media: waiting queue callers on hold (music) - the entry machine, its encoding and the
hold INFO the dispatcher sends the media service."""
from __future__ import annotations

import pytest

from kemi import names
from kemi.core import queue_entry as qe
from kemi.directory import QueueHold
from media import apps

ON_HOLD = qe.arrive(12, 345, 1700000000.125, "0301234567", hold=True)
HOLD_OFFERED = qe.QueueEntry(qe.OFFERED, 12, 345, 1700000000.125, "0301234567", True)


@pytest.mark.parametrize("entry,event,state,action", [
    (ON_HOLD, qe.Offer(), qe.OFFERED, qe.EndHold("offer")),        # the hold branch ends, the agents ring
    (ON_HOLD, qe.TimeOut(), qe.OFFERED, qe.EndHold("timeout")),
    (ON_HOLD, qe.Cancel(), qe.WAITING, None),                       # tm forwards the CANCEL to the hold branch
    (ON_HOLD, qe.Progress(), qe.WAITING, None),                     # early media: no repeated 182 needed
    (ON_HOLD, qe.Requeue(), qe.WAITING, None),
    (HOLD_OFFERED, qe.Offer(), qe.OFFERED, None),                   # never doubled
    (HOLD_OFFERED, qe.TimeOut(), qe.OFFERED, None),
    (HOLD_OFFERED, qe.Requeue(), qe.WAITING, None),                 # unanswered offer: music again, same place
])
def test_hold_entry_machine(entry, event, state, action):
    new, got = qe.on_event(entry, event)
    assert new.state == state and got == action
    assert new.hold and (new.arrived, new.caller) == (entry.arrived, entry.caller)


def test_suspended_entries_are_unchanged_by_hold():
    entry = qe.arrive(1, 2, 3.0, "c")
    assert not entry.hold
    assert qe.on_event(entry, qe.Offer())[1] == qe.Resume(qe.OFFER_ROUTE)


@pytest.mark.parametrize("entry", [ON_HOLD, HOLD_OFFERED, qe.arrive(1, 2, 3.5, "Hcaller|x", hold=True)])
def test_hold_entry_round_trip(entry):
    text = names.encode_entry(entry)
    assert text.startswith("H")
    assert names.decode_entry(text) == entry


@pytest.mark.parametrize("bad", ["HX|1|2|3|c", "H|1|2|3|c", "HHW|1|2|3|c"])
def test_bad_hold_entry_is_refused(bad):
    with pytest.raises(names.DecodeError):
        names.decode_entry(bad)


@pytest.mark.parametrize("body,expected", [
    ("end", None), ("end\r\n", None), ("position=3;wait=120", (3, 120)), ("position=1", (1, 0)),
    ("position=0;wait=0", (0, 0)),
])
def test_hold_info_bodies(body, expected):
    assert apps.parse_hold_info(body) == expected


@pytest.mark.parametrize("body", ["", "stop", "position=-1", "position=x", "wait=3", "position=1;evil=2",
                                  "position=1234567", "position=1;wait=9999999"])
def test_bad_hold_info_is_refused_with_400(body):
    with pytest.raises(apps.AppError) as err:
        apps.parse_hold_info(body)
    assert err.value.status == 400 and "hold INFO" in err.value.reason


@pytest.mark.parametrize("announce,position,wait", [
    ("none", False, False), ("position", True, False), ("wait", False, True), ("both", True, True)])
def test_queue_hold_announces(announce, position, wait):
    hold = QueueHold("music-hold", 30, announce)
    assert (hold.position, hold.wait) == (position, wait)


def test_hold_app_header_is_parsed():
    app = apps.parse("hold;music=music-hold;interval=20")
    assert app == apps.Hold("music-hold", 20, 0)
