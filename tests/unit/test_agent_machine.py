"""The agent state machine (kemi/core/agent_machine.py): every command as a table of cases."""
from __future__ import annotations

import pytest

from kemi.core import agent_machine as am
from kemi.core.agent_machine import IN, OUT, PAUSED, QUEUE, RINGALL, Membership


def M(kind: str, group: str, state: str = IN, reason: str = "") -> Membership:
    return Membership(kind, group, state, reason)


Q1, Q2, G1 = M(QUEUE, "6001"), M(QUEUE, "6002"), M(RINGALL, "7001")
ALL = (Q1, Q2, G1)


def after(ms, result):
    return {(m.kind, m.group): (m.state, m.reason) for m in am.apply(ms, result.changed)}


@pytest.mark.parametrize("ms,queue,logged_in,status,words,expect", [
    (ALL, None, False, 603, "logged out of all queues and groups",
     {("q", "6001"): (OUT, ""), ("q", "6002"): (OUT, ""), ("g", "7001"): (OUT, "")}),
    ((M(QUEUE, "6001", PAUSED, "lunch"), Q2, G1), None, True, 603, "logged in to all",
     {("q", "6001"): (IN, ""), ("q", "6002"): (IN, ""), ("g", "7001"): (IN, "")}),
    (ALL, "6002", False, 603, "logged out of queue 6002",
     {("q", "6001"): (IN, ""), ("q", "6002"): (OUT, ""), ("g", "7001"): (IN, "")}),
    (ALL, "7001", True, 404, "no agent of queue 7001", None),      # a ring-all group is no queue
    (ALL, "9999", True, 404, "no agent of queue 9999", None),
    ((), None, True, 403, "no agent of any", None),
])
def test_login(ms, queue, logged_in, status, words, expect):
    r = am.login("1001", ms, queue, logged_in)
    assert r.status == status and words in r.reason
    if expect is not None:
        assert after(ms, r) == expect
    else:
        assert not r.changed and not r.ok


def test_login_changes_only_what_differs():
    r = am.login("1001", (Q1, M(QUEUE, "6002", OUT)), None, True)
    assert r.changed == (M(QUEUE, "6002", IN),)


@pytest.mark.parametrize("ms,reason,status,words,expect", [
    (ALL, None, 603, "paused (break) in 2 queue(s)",
     {("q", "6001"): (PAUSED, "break"), ("q", "6002"): (PAUSED, "break"), ("g", "7001"): (IN, "")}),
    ((Q1, M(QUEUE, "6002", OUT)), "12", 603, "paused (12) in 1 queue(s)",
     {("q", "6001"): (PAUSED, "12"), ("q", "6002"): (OUT, "")}),
    ((M(QUEUE, "6001", OUT),), None, 603, "nothing to pause", {("q", "6001"): (OUT, "")}),
    (ALL, "Bad!", 484, "pause reason", None),
    ((), None, 403, "no agent", None),
])
def test_pause(ms, reason, status, words, expect):
    r = am.pause("1001", ms, reason)
    assert r.status == status and words in r.reason
    if expect is not None:
        assert after(ms, r) == expect


def test_unpause_restores_exactly_what_the_pause_took():
    start = (Q1, M(QUEUE, "6002", OUT), G1)
    paused = am.apply(start, am.pause("1001", start, "lunch").changed)
    r = am.unpause("1001", paused)
    assert r.ok and "unpaused in 1 queue" in r.reason
    assert am.apply(paused, r.changed) == start


@pytest.mark.parametrize("ms,words,expect", [
    ((M(QUEUE, "6001", PAUSED, "auto"), M(QUEUE, "6002", PAUSED, "dnd")), "unpaused in 1",
     {("q", "6001"): (IN, ""), ("q", "6002"): (PAUSED, "dnd")}),       # DND is not a pause
    ((Q1,), "nothing to unpause", {("q", "6001"): (IN, "")}),
])
def test_unpause(ms, words, expect):
    r = am.unpause("1001", ms)
    assert words in r.reason and after(ms, r) == expect


def test_dnd_toggles_and_restores_exactly():
    start = (Q1, M(QUEUE, "6002", OUT), G1, M(QUEUE, "6003", PAUSED, "lunch"))
    on = am.toggle_dnd("1001", start)
    assert "do not disturb on" in on.reason
    mid = am.apply(start, on.changed)
    assert after(start, on) == {("q", "6001"): (PAUSED, "dnd"), ("q", "6002"): (OUT, ""),
                                ("g", "7001"): (PAUSED, "dnd"), ("q", "6003"): (PAUSED, "lunch")}
    off = am.toggle_dnd("1001", mid)
    assert "do not disturb off" in off.reason and am.apply(mid, off.changed) == start
    assert am.toggle_dnd("1001", ()).status == 403
    assert "nothing" in am.toggle_dnd("1001", (M(QUEUE, "6001", OUT),)).reason


@pytest.mark.parametrize("ms,queue,changed", [
    (ALL, "6001", (M(QUEUE, "6001", PAUSED, "auto"),)),
    ((M(QUEUE, "6001", PAUSED, "lunch"),), "6001", ()),     # already paused: kept as it is
    ((M(QUEUE, "6001", OUT),), "6001", ()),
    (ALL, "7001", ()),                                       # only queues auto-pause
])
def test_auto_pause(ms, queue, changed):
    assert am.auto_pause("1001", ms, queue).changed == changed


@pytest.mark.parametrize("text,decoded", [
    ("in", (IN, "")), ("out", (OUT, "")), ("p:lunch", (PAUSED, "lunch")), ("p:dnd", (PAUSED, "dnd")),
    ("p:", None), ("p:BAD", None), ("", None), (None, None), ("x", None)])
def test_state_encoding(text, decoded):
    assert am.decode_state(text) == decoded
    if decoded is not None:
        assert am.encode_state(Membership(QUEUE, "1", *decoded)) == text


@pytest.mark.parametrize("misses,code,limit,expect", [
    (0, 408, 2, (1, False)), (1, 408, 2, (0, True)), (1, 486, 2, (1, False)), (1, 200, 2, (0, False)),
    (5, 487, None, (6, False)), (0, 503, 1, (0, True)), (0, 404, 1, (0, False)), (2, 603, 3, (0, True))])
def test_offer_ended(misses, code, limit, expect):
    assert am.on_offer_ended(misses, code, limit) == expect


# ---------------------------------------------------------------- encodings (kemi/names.py)

from kemi import names  # noqa: E402


@pytest.mark.parametrize("kind,group,agent", [("q", "6001", "1001"), ("g", "7001", "55500001")])
def test_agent_key_round_trip(kind, group, agent):
    assert names.split_agent_key(names.agent_key(kind, group, agent)) == (kind, group, agent)


@pytest.mark.parametrize("key", ["x:1:2", "q:1", "q::2", "q:1:2:3", ""])
def test_bad_agent_keys_do_not_split(key):
    assert names.split_agent_key(key) is None


@pytest.mark.parametrize("text,decoded", [
    (names.encode_queue_call("6001", "1001", 12.5), ("6001", "1001", 12.5)),
    ("", None), (None, None), ("6001|1001", None), ("6001|1001|x", None), ("|1001|1", None)])
def test_queue_call_encoding(text, decoded):
    assert names.decode_queue_call(text) == decoded
