"""provision/text.py rules and kemi.identity.quoted_display escaping."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi.identity import DISPLAY_MAX, quoted_display
from provision.text import LIMITS, password_problem, text_problem


@pytest.mark.parametrize("value, fragment", [
    ("Alice", None),
    ('O\'Brien "VIP" \\ Ünïcødé', None),
    ("日本語の名前", None),
    ("Alice\r\nContact: <sip:x@y>", "U+000D"),
    ("Alice\nB", "control character"),
    ("tab\there", "control character"),
    ("nul\x00", "control character"),
    ("del\x7f", "control character"),
    ("c1\x85", "control character"),
    ("a\u2028b", "line separator"),
    ("a\u2029b", "paragraph separator"),
    ("a\u202eb", "format character"),
    ("a\u200bb", "format character"),
    ("a\ufeffb", "format character"),
    ("bad\udcffutf8", "valid UTF-8"),
    ("x" * 64, None),
    ("x" * 65, "at most 64"),
])
def test_text_rules(value, fragment):
    problem = text_problem("name", value)
    if fragment is None:
        assert problem is None
    else:
        assert problem is not None and fragment in problem and "field 'name'" in problem


def test_each_field_has_its_limit():
    assert text_problem("display-tag", "x" * 33).startswith("field 'display-tag': at most 32")
    assert set(LIMITS) == {"name", "public-name", "display-tag", "display-format"}


@pytest.mark.parametrize("password, number, fragment", [
    ("Zq8#tr-Lm2p", "77721401", None),
    ("short", "1", "at least 10"),
    ("password", "1", "at least 10"),
    ("pre77721401post", "77721401", "SIP number"),
    ("abababababab", "1", "too easy"),
    ("1234567890", "77", "too easy"),
    ("good-pass\r\nword", "1", "control"),
])
def test_password_rules(password, number, fragment):
    problem = password_problem(password, number)
    assert (problem is None) if fragment is None else (fragment in problem)


@pytest.mark.parametrize("display, quoted", [
    (None, ""),
    ("", ""),
    ("Alice", '"Alice"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("a\r\nContact: <sip:e@x>", '"a  Contact: <sip:e@x>"'),
    ("\r\n", ""),
    ("Ünï <x>;", '"Ünï <x>;"'),
])
def test_quoted_display(display, quoted):
    assert quoted_display(display) == quoted


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_quoted_display_is_always_one_safe_quoted_string(display):
    q = quoted_display(display)
    assert "\r" not in q and "\n" not in q and "\x00" not in q
    if q:
        assert q[0] == q[-1] == '"' and len(q) <= 2 * DISPLAY_MAX + 2
        body, i = q[1:-1], 0
        while i < len(body):           # every " and \ inside is escaped
            if body[i] == "\\":
                i += 2
                continue
            assert body[i] != '"'
            i += 1
