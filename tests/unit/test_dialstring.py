"""kemi/dialstring.py: the dial-string grammar `[spy "#"] number *suffix`."""
from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kemi.dialstring import MAX_DIGITS, SPY_MODES, Dial, DialError, parse

FAST = settings(max_examples=200, deadline=None)

ACCEPTED = [
    # raw, expected Dial
    ("0", Dial("0")),
    ("77721401", Dial("77721401")),
    ("007", Dial("007")),
    ("9" * MAX_DIGITS, Dial("9" * MAX_DIGITS)),
    ("77721401T", Dial("77721401", ring_only=True)),
    ("77721401h", Dial("77721401", anonymous=True)),
    ("77721401c1", Dial("77721401", caller_id_index=1)),
    ("77721401c9", Dial("77721401", caller_id_index=9)),
    ("77721401c10", Dial("77721401", caller_id_index=10)),
    ("77721401c99", Dial("77721401", caller_id_index=99)),
    ("77721401Th", Dial("77721401", ring_only=True, anonymous=True)),
    ("77721401hT", Dial("77721401", ring_only=True, anonymous=True)),
    ("77721401c5hT", Dial("77721401", True, True, 5)),
    ("77721401Tc5h", Dial("77721401", True, True, 5)),
    ("77721401hc42T", Dial("77721401", True, True, 42)),
    ("77721401Thc7", Dial("77721401", True, True, 7)),
    ("4#77721401", Dial("77721401", spy="listen")),
    ("5#77721401", Dial("77721401", spy="whisper")),
    ("6#77721401", Dial("77721401", spy="barge")),
    ("6#0", Dial("0", spy="barge")),
    # URL-encoded '#' (phones send %23 in the Request-URI user part)
    ("4%23777", Dial("777", spy="listen")),
    ("5%2377721401", Dial("77721401", spy="whisper")),
    ("6%23123", Dial("123", spy="barge")),
    # any percent-encoding is decoded once
    ("123%54", Dial("123", ring_only=True)),
    ("%31%32%33", Dial("123")),
]


@pytest.mark.parametrize("raw,expected", ACCEPTED, ids=[a for a, _ in ACCEPTED])
def test_accepted(raw, expected):
    assert parse(raw) == expected


@pytest.mark.parametrize("raw,expected", ACCEPTED, ids=[a for a, _ in ACCEPTED])
def test_accepted_canonical_form_reparses(raw, expected):
    assert parse(str(parse(raw))) == expected


REJECTED = [
    # raw, words the reason must contain (case-insensitive)
    ("", "no number"),
    (None, "no number"),
    ("T", "start with a digit"),
    ("h123", "start with a digit"),
    ("c1", "start with a digit"),
    ("#123", "start with a digit"),
    ("+4930123", "start with a digit"),
    (" 123", "start with a digit"),
    ("%23123", "start with a digit"),
    ("4#", "start with a digit"),
    ("4%23", "start with a digit"),
    ("1#123", "unknown service code 1#"),
    ("7#123", "unknown service code 7#"),
    ("0#123", "unknown service code 0#"),
    ("##123", "unknown service code ##"),
    ("9" * (MAX_DIGITS + 1), f"longer than {MAX_DIGITS}"),
    ("4#" + "9" * (MAX_DIGITS + 1), f"longer than {MAX_DIGITS}"),
    ("123TT", "T given twice"),
    ("123ThT", "T given twice"),
    ("123hh", "h given twice"),
    ("123hTh", "h given twice"),
    ("123c1c2", "more than one cN"),
    ("123c1c1", "more than one cN"),
    ("123c1Tc2", "more than one cN"),
    ("123c0", "unknown suffix"),
    ("123c01", "unknown suffix"),
    ("123c100", "unknown suffix"),
    ("123c", "unknown suffix"),
    ("123cc1", "unknown suffix"),
    ("123C1", "unknown suffix"),
    ("123t", "unknown suffix"),
    ("123H", "unknown suffix"),
    ("12h3", "unknown suffix"),
    ("12T3", "unknown suffix"),
    ("123c1T5", "unknown suffix"),
    ("123x", "unknown suffix"),
    ("123 ", "unknown suffix"),
    ("123#", "unknown suffix"),
    ("44#123", "unknown suffix"),
    ("4#5#123", "unknown suffix"),
    ("123%2523", "unknown suffix"),     # decoded once only: '%23' stays literal
    ("123\u0661", "unknown suffix"),     # non-ASCII digit
    ("\u0661\u0662\u0663", "start with a digit"),
    ("%D9%A1", "start with a digit"),    # same digit, percent-encoded UTF-8
    ("4#123T", "spy code takes a bare"),
    ("5#123h", "spy code takes a bare"),
    ("6#123c1", "spy code takes a bare"),
    ("4%23123Th", "spy code takes a bare"),
]


