"""The launcher's pure escalation machine and its input rules (kemi/core/launcher.py)."""
from __future__ import annotations

import pytest

from kemi.core import launcher as L

A = L.Contact("Alice", work="1001", home="2001", mobile="3001", email="a@example.org")
B = L.Contact("Bob", work="1002", home="2002")
C = L.Contact("Carol", home="2003", mobile="3003")        # no work number
PEOPLE = (A, B, C)


def run(events, scheme=L.CONFCALL, contacts=PEOPLE):
    state = L.start(contacts)
    out = []
    for event in events:
        state, actions = L.step(scheme, state, event)
        out.append(actions)
    return state, out


@pytest.mark.parametrize("events, expected_last", [
    # t = 0: every work number (Carol has none)
    ([L.Tick(0)], (L.PlaceCall(0, "work", "1001"), L.PlaceCall(1, "work", "1002"))),
    # nothing between the steps
    ([L.Tick(0), L.Tick(30)], ()),
    # t = 60: home numbers of those not joined; Alice joined at work; Bob's call ended
    ([L.Tick(0), L.Joined(0, "work"), L.CallEnded(1), L.Tick(60)],
     (L.PlaceCall(1, "home", "2002"), L.PlaceCall(2, "home", "2003"))),
    # a contact still being called at work is not called at home at the same time
    ([L.Tick(0), L.Tick(60)], (L.PlaceCall(2, "home", "2003"),)),
    # t = 120: SMS and email to everyone with an address (who = all)
    ([L.Tick(0), L.Joined(0, "work"), L.Tick(120)],     # Bob's work call still rings: not called home
     (L.PlaceCall(2, "home", "2003"),
      L.Notify(0, ("sms", "email")), L.Notify(2, ("sms",)))),
    # a late clock fires every step that is due, in order
    ([L.Tick(3600)], (L.PlaceCall(0, "work", "1001"), L.PlaceCall(1, "work", "1002"), L.PlaceCall(2, "home", "2003"),
                      L.Notify(0, ("sms", "email")), L.Notify(2, ("sms",)), L.Finish("deadline"))),
])
def test_confcall_scheme(events, expected_last):
    _state, out = run(events)
    assert out[-1] == expected_last


def test_joined_is_recorded_once_with_the_first_way():
    state, _ = run([L.Tick(0), L.Joined(1, "work"), L.Joined(1, "dial-in"), L.Joined(7, "work")])
    assert state.joined == (None, "work", None)


def test_everyone_joined_finishes_after_the_steps_that_reach_everyone():
    state, out = run([L.Tick(0), L.Joined(0, "work"), L.Joined(1, "work"), L.Joined(2, "dial-in"), L.Tick(61)])
    assert not state.finished, "CONFCALL still sends the SMS and email to everyone at 120 s"
    state, out = run([L.Tick(0), L.Joined(0, "work"), L.Joined(1, "work"), L.Joined(2, "dial-in"), L.Tick(120)])
    assert state.finished and out[-1][-1] == L.Finish("everyone joined")
    only_calls = L.Scheme("X", (L.Step(0, call="work"), L.Step(60, call="home")))
    state, out = run([L.Tick(0), L.Joined(0, "work"), L.Joined(1, "work"), L.Joined(2, "dial-in")], only_calls)
    assert state.finished and out[-1] == (L.Finish("everyone joined"),)


def test_finished_machine_ignores_everything_and_stop_finishes():
    state, out = run([L.Stop("cancelled"), L.Tick(0), L.Joined(0, "work")])
    assert out == [(L.Finish("cancelled"),), (), ()]
    assert state.joined == (None, None, None)


def test_summary():
    state, _ = run([L.Tick(0), L.Joined(0, "work"), L.Joined(2, "dial-in")])
    s = L.summary(state)
    assert (s.joined, s.total, s.by) == (2, 3, {"work": 1, "dial-in": 1})


def test_scheme_round_trip_and_default():
    assert L.parse_scheme(L.CONFCALL.to_dict()) == L.CONFCALL
    short = L.parse_scheme({"name": "FAST", "ring_seconds": 6, "end_after": 60,
                            "steps": [{"at": 0, "call": "work"}, {"at": 8, "call": "home"},
                                      {"at": 16, "notify": ["sms", "email"], "who": "not-joined"}]})
    assert short.steps[2] == L.Step(16, notify=("sms", "email"))


