"""Caller identity (h, cN, seed 002 caller-ID policy) and trunk routing: pure decisions."""
from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi import identity, trunks
from kemi.directory import Did, Directory, Subscriber, Trunk, TrunkRoute
from kemi.routing import Reject, RingPlan, TrunkPlan, plan_call

ALICE = Subscriber("1001", "ha1", display_name="Alice", public_name="ACME Sales",
                   caller_ids=("4930111", "4930222", "4940333"))
BOB = Subscriber("1002", "ha1", display_name="Bob", default_caller_id="4930999")
CAROL = Subscriber("1003", "ha1", hide_caller_id=True, send_pai=True)
BERLIN = Trunk(1, "berlin", trusted=True, addresses=(("127.0.0.2", 5070), ("127.0.0.4", None)))
HAMBURG = Trunk(2, "hamburg", trusted=False, send_pai=True, addresses=(("127.0.0.3", 5080),),
                default_caller_id="4940000")
SPARE = Trunk(3, "spare", transport="tcp", trusted=True, addresses=(("127.0.0.5", 5090),))
DOWN = Trunk(4, "down", active=False, addresses=(("127.0.0.6", 5060),))
DIRECTORY = Directory(
    subscribers={s.number: s for s in (ALICE, BOB, CAROL)},
    trunks={t.id: t for t in (BERLIN, HAMBURG, SPARE, DOWN)},
    routes=(TrunkRoute("49", 1, 10), TrunkRoute("49", 3, 20), TrunkRoute("4940", 2), TrunkRoute("", 3),
            TrunkRoute("4940", 4, 0)),
    dids={"4930111": Did("4930111", 1, "1001", "0", "#1", "Berlin"), "4930222": Did("4930222", 1, "1001"),
          "4940333": Did("4940333", 2, "1002")},
)


@pytest.mark.parametrize("number,expected", [
    ("4930123", ["berlin", "spare"]),           # prefix 49: priority 10 before 20
    ("4940123", ["hamburg", "berlin", "spare"]),  # longest prefix first, inactive trunk left out
    ("3312345", ["spare"]),                     # the empty prefix matches everything
])
def test_outbound_trunk_order(number, expected):
    assert [t.name for t in trunks.outbound_trunks(DIRECTORY, number)] == expected


def test_outbound_steps_cover_every_address_with_transport():
    steps = trunks.outbound_steps(DIRECTORY, "4930123")
    assert [s.uri for s in steps] == ["sip:4930123@127.0.0.2:5070", "sip:4930123@127.0.0.4:5060",
                                      "sip:4930123@127.0.0.5:5090;transport=tcp"]


@pytest.mark.parametrize("ip,port,name", [
    ("127.0.0.2", 5070, "berlin"), ("127.0.0.2", 5071, None), ("127.0.0.4", 40000, "berlin"),
    ("127.0.0.6", 5060, None), ("127.0.0.1", 5060, None),
])
def test_trunk_for_source(ip, port, name):
    trunk = trunks.trunk_for_source(DIRECTORY, ip, port)
    assert (trunk.name if trunk else None) == name


@pytest.mark.parametrize("code,over", [(500, True), (503, True), (599, True), (408, True), (486, False),
                                       (404, False), (603, False), (480, False), (487, False)])
def test_fails_over(code, over):
    assert trunks.fails_over(code) is over


def test_inbound_caller_rewrite():
    assert trunks.inbound_caller(DIRECTORY.dids["4930111"], "017012345", "Customer") == ("0017012345#1", "Berlin Customer")
    assert trunks.inbound_caller(DIRECTORY.dids["4930111"], "017012345", None) == ("0017012345#1", "Berlin")
    assert trunks.inbound_caller(DIRECTORY.dids["4930222"], "017012345", "X") == ("017012345", "X")


def test_caller_id_random_among_those_the_trunk_carries():
    rng = random.Random(7)
    dids = trunks.trunk_dids(DIRECTORY, BERLIN.id)
    seen = Counter(identity.trunk_identity(ALICE, BERLIN, dids, False, None, rng).number for _ in range(400))
    assert set(seen) == {"4930111", "4930222"}       # never Hamburg's 4940333
    assert min(seen.values()) > 120                  # both used, roughly evenly


def test_caller_id_of_the_trunk_that_routes_the_call():
    dids = trunks.trunk_dids(DIRECTORY, HAMBURG.id)
    assert identity.trunk_identity(ALICE, HAMBURG, dids, False, None).number == "4940333"


def test_default_caller_ids():
    none = frozenset()
    assert identity.trunk_identity(BOB, SPARE, none, False, None).number == "4930999"      # subscriber default
    assert identity.trunk_identity(CAROL, HAMBURG, none, False, None).number == "4940000"  # trunk default
    assert identity.trunk_identity(CAROL, SPARE, none, False, None).number == "1003"       # the SIP number


def test_pai_only_toward_trusted_trunks():
    anon = identity.trunk_identity(ALICE, BERLIN, frozenset(), True, None)
    assert anon.anonymous and anon.assert_identity and not anon.preferred_identity
    hidden = identity.trunk_identity(CAROL, BERLIN, frozenset(), False, None)   # hide option + send_pai
    assert hidden.anonymous and hidden.assert_identity and hidden.preferred_identity
    untrusted = identity.trunk_identity(CAROL, HAMBURG, frozenset(), False, None)
    assert untrusted.anonymous and not untrusted.assert_identity and not untrusted.preferred_identity
    plain = identity.trunk_identity(ALICE, BERLIN, frozenset(), False, None)
    assert not plain.assert_identity


