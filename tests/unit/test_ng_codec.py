"""rtpengine/ng.py: the bencode codec of the NG protocol (no sockets here)."""
from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rtpengine.ng import NgError, bdecode, bencode

FAST = settings(max_examples=200, deadline=None)

KNOWN = [
    ({"command": "ping"}, b"d7:command4:pinge"),
    ({"result": "pong"}, b"d6:result4:ponge"),
    (0, b"i0e"),
    (42, b"i42e"),
    (-7, b"i-7e"),
    (2**70, b"i1180591620717411303424e"),
    ("", b"0:"),
    ("spam", b"4:spam"),
    ("\u00e9", b"2:\xc3\xa9"),                  # length in bytes, UTF-8
    ([], b"le"),
    ({}, b"de"),
    (["a", 1, []], b"l1:ai1elee"),
    ({"b": 1, "a": 2}, b"d1:ai2e1:bi1ee"),       # keys sorted
    ({"flags": ["trust-address", "SIP-source-address"], "call-id": "abc", "ICE": "remove"},
     b"d3:ICE6:remove7:call-id3:abc5:flagsl13:trust-address18:SIP-source-addressee"),
    ({"sdp": "v=0\r\n", "nested": {"x": [1, {"y": "z"}]}},
     b"d6:nestedd1:xli1ed1:y1:zeee3:sdp5:v=0\r\ne"),
]


@pytest.mark.parametrize("value,encoded", KNOWN, ids=[repr(e) for _, e in KNOWN])
def test_known_encodings(value, encoded):
    assert bencode(value) == encoded
    assert bdecode(encoded) == value


ENCODE_ONLY = [
    (True, b"i1e"),
    (False, b"i0e"),
    ({"flag": True}, b"d4:flagi1ee"),
    (b"raw", b"3:raw"),
    ((1, "a"), b"li1e1:ae"),
    ({b"k": "v"}, b"d1:k1:ve"),
    ({"b": 1, b"a": 2}, b"d1:ai2e1:bi1ee"),      # str and bytes keys sort together
]


@pytest.mark.parametrize("value,encoded", ENCODE_ONLY, ids=[repr(v) for v, _ in ENCODE_ONLY])
def test_encode_only(value, encoded):
    assert bencode(value) == encoded


def test_bool_decodes_as_int():
    assert bdecode(bencode({"a": True, "b": False})) == {"a": 1, "b": 0}


def test_bytes_decode_as_text():
    assert bdecode(b"3:raw") == "raw"
    assert bdecode(b"2:\xff\xfe") == "\ufffd\ufffd"     # undecodable bytes are replaced


@pytest.mark.parametrize("value", [1.5, None, object(), {1, 2}])
def test_unencodable_types(value):
    with pytest.raises(TypeError):
        bencode(value)


MALFORMED = [
    b"",
    b"x",
    b"e",
    b"i",
    b"i42",
    b"ie",
    b"iabce",
    b"i1.5e",
    b"l",
    b"li1e",
    b"d",
    b"d1:a",
    b"d1:ai1e",
    b"d1:ae",
    b"5",
    b"5:abc",
    b"3abc",
    b"1x:a",
    b"-1:a",
    b":",
    b"4:spam4:eggs",          # trailing bytes
    b"i1ee",
    b"lee",
    b"de ",
    b"d7:command4:pinge\n",
]


@pytest.mark.parametrize("data", MALFORMED, ids=[repr(d) for d in MALFORMED])
def test_malformed_raises_ng_error(data):
    with pytest.raises(NgError):
        bdecode(data)


def test_trailing_bytes_message_names_the_offset():
    with pytest.raises(NgError, match="offset 3"):
        bdecode(b"i1eX")


@pytest.mark.parametrize("data", [b"dlei1ee", b"ddei1ee"])
def test_unhashable_key_raises_ng_error(data):
    with pytest.raises(NgError):
        bdecode(data)


def test_deep_nesting_raises_ng_error():
    with pytest.raises(NgError):
        bdecode(b"l" * 100_000)


# ---------------------------------------------------------------- properties

keys = st.text(max_size=8)
values = st.recursive(
    st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@FAST
@given(values)
def test_round_trip(value):
    assert bdecode(bencode(value)) == value


@FAST
@given(values)
def test_encoding_is_deterministic_and_canonical(value):
    encoded = bencode(value)
    assert bencode(bdecode(encoded)) == encoded


@FAST
@given(st.binary(max_size=40) | st.builds(lambda v, tail: bencode(v) + tail, values, st.binary(max_size=3))
       | st.builds(lambda v, n: bencode(v)[:n], values, st.integers(0, 30)))
@example(b"d1:ai1e")
@example(b"i1e" + b"e")
def test_decode_never_raises_anything_but_ng_error(data):
    try:
        value = bdecode(data)
    except NgError:
        return
    assert isinstance(value, (int, str, list, dict))