@pytest.mark.parametrize("data, field", [
    ([], "scheme"),
    ({"name": "bad name", "steps": [{"at": 0, "call": "work"}]}, "name"),
    ({"name": "X", "steps": []}, "steps"),
    ({"name": "X", "steps": [{"at": 0, "call": "fax"}]}, "steps[0].call"),
    ({"name": "X", "steps": [{"at": -1, "call": "work"}]}, "steps[0].at"),
    ({"name": "X", "steps": [{"at": True, "call": "work"}]}, "steps[0].at"),
    ({"name": "X", "steps": [{"at": 10, "call": "work"}, {"at": 5, "call": "home"}]}, "steps[1].at"),
    ({"name": "X", "steps": [{"at": 0, "call": "work", "notify": ["sms"]}]}, "steps[0]"),
    ({"name": "X", "steps": [{"at": 0, "notify": ["pigeon"]}]}, "steps[0].notify"),
    ({"name": "X", "steps": [{"at": 0, "notify": ["sms", "sms"]}]}, "steps[0].notify"),
    ({"name": "X", "steps": [{"at": 0, "call": "work", "who": "some"}]}, "steps[0].who"),
    ({"name": "X", "steps": [{"at": 0, "call": "work", "when": 1}]}, "steps[0].when"),
    ({"name": "X", "steps": [{"at": 0, "call": "work"}], "ring_seconds": 500}, "ring_seconds"),
    ({"name": "X", "steps": [{"at": 100, "call": "work"}], "end_after": 50}, "end_after"),
    ({"name": "X", "steps": [{"at": 0, "call": "work"}] * 11}, "steps"),
    ({"name": "X", "steps": [{"at": 0, "call": "work"}], "colour": "red"}, "colour"),
])
def test_scheme_errors_name_the_field(data, field):
    with pytest.raises(L.LaunchError) as err:
        L.parse_scheme(data)
    assert err.value.field == field, str(err.value)


GOOD = {"room": "8100", "pin": "2468", "contacts": [{"name": "Alice", "work": "1001", "email": "a@example.org"}]}


def test_request_parses():
    req = L.parse_request({**GOOD, "title": "Crisis", "welcome": "launch-welcome", "record": True,
                           "scheme": "FAST", "dial_in": "+4930700"})
    assert req.contacts == (L.Contact("Alice", work="1001", email="a@example.org"),)
    assert (req.room, req.pin, req.record, req.scheme, req.dial_in) == ("8100", "2468", True, "FAST", "+4930700")


@pytest.mark.parametrize("change, field", [
    ({"room": "81a0"}, "room"),
    ({"room": 8100}, "room"),
    ({"pin": "12"}, "pin"),
    ({"contacts": []}, "contacts"),
    ({"contacts": [{"name": "x", "work": "1"}] * 51}, "contacts"),
    ({"contacts": ["Alice"]}, "contacts[0]"),
    ({"contacts": [{"name": "", "work": "1001"}]}, "contacts[0].name"),
    ({"contacts": [{"name": "A\r\nX-Evil: 1", "work": "1001"}]}, "contacts[0].name"),
    ({"contacts": [{"name": "A" * 65, "work": "1001"}]}, "contacts[0].name"),
    ({"contacts": [{"name": "A", "work": "10;01"}]}, "contacts[0].work"),
    ({"contacts": [{"name": "A", "home": 1001}]}, "contacts[0].home"),
    ({"contacts": [{"name": "A", "email": "a@b.c"}]}, "contacts[0]"),
    ({"contacts": [{"name": "A", "work": "1001", "email": "not an address"}]}, "contacts[0].email"),
    ({"contacts": [{"name": "A", "work": "1001", "fax": "1"}]}, "contacts[0].fax"),
    ({"welcome": "../../etc/passwd"}, "welcome"),
    ({"record": "yes"}, "record"),
    ({"scheme": "a b"}, "scheme"),
    ({"dial_in": "call me"}, "dial_in"),
    ({"admin": True}, "admin"),
])
def test_request_errors_name_the_field(change, field):
    with pytest.raises(L.LaunchError) as err:
        L.parse_request({**GOOD, **change})
    assert err.value.field == field, str(err.value)


def test_contact_recognises_its_numbers_and_message_has_number_and_pin():
    assert A.how_for("2001") == "home" and A.how_for("9999") is None and A.how_for("") is None
    text = L.message("Crisis", "8100", "2468")
    assert "8100" in text and "2468" in text and "Crisis" in text
