"""provision/hunt_table.py: the seed's four-column hunt-group table."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provision.demo import EXAMPLE_1
from provision.hunt_table import HEADER, HuntRow, TableError, format_rows, parse

FAST = settings(max_examples=200, deadline=None)


def rows_of(text):
    return [(r.sip_number, r.next_number, r.service_number, r.start_number) for r in parse(text)]


def test_example_1():
    assert parse(EXAMPLE_1) == [
        HuntRow(2, "77721401", "77721402", "8008001", "77721401"),
        HuntRow(3, "77721402", "77721403", None, None),
        HuntRow(4, "77721403", "77721404", "8008002", "77721401"),
        HuntRow(5, "77721404", "77721405", None, None),
        HuntRow(6, "77721405", "77721406", "8008003", "77721403"),
        HuntRow(7, "11121400", None, None, None),
    ]


PARSED = [
    # text, expected (sip, next, service, start) rows
    ("1001\t1002\t1\t1\n", [("1001", "1002", None, None)]),
    ("1001,1002,1,1\n", [("1001", "1002", None, None)]),
    ("1001,0000,1,1", [("1001", None, None, None)]),
    ("1001,00000,1,1", [("1001", None, None, None)]),
    ("1001,000,1,1", [("1001", "000", None, None)]),                     # only 0000/00000 end a chain
    ("1001,1002,800,1001", [("1001", "1002", "800", "1001")]),
    ("1001,1002,,", [("1001", "1002", None, None)]),                     # empty cells are empty too
    ("1001, 1002 , 800 ,1001 ", [("1001", "1002", "800", "1001")]),
    ("Sip number,Next Number,Service number,Start number\n1001,0000,1,1", [("1001", None, None, None)]),
    ("Sip number\tNext Number\tService number\tStart number\n1001\t0000\t1\t1", [("1001", None, None, None)]),
    ("sip,next\n1001,0000,1,1", [("1001", None, None, None)]),           # header field count not checked
    ("\n\n# comment\n  \n1001,1002,1,1\n# another\n\n1002,0000,1,1\n",
     [("1001", "1002", None, None), ("1002", None, None, None)]),
    ("1001,1002,1,1\r\n1002,0000,1,1\r\n", [("1001", "1002", None, None), ("1002", None, None, None)]),
    ("", []),
    ("# only a comment\n", []),
    ("Sip number,Next Number,Service number,Start number\n", []),
]


@pytest.mark.parametrize("text,expected", PARSED, ids=[repr(t[:30]) for t, _ in PARSED])
def test_parse(text, expected):
    assert rows_of(text) == expected


def test_line_numbers_count_every_physical_line():
    rows = parse("# c\nSip number,Next Number,Service number,Start number\n\n1001,1002,1,1\n\n1002,0000,1,1\n")
    assert [r.line for r in rows] == [4, 6]


ERRORS = [
    # text, line, field, words in rule
    ("1001,1002,1", 1, None, "found 3"),
    ("1001,1002,1,1,1", 1, None, "found 5"),
    ("1001", 1, None, "found 1"),
    ("1001\t1002\t1", 1, None, "found 3"),
    ("1001,0000,1,1\n1002,0000\t1,1", 2, None, "found 2"),           # a TAB wins over commas
    ("1001,0000,1,1\n1002,0000", 2, None, "found 2"),
    ("1001,0000,1,1\nabc,0000,1,1", 2, "Sip number", "'abc' is not a number"),
    ("1001,10x2,1,1", 1, "Next Number", "'10x2' is not a number"),
    ("1001,0000,800a,1", 1, "Service number", "'800a' is not a number"),
    ("1001,0000,800,I", 1, "Start number", "'I' is not a number"),     # the seed's typo in Example 1
    ("1001,+1002,1,1", 1, "Next Number", "not a number"),
    ("1001,-1,1,1", 1, "Next Number", "not a number"),
    ("1001,0000,1,1\n1,0000,1,1", 2, "Sip number", "needs a SIP number"),
    ("1001,0000,1,1\n,0000,1,1", 2, "Sip number", "needs a SIP number"),
    ("1001,1,1,1", 1, "Next Number", "0000"),
    ("1001,,1,1", 1, "Next Number", "needs a next number"),
    ("Sip number,Next Number,Service number,Start number\n1001,1002,1,1\n1002,1003,1", 3, None, "found 3"),
]


@pytest.mark.parametrize("text,line,field,words", ERRORS, ids=[repr(e[0]) for e in ERRORS])
def test_errors(text, line, field, words):
    with pytest.raises(TableError) as info:
        parse(text)
    err = info.value
    assert (err.line, err.field) == (line, field)
    assert words.lower() in err.rule.lower()
    assert str(err).startswith(f"line {line}" + (f", field '{field}'" if field else "") + ": ")


def test_table_error_is_a_value_error():
    assert issubclass(TableError, ValueError)


def test_only_the_first_row_can_be_a_header():
    with pytest.raises(TableError) as info:
        parse("Sip number,Next Number,Service number,Start number\n7772140l,0000,1,1\n77721402,0000,1,1\n")
    assert (info.value.line, info.value.field) == (2, "Sip number")


def test_tab_row_with_empty_trailing_cells():
    assert rows_of("1001\t0000\t\t\n") == rows_of("1001,0000,,\n") == [("1001", None, None, None)]


@pytest.mark.parametrize("number", ["7772140\u0661", "1001\u00b2"])
def test_non_ascii_digits_are_rejected(number):
    with pytest.raises(TableError):
        parse(f"{number},0000,1,1\n")


# ---------------------------------------------------------------- format_rows

def test_format_rows():
    text = format_rows([("1001", "1002", "800", "1001"), ("1002", None, None, None)])
    assert text == ("Sip number\tNext Number\tService number\tStart number\n"
                    "1001\t1002\t800\t1001\n"
                    "1002\t0000\t1\t1\n")
    assert text.splitlines()[0].split("\t") == list(HEADER)


def test_format_rows_commas():
    assert format_rows([("1001", None, None, None)], sep=",") == \
        "Sip number,Next Number,Service number,Start number\n1001,0000,1,1\n"


def test_format_example_1_round_trip():
    assert format_rows(rows_of(EXAMPLE_1)) == EXAMPLE_1.replace("00000", "0000")


digits = st.text(alphabet="0123456789", min_size=1, max_size=12).filter(lambda s: s != "1")
next_numbers = st.none() | digits.filter(lambda s: s not in ("0000", "00000"))


@st.composite
def table_rows(draw):
    sip = draw(digits)
    nxt = draw(next_numbers)
    if draw(st.booleans()):
        return sip, nxt, draw(digits), draw(digits)
    return sip, nxt, None, None


@FAST
@given(st.lists(table_rows(), max_size=8), st.sampled_from(["\t", ","]))
def test_format_parse_round_trip(rows, sep):
    parsed = parse(format_rows(rows, sep=sep))
    assert [(r.sip_number, r.next_number, r.service_number, r.start_number) for r in parsed] == rows
    assert [r.line for r in parsed] == list(range(2, len(rows) + 2))


@FAST
@given(st.text(alphabet="0123456789,\t\n #abc1", max_size=60))
def test_parse_raises_only_table_error(text):
    try:
        rows = parse(text)
    except TableError as err:
        assert err.line >= 1
        return
    for r in rows:
        assert r.sip_number.isdigit() and r.sip_number != "1"
        assert r.next_number is None or (r.next_number.isdigit() and r.next_number != "1")