def test_identity_from_header():
    who = identity.Identity("4930111", "ACME", anonymous=True)
    assert (who.from_display, who.from_uri("example.org")) == ("Anonymous", "sip:anonymous@anonymous.invalid")
    who = identity.Identity("4930111", "ACME")
    assert (who.from_display, who.from_uri("example.org")) == ("ACME", "sip:4930111@example.org")


@pytest.mark.parametrize("dialled,number,anonymous", [
    ("4930123c2", "4930222", False), ("4930123c3h", "4940333", True), ("4930123hc1", "4930111", True),
])
def test_cn_and_h_on_trunk_calls(dialled, number, anonymous):
    plan = plan_call(dialled, DIRECTORY, 15, caller=ALICE)
    assert isinstance(plan, TrunkPlan) and plan.dialled == "4930123"
    assert {w.number for w in plan.identities.values()} == {number}
    assert all(w.anonymous is anonymous for w in plan.identities.values())


def test_cn_and_h_on_internal_calls():
    plan = plan_call("1002c2hT", DIRECTORY, 15, caller=ALICE, caller_display="Alice Desk")
    assert isinstance(plan, RingPlan) and plan.kind == "direct"
    assert plan.identity == identity.Identity("4930222", "Alice Desk", anonymous=True)
    assert plan_call("1002", DIRECTORY, 15, caller=ALICE).identity is None   # From goes through as sent


@pytest.mark.parametrize("caller,dialled,status,words", [
    (ALICE, "4930123c4", 403, "no caller ID c4"),
    (BOB, "1001c1", 403, "has none"),       # Bob has no caller-ID list
    (ALICE, "4930123T", 484, "suffix T"),
])
def test_identity_rejections(caller, dialled, status, words):
    plan = plan_call(dialled, DIRECTORY, 15, caller=caller)
    assert isinstance(plan, Reject) and plan.status == status and words in plan.reason


def test_trunk_calls_never_reach_other_trunks():
    assert plan_call("4930123", DIRECTORY, 15, caller=None) == Reject(404, "Not Found - unknown number")
    assert isinstance(plan_call("1001", DIRECTORY, 15, caller=None), RingPlan)


def test_no_route():
    d = Directory(subscribers=DIRECTORY.subscribers)
    plan = plan_call("4930123", d, 15, caller=ALICE)
    assert isinstance(plan, Reject) and plan.status == 404 and "no route" in plan.reason


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text("0123456789", max_size=4), st.sampled_from([1, 2, 3, 4]),
                          st.integers(0, 3)), max_size=8, unique_by=lambda r: (r[0], r[1])),
       st.text("0123456789", min_size=1, max_size=8))
def test_longest_prefix_first_property(routes, number):
    d = Directory(trunks=DIRECTORY.trunks, routes=tuple(TrunkRoute(*r) for r in routes))
    chosen = trunks.outbound_trunks(d, number)
    best = {}
    for prefix, trunk_id, _prio in routes:
        if number.startswith(prefix) and d.trunks[trunk_id].active:
            best[trunk_id] = max(best.get(trunk_id, -1), len(prefix))
    assert {t.id for t in chosen} == set(best)
    lengths = [best[t.id] for t in chosen]
    assert lengths == sorted(lengths, reverse=True)


# ---------------------------------------------------------------- supervisor listen-in (4#)

def _spy_directory():
    from kemi.directory import HuntGroup, HuntMember, Queue, QueueAgent
    subs = {n: Subscriber(n, "ha1") for n in ("2001", "2002", "2003", "2009")}
    return Directory(subscribers=subs, groups={1: HuntGroup(1, "sales")},
                     members={"2001": HuntMember("2001", 1)},
                     queues={"600": Queue(1, "support", "600", agents=(QueueAgent("2002"),))},
                     supervisors={"2009": frozenset({("hunt", "sales")})})


@pytest.mark.parametrize("caller,dialled,expected", [
    ("2009", "4#2001", "plan"),                      # supervises sales, 2001 is in sales
    ("2009", "4#2002", 403),                         # 2002 is only in queue support
    ("2003", "4#2001", 403),                         # not a supervisor at all
    ("2009", "4#2999", 404),
    ("2009", "5#2001", "whisper"), ("2009", "6#2001", "barge"),   # whisper and barge: same rule
    ("2003", "5#2001", 403), ("2003", "6#2001", 403), ("2009", "6#2002", 403), ("2009", "5#2999", 404),
])
def test_listen_in_authorisation(caller, dialled, expected):
    from kemi.routing import SpyPlan
    d = _spy_directory()
    plan = plan_call(dialled, d, 15, caller=d.subscribers[caller])
    if expected == "plan":
        assert plan == SpyPlan("2001")
    elif expected in ("whisper", "barge"):
        assert plan == SpyPlan("2001", expected)
    else:
        assert isinstance(plan, Reject) and plan.status == expected, plan