@pytest.mark.parametrize("raw,words", REJECTED, ids=[repr(r) for r, _ in REJECTED])
def test_rejected(raw, words):
    with pytest.raises(DialError) as info:
        parse(raw)
    err = info.value
    assert err.status == 484
    assert err.reason.startswith("Address Incomplete")
    assert words.lower() in err.reason.lower()
    assert str(err) == f"484 {err.reason}"


def test_dial_error_is_a_value_error():
    assert issubclass(DialError, ValueError)


CANONICAL = [
    (Dial("1"), "1"),
    (Dial("123", ring_only=True), "123T"),
    (Dial("123", anonymous=True), "123h"),
    (Dial("123", caller_id_index=12), "123c12"),
    (Dial("123", True, True, 3), "123c3hT"),
    (Dial("123", spy="listen"), "4#123"),
    (Dial("123", spy="whisper"), "5#123"),
    (Dial("123", spy="barge"), "6#123"),
]


@pytest.mark.parametrize("dial,text", CANONICAL, ids=[t for _, t in CANONICAL])
def test_str_is_canonical(dial, text):
    assert str(dial) == text
    assert parse(text) == dial


# ---------------------------------------------------------------- properties

numbers = st.text(alphabet="0123456789", min_size=1, max_size=MAX_DIGITS)


@st.composite
def valid_dials(draw):
    number = draw(numbers)
    if draw(st.booleans()):
        return Dial(number, spy=draw(st.sampled_from(sorted(SPY_MODES.values()))))
    return Dial(number,
                ring_only=draw(st.booleans()),
                anonymous=draw(st.booleans()),
                caller_id_index=draw(st.none() | st.integers(1, 99)))


@FAST
@given(valid_dials())
def test_round_trip(dial):
    assert parse(str(dial)) == dial


@st.composite
def valid_dials_any_order(draw):
    """Suffixes in any order and '#' possibly URL-encoded: still the same Dial."""
    dial = draw(valid_dials())
    if dial.spy:
        code = {v: k for k, v in SPY_MODES.items()}[dial.spy]
        return code + draw(st.sampled_from(["#", "%23"])) + dial.number, dial
    suffixes = []
    if dial.ring_only:
        suffixes.append("T")
    if dial.anonymous:
        suffixes.append("h")
    if dial.caller_id_index is not None:
        suffixes.append(f"c{dial.caller_id_index}")
    return dial.number + "".join(draw(st.permutations(suffixes))), dial


@FAST
@given(valid_dials_any_order())
def test_suffix_order_does_not_matter(case):
    raw, dial = case
    assert parse(raw) == dial


grammar_chars = st.text(alphabet="0123456789Thc#%23456789TtHhCc", max_size=12)


@FAST
@given(st.one_of(st.text(max_size=40), grammar_chars))
@example("123c0")
@example("%")
@example("%2")
@example("%zz")
@example("%ff")
def test_total_on_arbitrary_text(raw):
    """parse never raises anything but DialError, and what it accepts is canonical."""
    try:
        dial = parse(raw)
    except DialError as err:
        assert err.status == 484
        return
    assert isinstance(dial, Dial)
    assert parse(str(dial)) == dial


OUTSIDE = st.characters().filter(lambda c: c not in "0123456789Thc#%")


@FAST
@given(st.text(alphabet="0123456789Thc#%", max_size=10), OUTSIDE,
       st.text(alphabet="0123456789Thc#%", max_size=10))
def test_any_character_outside_the_alphabet_is_rejected(head, bad, tail):
    with pytest.raises(DialError):
        parse(head + bad + tail)


_STRICT = re.compile(r"(?:([456])#)?([0-9]{1,32})((?:T|h|c[1-9][0-9]?)*)")


def _reference(text: str) -> Dial | None:
    """An independent reading of the grammar (no percent-decoding)."""
    m = _STRICT.fullmatch(text)
    if not m:
        return None
    spy, number, tail = m.groups()
    tokens = re.findall(r"T|h|c[1-9][0-9]?", tail)
    if len(tokens) != len(set(t[0] for t in tokens)):
        return None
    cid = next((int(t[1:]) for t in tokens if t[0] == "c"), None)
    dial = Dial(number, "T" in tokens, "h" in tokens, cid, SPY_MODES[spy] if spy else None)
    if dial.spy and (dial.ring_only or dial.anonymous or cid is not None):
        return None
    return dial


@FAST
@given(st.text(alphabet="0123456789Thc#", max_size=14))
@example("123c0")
@example("123cc1")
@example("123TT")
@example("12h3")
@example("123c100")
@example("123c19")
def test_nothing_parses_as_something_it_is_not(raw):
    expected = _reference(raw)
    if expected is None:
        with pytest.raises(DialError):
            parse(raw)
    else:
        assert parse(raw) == expected
