"""kemi/hunt.py: hunt chains, ring timeouts and when a hunt goes on."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi import hunt
from kemi.directory import Directory, HuntGroup, HuntMember, Subscriber
from kemi.hunt import MAX_STEPS, Step, chain_numbers, exhausted_reply, hunt_on_after, hunt_steps, ring_timeout

FAST = settings(max_examples=200, deadline=None)


def directory(links: dict[str, str | None], *, inactive=(), plain=(), group_timeout=None,
              member_timeouts=None, group_id=1) -> Directory:
    """Members given as {number: next number or None}; every member and every extra `plain`
    number is a subscriber, active unless listed in `inactive`."""
    member_timeouts = member_timeouts or {}
    numbers = set(links) | set(plain)
    return Directory(
        subscribers={n: Subscriber(n, "ha1", active=n not in inactive) for n in numbers},
        groups={group_id: HuntGroup(group_id, "g", group_timeout)},
        members={n: HuntMember(n, group_id, nxt, member_timeouts.get(n)) for n, nxt in links.items()},
    )


EXAMPLE_1 = directory(
    {"77721401": "77721402", "77721402": "77721403", "77721403": "77721404",
     "77721404": "77721405", "77721405": "77721406", "11121400": None},
    plain=["77721406"])

# ---------------------------------------------------------------- chain_numbers

CHAINS = [
    # links, start, expected order, expected loop
    ({}, "5", ["5"], None),
    ({"a": None}, "a", ["a"], None),
    ({"a": "b", "b": None}, "a", ["a", "b"], None),
    ({"a": "b", "b": "c", "c": None}, "b", ["b", "c"], None),
    ({"a": "x"}, "a", ["a", "x"], None),                          # x: no member, chain ends there
    ({"a": "a"}, "a", ["a"], ["a", "a"]),
    ({"a": "b", "b": "a"}, "a", ["a", "b"], ["a", "b", "a"]),
    ({"a": "b", "b": "a"}, "b", ["b", "a"], ["b", "a", "b"]),
    ({"a": "b", "b": "c", "c": "b"}, "a", ["a", "b", "c"], ["b", "c", "b"]),
    ({"a": "b", "b": "c", "c": "d", "d": "b"}, "a", ["a", "b", "c", "d"], ["b", "c", "d", "b"]),
]


@pytest.mark.parametrize("links,start,order,loop", CHAINS)
def test_chain_numbers(links, start, order, loop):
    assert chain_numbers(directory(links), start) == (order, loop)


def test_chain_numbers_example_1():
    assert chain_numbers(EXAMPLE_1, "77721401") == (
        ["77721401", "77721402", "77721403", "77721404", "77721405", "77721406"], None)
    assert chain_numbers(EXAMPLE_1, "77721403") == (["77721403", "77721404", "77721405", "77721406"], None)
    assert chain_numbers(EXAMPLE_1, "11121400") == (["11121400"], None)


@st.composite
def link_maps(draw):
    pool = [str(n) for n in range(draw(st.integers(1, 12)))]
    members = draw(st.lists(st.sampled_from(pool), unique=True, min_size=0, max_size=len(pool)))
    links = {m: draw(st.none() | st.sampled_from(pool)) for m in members}
    return links, draw(st.sampled_from(pool))


@FAST
@given(link_maps())
def test_chain_numbers_property(case):
    links, start = case
    order, loop = chain_numbers(directory(links), start)

    # reference walk, bounded by the number of distinct numbers
    walk, number = [], start
    for _ in range(len(links) + 2):
        walk.append(number)
        if number not in links or links[number] is None:
            break
        number = links[number]
    revisits = len(walk) != len(set(walk))

    assert order[0] == start
    assert len(order) == len(set(order)), "a number is visited twice"
    for a, b in zip(order, order[1:]):
        assert links[a] == b, "order follows next numbers"
    assert (loop is not None) == revisits
    if loop is None:
        assert order == walk
        last = order[-1]
        assert last not in links or links[last] is None
    else:
        assert loop[0] == loop[-1] == links[order[-1]]
        assert order[-len(loop) + 1:] == loop[:-1]
        assert len(set(loop)) == len(loop) - 1


# ---------------------------------------------------------------- ring_timeout

TIMEOUTS = [
    # member timeout, group timeout, expected (default 30)
    (None, None, 30),
    (None, 20, 20),
    (15, None, 15),
    (15, 20, 15),
    (0, 20, 20),        # 0 means "not set"
    (None, 0, 30),
]


@pytest.mark.parametrize("member,group,expected", TIMEOUTS)
def test_ring_timeout_precedence(member, group, expected):
    d = directory({"a": None}, group_timeout=group, member_timeouts={"a": member})
    assert ring_timeout(d, "a", 30) == expected


def test_ring_timeout_non_member_uses_default():
    d = directory({"a": None}, plain=["p"], group_timeout=20, member_timeouts={"a": 15})
    assert ring_timeout(d, "p", 30) == 30
    assert ring_timeout(d, "unknown", 25) == 25


def test_ring_timeout_member_of_missing_group_uses_default():
    d = Directory(members={"a": HuntMember("a", 99)})
    assert ring_timeout(d, "a", 30) == 30


# ---------------------------------------------------------------- hunt_steps

def numbers(steps):
    return [s.number for s in steps]


def test_hunt_steps_example_1():
    assert numbers(hunt_steps(EXAMPLE_1, "77721401", 30)) == [
        "77721401", "77721402", "77721403", "77721404", "77721405", "77721406"]
    assert numbers(hunt_steps(EXAMPLE_1, "77721403", 30)) == ["77721403", "77721404", "77721405", "77721406"]


def test_hunt_steps_carry_timeouts():
    d = directory({"a": "b", "b": "c", "c": None}, plain=["p"], group_timeout=20, member_timeouts={"b": 10})
    assert hunt_steps(d, "a", 30) == [Step("a", 20), Step("b", 10), Step("c", 20)]
    assert hunt_steps(d, "p", 30) == [Step("p", 30)]


STEPS = [
    # links, inactive, start, ring_only, expected numbers
    ({"a": "b", "b": "c", "c": None}, (), "a", False, ["a", "b", "c"]),
    ({"a": "b", "b": "c", "c": None}, ("b",), "a", False, ["a", "c"]),
    ({"a": "b", "b": "c", "c": None}, ("a",), "a", False, ["b", "c"]),
    ({"a": "b", "b": "c", "c": None}, ("a", "b", "c"), "a", False, []),
    ({"a": "b", "b": "c", "c": None}, (), "a", True, ["a"]),
    ({"a": "b", "b": "c", "c": None}, (), "b", True, ["b"]),
    ({"a": "b", "b": "c", "c": None}, ("a",), "a", True, []),
    ({"a": "b", "b": "a"}, (), "a", False, ["a", "b"]),                 # loop cut
    ({"a": "b", "b": "c", "c": "b"}, (), "a", False, ["a", "b", "c"]),
    ({"a": "gone"}, (), "a", False, ["a"]),                            # unknown next number
    ({}, (), "nobody", False, []),
]


@pytest.mark.parametrize("links,inactive,start,ring_only,expected", STEPS)
def test_hunt_steps(links, inactive, start, ring_only, expected):
    d = directory(links, inactive=inactive)
    assert numbers(hunt_steps(d, start, 30, ring_only=ring_only)) == expected


def long_chain(length: int) -> dict[str, str | None]:
    names = [f"{n:03d}" for n in range(length)]
    return {a: b for a, b in zip(names, names[1:] + [None])}


@pytest.mark.parametrize("length,expected", [(1, 1), (MAX_STEPS - 1, MAX_STEPS - 1), (MAX_STEPS, MAX_STEPS),
                                             (MAX_STEPS + 1, MAX_STEPS), (3 * MAX_STEPS, MAX_STEPS)])
def test_hunt_steps_are_capped(length, expected):
    steps = hunt_steps(directory(long_chain(length)), "000", 30)
    assert len(steps) == expected
    assert numbers(steps) == [f"{n:03d}" for n in range(expected)]


def test_max_steps_fits_q_values():
    assert hunt.MAX_STEPS <= 100


@FAST
@given(link_maps(), st.data())
def test_hunt_steps_property(case, data):
    links, start = case
    inactive = data.draw(st.sets(st.sampled_from(sorted(links) or ["-"])))
    d = directory(links, inactive=inactive)
    steps = hunt_steps(d, start, 30)
    order, _ = chain_numbers(d, start)
    assert numbers(steps) == [n for n in order if d.active_subscriber(n)]
    assert len(steps) <= MAX_STEPS


# ---------------------------------------------------------------- after a step

CODES = [408, 480, 486, 487, 500, 503, 600, 603, 404]


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("hunt_on_decline", [True, False])
def test_hunt_on_after(code, hunt_on_decline):
    expected = not (code == 603 and not hunt_on_decline)
    assert hunt_on_after(code, hunt_on_decline) is expected


def test_only_603_without_hunt_on_decline_stops():
    assert hunt_on_after(603, False) is False
    assert hunt_on_after(603, True) is True
    assert all(hunt_on_after(c, False) for c in range(300, 700) if c != 603)


@pytest.mark.parametrize("any_busy,status", [(True, 486), (False, 480)])
def test_exhausted_reply(any_busy, status):
    code, reason = exhausted_reply(any_busy)
    assert code == status
    assert reason.startswith({486: "Busy Here", 480: "Temporarily Unavailable"}[status])


def test_busy_codes():
    assert hunt.BUSY_CODES == {486, 600}
