"""kemi/routing.py: dial string + directory -> a ring plan or a rejection."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi.directory import Directory, HuntGroup, HuntMember, ServiceNumber, Subscriber
from kemi.hunt import Step
from kemi.routing import Reject, RingPlan, plan_call

FAST = settings(max_examples=200, deadline=None)

MEMBERS = {"77721401": "77721402", "77721402": "77721403", "77721403": "77721404",
           "77721404": "77721405", "77721405": "77721406", "11121400": None}
SERVICES = {"8008001": "77721401", "8008002": "77721401", "8008003": "77721403"}
PLAIN = ["77721406", "555"]
INACTIVE = ["666", "900", "901"]


def build() -> Directory:
    subs = {n: Subscriber(n, "ha1") for n in [*MEMBERS, *PLAIN]}
    subs.update({n: Subscriber(n, "ha1", active=False) for n in INACTIVE})
    members = {n: HuntMember(n, 1, nxt) for n, nxt in MEMBERS.items()}
    members.update({"900": HuntMember("900", 2, "901"), "901": HuntMember("901", 2, None)})
    services = {s: ServiceNumber(s, 1, start) for s, start in SERVICES.items()}
    services["8009000"] = ServiceNumber("8009000", 2, "900")
    return Directory(subs, {1: HuntGroup(1, "example1", 20), 2: HuntGroup(2, "dead")}, members, services)


D = build()
FROM_1 = ["77721401", "77721402", "77721403", "77721404", "77721405", "77721406"]

PLANS = [
    # dialled, kind, numbers rung
    ("8008001", "service", FROM_1),
    ("8008002", "service", FROM_1),
    ("8008003", "service", FROM_1[2:]),
    ("77721401", "hunt", FROM_1),
    ("77721403", "hunt", FROM_1[2:]),
    ("77721405", "hunt", ["77721405", "77721406"]),
    ("11121400", "hunt", ["11121400"]),
    ("77721401T", "direct", ["77721401"]),
    ("77721403T", "direct", ["77721403"]),
    ("11121400T", "direct", ["11121400"]),
    ("77721406", "direct", ["77721406"]),
    ("77721406T", "direct", ["77721406"]),
    ("555", "direct", ["555"]),
]


@pytest.mark.parametrize("dialled,kind,rung", PLANS, ids=[p[0] for p in PLANS])
def test_plans(dialled, kind, rung):
    plan = plan_call(dialled, D, 30)
    assert isinstance(plan, RingPlan)
    assert plan.kind == kind
    assert plan.dialled == dialled.rstrip("T")
    assert [s.number for s in plan.steps] == rung
    assert isinstance(plan.steps, tuple)


def test_plan_timeouts():
    plan = plan_call("77721405", D, 30)
    assert plan.steps == (Step("77721405", 20), Step("77721406", 30))   # group 20, plain default
    assert plan_call("555", D, 45).steps == (Step("555", 45),)


REJECTS = [
    # dialled, status, words in reason
    ("123456", 404, "Not Found"),
    ("8008001999", 404, "Not Found"),
    ("666", 480, "disabled"),
    ("666T", 480, "disabled"),
    ("900", 480, "disabled"),                     # inactive member dialled directly
    ("8009000", 480, "no active member"),         # service whose chain is all inactive
    ("4#77721401", 403, "supervisors' phones"),   # no caller: a trunk call
    ("5#77721401", 403, "supervisors' phones"),   # whisper and barge: authorised like 4#
    ("6#77721401", 403, "supervisors' phones"),
    ("4%2377721401", 403, "supervisors' phones"),
    ("5#123456", 403, "supervisors' phones"),
    ("77721401h", 484, "for calls from phones"),     # no caller: a trunk call
    ("77721401c1", 484, "for calls from phones"),
    ("77721401c2hT", 484, "for calls from phones"),
    ("", 484, "Address Incomplete"),
    ("abc", 484, "Address Incomplete"),
    ("77721401TT", 484, "twice"),
    ("77721401c0", 484, "unknown suffix"),
    ("4#77721401T", 484, "bare"),
    ("9#77721401", 484, "service code"),
]


@pytest.mark.parametrize("dialled,status,words", REJECTS, ids=[r[0] or "empty" for r in REJECTS])
def test_rejects(dialled, status, words):
    plan = plan_call(dialled, D, 30)
    assert isinstance(plan, Reject)
    assert plan.status == status
    assert words.lower() in plan.reason.lower()


def test_inactive_members_are_skipped():
    subs = dict(D.subscribers)
    subs["77721402"] = Subscriber("77721402", "ha1", active=False)
    subs["77721404"] = Subscriber("77721404", "ha1", active=False)
    d = Directory(subs, D.groups, D.members, D.services)
    assert [s.number for s in plan_call("8008001", d, 30).steps] == ["77721401", "77721403", "77721405", "77721406"]
    assert plan_call("77721402", d, 30) == Reject(480, "Temporarily Unavailable - number disabled")


def test_service_start_inactive_goes_on_with_the_chain():
    subs = dict(D.subscribers)
    subs["77721403"] = Subscriber("77721403", "ha1", active=False)
    d = Directory(subs, D.groups, D.members, D.services)
    assert [s.number for s in plan_call("8008003", d, 30).steps] == ["77721404", "77721405", "77721406"]


def test_member_loop_is_cut():
    d = Directory({"1": Subscriber("1", "x"), "2": Subscriber("2", "x")}, {1: HuntGroup(1, "g")},
                  {"1": HuntMember("1", 1, "2"), "2": HuntMember("2", 1, "1")}, {})
    assert [s.number for s in plan_call("2", d, 30).steps] == ["2", "1"]


def test_member_that_is_no_subscriber_is_not_found():
    d = Directory({}, {1: HuntGroup(1, "g")}, {"1": HuntMember("1", 1)}, {})
    assert plan_call("1", d, 30).status == 404


@FAST
@given(st.text(max_size=20))
def test_plan_call_is_total(raw):
    plan = plan_call(raw, D, 30)
    assert isinstance(plan, (RingPlan, Reject))
    if isinstance(plan, Reject):
        assert plan.status in (404, 480, 484, 501)
    else:
        assert plan.steps and all(D.active_subscriber(s.number) for s in plan.steps)


# phones (issue 12): a group never rings the caller's own devices; one suffix rule for groups
OWN_DEVICES = [
    # dialled, caller, numbers rung
    ("8008001", "77721401", FROM_1[1:]),                 # the start member calls its own group
    ("8008001", "77721403", ["77721401", "77721402", "77721404", "77721405", "77721406"]),
    ("77721401", "77721402", ["77721401"] + FROM_1[2:]),  # a hunt from a colleague's number
    ("77721402", "77721402", FROM_1[2:]),                # dialling yourself hunts on, never rings you
    ("77721402T", "77721402", ["77721402"]),             # T: a direct call is what was asked for
    ("8008001", "11121400", FROM_1),                     # not a member: everyone rings
]


@pytest.mark.parametrize("dialled,caller,rung", OWN_DEVICES)
def test_groups_never_ring_the_callers_own_devices(dialled, caller, rung):
    plan = plan_call(dialled, D, 30, caller=D.subscribers[caller])
    assert [s.number for s in plan.steps] == rung


def test_a_group_of_only_the_caller_answers_480():
    d = Directory({"1": Subscriber("1", "x")}, {1: HuntGroup(1, "solo")}, {"1": HuntMember("1", 1)},
                  {"900": ServiceNumber("900", 1, "1")})
    plan = plan_call("900", d, 30, caller=d.subscribers["1"])
    assert plan == Reject(480, "Temporarily Unavailable - no other member in the group")


def test_overflow_excludes_the_original_caller_without_identity():
    plan = plan_call("8008001", D, 30, exclude="77721401")
    assert [s.number for s in plan.steps] == FROM_1[1:]


@pytest.mark.parametrize("dialled", ["8008001T", "8008001h", "8008001c1", "8008003c2hT"])
def test_service_numbers_take_no_suffixes_like_every_group(dialled):
    for caller in (None, D.subscribers["77721406"]):   # from a trunk or a phone, with or without caller IDs
        plan = plan_call(dialled, D, 30, caller=caller)
        assert isinstance(plan, Reject) and plan.status == 484, (dialled, caller, plan)
        if caller is not None:
            assert "group and queue numbers" in plan.reason
