"""provision/validate.py: one hunt group's table against what is already provisioned."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi.directory import Directory, HuntGroup, HuntMember, ServiceNumber, Subscriber
from kemi.hunt import MAX_STEPS
from provision.demo import EXAMPLE_1, NUMBERS
from provision.hunt_table import format_rows, parse
from provision.validate import validate_group

FAST = settings(max_examples=100, deadline=None)
GROUP = 1

ACTIVE = ["1001", "1002", "1003", "1004", "2001", "2002"]
INACTIVE = ["1900"]


def base(*, other_next_2002=None, own_old=False) -> Directory:
    """Subscribers 100x and 200x (active), 1900 (inactive); group 2 'other' = 2001 -> 2002
    with service 8002. With own_old, group 1 'mine' already holds 1001 -> 1002 -> 1001 (an
    old loop that an import replaces) and service 8001."""
    subs = {n: Subscriber(n, "ha1") for n in ACTIVE}
    subs.update({n: Subscriber(n, "ha1", active=False) for n in INACTIVE})
    groups = {1: HuntGroup(1, "mine"), 2: HuntGroup(2, "other")}
    members = {"2001": HuntMember("2001", 2, "2002"), "2002": HuntMember("2002", 2, other_next_2002)}
    services = {"8002": ServiceNumber("8002", 2, "2001")}
    if own_old:
        members.update({"1001": HuntMember("1001", 1, "1002"), "1002": HuntMember("1002", 1, "1001")})
        services["8001"] = ServiceNumber("8001", 1, "1001")
    return Directory(subs, groups, members, services)


def check(text: str, directory: Directory | None = None, group_id: int = GROUP) -> list[str]:
    return validate_group(parse(text), group_id, directory or base())


VALID = [
    "1001,0000,1,1",
    "1001,0000,8001,1001",
    "1001,1002,8001,1001\n1002,0000,1,1",
    "1001,1002,8001,1001\n1002,1003,8003,1001\n1003,0000,8004,1003",   # two services, same start
    "1001,1003,1,1",                     # next number: a plain subscriber outside the table
    "1001,2001,1,1",                     # next number: a member of another group (chains cross groups)
    "1001,1002,8001,1002\n1002,00000,1,1",
    "1001,1002,8001,1001\n1002,0000,8003,1002",   # services == SIP numbers is allowed
]


@pytest.mark.parametrize("text", VALID)
def test_valid(text):
    assert check(text) == []


# text, [(line, field, words)] -- the complete list of expected errors, in order
INVALID = [
    # next number
    ("1001,1999,1,1", [(1, "Next Number", "1999 is not an existing active SIP number")]),
    ("1001,1900,1,1", [(1, "Next Number", "1900 is not an existing active SIP number")]),
    ("1001,1001,1,1", [(1, "Next Number", "cannot be its own next number")]),
    # SIP number
    ("1999,0000,1,1", [(1, "Sip number", "1999 is not an existing active SIP number")]),
    ("1900,0000,1,1", [(1, "Sip number", "1900 is not an existing active SIP number")]),
    ("2001,0000,1,1", [(1, "Sip number", "already a member of group 'other'")]),
    ("1001,0000,1,1\n1001,1002,1,1", [(2, "Sip number", "1001 appears twice")]),
    # service / start numbers
    ("1001,0000,1002,1001", [(1, "Service number", "1002 is a SIP number")]),
    ("1001,0000,1001,1001", [(1, "Service number", "1001 is a SIP number")]),
    ("1001,0000,1900,1001", [(1, "Service number", "1900 is a SIP number")]),     # inactive subscriber too
    ("1001,0000,8001,1", [(1, "Start number", "service number 8001 needs a start number")]),
    ("1001,0000,1,1001", [(1, "Service number", "start number 1001 is given without a service number")]),
    ("1001,0000,8002,1001", [(1, "Service number", "8002 already belongs to group 'other'")]),
    ("1001,1002,8001,1001\n1002,0000,8001,1002", [(2, "Service number", "8001 appears twice")]),
    ("1001,0000,8001,1003", [(1, "Start number", "1003 is not a SIP number of this group")]),
    ("1001,0000,8001,2001", [(1, "Start number", "2001 is not a SIP number of this group")]),
    ("1001,0000,8001,1999", [(1, "Start number", "1999 is not a SIP number of this group")]),
    ("1900,0000,8001,1900", [(1, "Sip number", "1900 is not an existing active SIP number"),
                             (1, "Start number", "1900 is not active")]),
    # loops (checked once the rows are otherwise clean)
    ("1001,1002,1,1\n1002,1001,1,1", [(1, "Next Number", "loops back on itself: 1001 -> 1002 -> 1001")]),
    ("1002,1001,1,1\n1001,1002,1,1", [(1, "Next Number", "loops back on itself: 1002 -> 1001 -> 1002")]),
    ("1001,1002,1,1\n1002,1003,1,1\n1003,1002,1,1",
     [(1, "Next Number", "loops back on itself: 1002 -> 1003 -> 1002")]),
    ("1001,1002,1,1\n1002,1003,1,1\n1003,1001,8001,1001\n1004,0000,1,1",
     [(1, "Next Number", "loops back on itself: 1001 -> 1002 -> 1003 -> 1001")]),
    ("1001,1002,1,1\n1002,1001,1,1\n1003,1004,1,1\n1004,1003,1,1",
     [(1, "Next Number", "1001 -> 1002 -> 1001"), (3, "Next Number", "1003 -> 1004 -> 1003")]),
]


@pytest.mark.parametrize("text,expected", INVALID, ids=[t.replace("\n", "|") for t, _ in INVALID])
def test_invalid(text, expected):
    errors = check(text)
    assert len(errors) == len(expected), errors
    for error, (line, field, words) in zip(errors, expected):
        assert error.startswith(f"line {line}, field '{field}': "), error
        assert words in error


def test_every_problem_is_reported_at_once():
    errors = check("1999,1001,8002,1001\n1001,1900,1,1004\n1001,0000,1002,1001")
    assert errors == [
        "line 1, field 'Sip number': 1999 is not an existing active SIP number (add it with 'kemictl subscriber add')",
        "line 1, field 'Service number': 8002 already belongs to group 'other'",
        "line 2, field 'Next Number': 1900 is not an existing active SIP number "
        "(a next number must be an active SIP number or 0000)",
        "line 2, field 'Service number': start number 1004 is given without a service number",
        "line 3, field 'Sip number': 1001 appears twice; a SIP number has one next number",
        "line 3, field 'Service number': 1002 is a SIP number; a service number must differ from every SIP number",
    ]


def test_loops_are_only_checked_on_otherwise_clean_tables():
    assert check("1001,1002,1,1\n1002,1001,1,1\n1999,0000,1,1") == [
        "line 3, field 'Sip number': 1999 is not an existing active SIP number (add it with 'kemictl subscriber add')"]


def test_more_service_numbers_than_sip_numbers():
    errors = check("1001,0000,8001,1001\n1001,0000,8003,1001")
    assert errors[0].startswith("line 2, field 'Sip number': 1001 appears twice")
    assert errors[-1] == ("the group has 2 service numbers but only 1 SIP numbers; "
                          "a group may not have more service numbers than SIP numbers")


def test_as_many_service_numbers_as_sip_numbers_is_allowed():
    assert check("1001,1002,8001,1001\n1002,0000,8003,1001") == []


def test_no_rows():
    assert validate_group([], GROUP, base()) == ["the table has no rows: a group needs at least one SIP number"]


def test_loop_through_another_group():
    d = base(other_next_2002="1001")
    assert check("1001,2001,1,1", d) == [
        "line 1, field 'Next Number': the chain loops back on itself: 1001 -> 2001 -> 2002 -> 1001"]


def test_chain_longer_than_max_steps():
    names = [str(5000 + n) for n in range(MAX_STEPS + 1)]
    d = Directory({n: Subscriber(n, "x") for n in names}, {1: HuntGroup(1, "long")})
    rows = list(zip(names, names[1:] + [None], [None] * len(names), [None] * len(names)))
    errors = validate_group(parse(format_rows(rows)), 1, d)
    assert errors[0] == (f"line 2, field 'Next Number': the chain from {names[0]} has {MAX_STEPS + 1} steps; "
                         f"at most {MAX_STEPS} are allowed")
    assert len(errors) == 1          # only the first row's chain is too long
    assert validate_group(parse(format_rows(rows[1:])), 1, d) == []


# ---------------------------------------------------------------- re-import

def test_reimporting_the_same_group_is_allowed():
    d = base(own_old=True)
    # same members, same service, and the old link 1002 -> 1001 is replaced, not merged
    assert check("1001,1002,8001,1001\n1002,0000,1,1", d, group_id=1) == []


def test_importing_someone_elses_numbers_under_a_new_group_is_not():
    d = base(own_old=True)
    errors = check("1001,1002,8001,1001\n1002,0000,1,1", d, group_id=2)
    assert errors == [
        "line 1, field 'Sip number': 1001 is already a member of group 'mine'; a SIP number belongs to one group",
        "line 1, field 'Service number': 8001 already belongs to group 'mine'",
        "line 2, field 'Sip number': 1002 is already a member of group 'mine'; a SIP number belongs to one group",
    ]


def test_reimport_may_drop_old_members():
    d = base(own_old=True)
    assert check("1003,0000,8001,1003", d) == []


# ---------------------------------------------------------------- the seed's examples

SEED_NUMBERS = ["77721401", "77721402", "77721403", "77721404", "77721405", "77721406", "11121400"]

EXAMPLE_2 = """\
Sip number\tNext Number\tService number\tStart number
77721401\t77721402\t8008001\t77721401
77721402\t77721403\t1\t1
77721403\t77721404\t8008002\t77721401
77721404\t77721405\t1\t1
77721405\t77721406\t1\t1
77721406\t00000\t1\t1
"""

# As printed in seed 000, row 77721403 carries a start number (77721401) but no service number.
EXAMPLE_3_AS_PRINTED = """\
Sip number\tNext Number\tService number\tStart number
77721401\t77721402\t8008001\t77721401
77721402\t77721403\t1\t1
77721403\t77721404\t1\t77721401
77721404\t77721405\t1\t1
77721405\t77721406\t1\t1
77721406\t00000\t1\t1
"""
EXAMPLE_3 = EXAMPLE_3_AS_PRINTED.replace("77721403\t77721404\t1\t77721401", "77721403\t77721404\t1\t1")

EXAMPLE_4 = """\
Sip number\tNext Number\tService number\tStart number
77721401\t0000\t8008001\t77721401
"""


def seed_directory() -> Directory:
    return Directory({n: Subscriber(n, "ha1") for n in SEED_NUMBERS})


def test_demo_numbers_are_the_seed_numbers():
    assert sorted(NUMBERS) == sorted(SEED_NUMBERS)


@pytest.mark.parametrize("text,rows,services", [(EXAMPLE_1, 6, 3), (EXAMPLE_2, 6, 2), (EXAMPLE_3, 6, 1),
                                                (EXAMPLE_4, 1, 1)],
                         ids=["example1", "example2", "example3", "example4"])
def test_seed_examples_validate(text, rows, services):
    parsed = parse(text)
    assert len(parsed) == rows
    assert sum(r.service_number is not None for r in parsed) == services
    assert validate_group(parsed, 1, seed_directory()) == []


def test_example_1_ends_at_a_plain_subscriber():
    """77721405 -> 77721406: 77721406 is a subscriber but no SIP number of the table."""
    d = Directory({n: Subscriber(n, "ha1") for n in SEED_NUMBERS if n != "77721406"})
    assert validate_group(parse(EXAMPLE_1), 1, d) == [
        "line 6, field 'Next Number': 77721406 is not an existing active SIP number "
        "(a next number must be an active SIP number or 0000)"]


def test_example_1_needs_its_subscribers():
    errors = validate_group(parse(EXAMPLE_1), 1, Directory())
    assert len(errors) == 6 + 5 + 3    # every SIP number, every next number, every start number
    assert all(re.match(r"line \d+, field '[A-Za-z ]+': ", e) for e in errors)


def test_example_1_reimport():
    rows = parse(EXAMPLE_1)
    d = Directory(seed_directory().subscribers, {1: HuntGroup(1, "example1")},
                  {r.sip_number: HuntMember(r.sip_number, 1, r.next_number) for r in rows},
                  {r.service_number: ServiceNumber(r.service_number, 1, r.start_number)
                   for r in rows if r.service_number})
    assert validate_group(rows, 1, d) == []


def test_seed_example_3_as_printed_is_rejected_as_a_typo():
    # The seed prints a start number (77721401) on 77721403's row without a service
    # number; a start number without a service number means nothing, so it is refused.
    errors = validate_group(parse(EXAMPLE_3_AS_PRINTED), 1, seed_directory())
    assert len(errors) == 1 and "field 'Service number'" in errors[0] and "without a service number" in errors[0]


# ---------------------------------------------------------------- properties

@st.composite
def link_tables(draw):
    pool = [str(3000 + n) for n in range(draw(st.integers(1, 8)))]
    sips = draw(st.lists(st.sampled_from(pool), unique=True, min_size=1))
    rows = [(s, draw(st.none() | st.sampled_from([p for p in pool if p != s] or [None])), None, None)
            for s in sips]
    return pool, rows


@FAST
@given(link_tables())
def test_a_table_is_rejected_exactly_when_a_chain_loops(case):
    pool, rows = case
    d = Directory({n: Subscriber(n, "x") for n in pool}, {1: HuntGroup(1, "g")})
    links = {s: n for s, n, _, _ in rows}

    def loops(start):
        seen, n = set(), start
        while n is not None:
            if n in seen:
                return True
            seen.add(n)
            n = links.get(n)
        return False

    errors = validate_group(parse(format_rows(rows)), 1, d)
    assert bool(errors) == any(loops(s) for s in links)
    assert all("loops back on itself" in e for e in errors)
    for e in errors:
        cycle = e.split(": ")[-1].split(" -> ")
        assert cycle[0] == cycle[-1] and len(set(cycle)) == len(cycle) - 1
        assert all(links[a] == b for a, b in zip(cycle, cycle[1:]))
