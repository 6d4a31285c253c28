"""Media anchoring in rtpengine beyond the first offer/answer, and the NG client against the
real daemon (issue 5, section 1)."""
from __future__ import annotations

import re
import threading

import pytest

from rtpengine.ng import NgClient, NgError
from tests.e2e.helpers import explain, header, wait_until


def audio_port(message: str) -> int:
    return int(re.search(r"^m=audio (\d+)", message, re.M).group(1))


def test_hold_reinvite_is_anchored_too(proxy):
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    callee = proxy.phone(b, pb, "hold")
    call = proxy.call(a, pa, b, hold=True)
    assert call.proc.returncode == 0, explain(call, callee.uas, proxy.logs())
    first, reinvite = callee.invites()
    low, high = proxy.settings.rtp_port_min, proxy.settings.rtp_port_max
    assert low <= audio_port(first) <= high and low <= audio_port(reinvite) <= high
    assert "a=sendonly" in reinvite, "the hold direction must survive rtpengine"
    answers = [m for m in call.received("SIP/2.0 200") if header(m, "CSeq") == "3 INVITE"]
    assert answers and low <= audio_port(answers[0]) <= high and "a=recvonly" in answers[0]


def test_ng_client_against_the_running_rtpengine(proxy):
    ng = NgClient(proxy.settings.rtpengine_ng)
    assert ng.ping()
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    callee = proxy.phone(b, pb)
    talk = threading.Thread(target=proxy.call, args=(a, pa, b), kwargs={"hold_ms": 3000})
    talk.start()
    wait_until(lambda: callee.uas.received("ACK"))
    call_id = header(callee.invites()[0], "Call-ID")
    try:
        assert call_id in ng.list_calls(limit=1000)
        state = ng.query(call_id)
        assert state["result"] == "ok" and len(state["tags"]) == 2, state
        assert "currentstatistics" in ng.statistics()
    finally:
        talk.join()
    wait_until(lambda: call_id not in ng.list_calls(limit=1000))   # the BYE deleted it
    with pytest.raises(NgError, match="Unknown call-id"):
        ng.query(call_id)


def test_ng_client_gives_up_quickly_on_a_dead_address(proxy):
    dead = NgClient("127.0.0.1:9", timeout=0.2, retries=1)
    with pytest.raises(NgError, match="no answer .* after 2 tries"):
        dead.ping()
