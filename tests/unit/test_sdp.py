"""kemi/sdp.py: which offers are refused with 488 before rtpengine sees them."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi.sdp import problem

GOOD = ("v=0\r\no=caller 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 20000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n")


@pytest.mark.parametrize("body, fragment", [
    (GOOD, None),
    (GOOD.replace("\r\n", "\n"), None),
    (None, None),
    ("", None),
    (GOOD.replace("c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 8\r\n",
                  "t=0 0\r\nm=audio 20000 RTP/AVP 0\r\nc=IN IP6 ::1\r\n"), None),
    (GOOD.replace("m=audio 20000", "m=audio 0").replace("c=IN IP4 127.0.0.1\r\n", ""), None),  # disabled stream
    ("this is not sdp", "start with v=0"),
    (GOOD.replace("v=0", "v=1"), "start with v=0"),
    (GOOD.replace("s=-\r\n", ""), "no s= line"),
    (GOOD.replace("o=caller 1 2 IN IP4 127.0.0.1", "o=caller"), "o= line needs 6 fields"),
    (GOOD.replace("m=audio 20000 RTP/AVP 0 8\r\n", ""), "no m= line"),
    (GOOD.replace("20000", "notaport"), "m= line 1 needs"),
    (GOOD.replace("20000", "99999"), "m= line 1 needs"),
    (GOOD.replace("RTP/AVP 0 8", "RTP/AVP"), "m= line 1 needs"),
    (GOOD.replace("c=IN IP4 127.0.0.1\r\n", ""), "no connection address"),
    (GOOD.replace("c=IN IP4 127.0.0.1", "c=IN IP4 999.1.1.1"), "must be an IP address"),
    (GOOD.replace("c=IN IP4 127.0.0.1", "c=IN IP4 ::1"), "does not match"),
    (GOOD.replace("c=IN IP4 127.0.0.1", "c=IN"), "c= must be"),
    (GOOD + "garbage line\r\n", "not type=value"),
    (GOOD + "a=\x00\r\n", "not type=value"),
    (GOOD.encode() + b"a=\xff\r\n", "not UTF-8"),
    (GOOD + "a=" + "x" * 40000 + "\r\n", "larger than"),
])
def test_sdp_rules(body, fragment):
    why = problem(body)
    if fragment is None:
        assert why is None
    else:
        assert why is not None and why.startswith("malformed SDP: ") and fragment in why, why


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_any_body_gives_an_answer_fit_for_a_reason_phrase(body):
    why = problem(body)
    assert why is None or (why.isprintable() and len(why) < 120)
