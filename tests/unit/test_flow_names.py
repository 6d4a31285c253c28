"""kemi/names.py: every value the flow engine stores in AVPs and htables round-trips; and the
flow engine adapter (kemi/flow_engine.py) against a small fake KSR."""
from __future__ import annotations

import importlib
import json
import sys
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kemi import names
from kemi.config import Settings
from kemi.core.machine import State

# ------------------------------------------------------------------ encodings


@pytest.mark.parametrize("state", [
    State("0301234567", None),
    State("0301234567", "", node="n1", steps=3),
    State("+49301", "Alice | Bob", node="who", steps=1),
    State("1", "x|y|z=", node="a.b-c", steps=200, ended=True),
])
def test_state_round_trip(state):
    assert names.decode_state(names.encode_state(state)) == state


@given(st.text(alphabet=st.characters(blacklist_characters="|", blacklist_categories=("Cs",)), max_size=20),
       st.one_of(st.none(), st.text(max_size=40)), st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,10}", fullmatch=True),
       st.integers(0, 500), st.booleans())
def test_state_round_trip_property(caller, display, node, steps, ended):
    state = State(caller, display, node, steps, ended)
    assert names.decode_state(names.encode_state(state)) == state


@pytest.mark.parametrize("bad", [None, "", "2|0|0|a|1|", "1|x|0|a|1|", "1|0|5|a|1|", "1|0|0"])
def test_bad_state_is_refused(bad):
    with pytest.raises(names.DecodeError):
        names.decode_state(bad)


def test_other_encodings_round_trip():
    assert names.decode_flow_ref(names.encode_flow_ref("4930123456", 7)) == ("4930123456", 7)
    assert names.decode_history(names.encode_history("77721401", 1700000000.4)) == ("77721401", 1700000000.0)
    assert names.decode_history(None) is None and names.decode_history("|12") is None
    for answer in (names.HttpAnswer(True, "Alice\nline|2"), names.HttpAnswer(False, ""), names.HttpAnswer(True, "")):
        assert names.decode_answer(names.encode_answer(answer)) == answer
    assert names.decode_answer("garbage") == names.HttpAnswer(False)
    assert names.is_flow_target(names.flow_target("timeout")) and not names.is_flow_target("8008001")
    with pytest.raises(names.DecodeError):
        names.decode_flow_ref("4930|x")


# ------------------------------------------------------------------ the adapter with a fake KSR


class FakeKSR(types.ModuleType):
    """Just enough of KSR: pseudo-variables in a dict, every call recorded."""

    def __init__(self):
        super().__init__("KSR")
        self.vars: dict[str, object] = {}
        self.calls: list[tuple] = []
        self.tables: dict[tuple[str, str], str] = {}
        ksr = self

        class Recorder:
            def __init__(self, area):
                self.area = area

            def __getattr__(self, name):
                def call(*args):
                    ksr.calls.append((self.area, name, *args))
                    return ksr.results.get((self.area, name), 1)
                return call

        class PV:
            def get(self, name):
                return ksr.vars.get(name)

            def sets(self, name, value):
                ksr.vars[name] = value

            def seti(self, name, value):
                ksr.vars[name] = value

        class HTable:
            def sht_get(self, table, key):
                return ksr.tables.get((table, key))

            def sht_sets(self, table, key, value):
                ksr.tables[(table, key)] = value

            def sht_rm(self, table, key):
                ksr.tables.pop((table, key), None)

        self.results: dict[tuple[str, str], int] = {}
        self.pv = PV()
        self.htable = HTable()
        for area in ("tm", "tmx", "sl", "hdr", "rr", "rtpengine", "dialog", "sdpops", "uac", "diversion"):
            setattr(self, area, Recorder(area))

    def info(self, msg):
        pass

    def err(self, msg):
        pass

    def resetdsturi(self):
        self.calls.append(("core", "resetdsturi"))


@pytest.fixture
def engine(monkeypatch, tmp_path):
    fake = FakeKSR()
    monkeypatch.setitem(sys.modules, "KSR", fake)
    forget_adapters()
    flow_engine = importlib.import_module("kemi.flow_engine")
    monkeypatch.setattr(flow_engine.journal, "call_ended", lambda *a, **k: None)
    monkeypatch.setattr(flow_engine.instrument, "call_ended", lambda *a, **k: None)
    monkeypatch.setattr(importlib.import_module("kemi.ring").instrument, "call_ended", lambda *a, **k: None)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "flow_helper.json").write_text(json.dumps({"port": 40001, "token": "s3cret", "pid": 1}))
    eng = flow_engine.FlowEngine(Settings(var_dir=str(tmp_path), media_sip="127.0.0.1:5080"))
    yield eng, fake
    forget_adapters()


def forget_adapters():
    """Adapters bind KSR at import: import them afresh against each fake."""
    import kemi
    for mod in ("ksr", "instrument", "ring", "flow_engine"):
        sys.modules.pop(f"kemi.{mod}", None)
        if hasattr(kemi, mod):
            delattr(kemi, mod)


class Directory:
    def __init__(self, flows):
        self.flows = flows


PLAY_FLOW = json.dumps({"start": "hello", "timezone": "UTC", "nodes": {
    "hello": {"type": "play", "audio": "welcome", "next": {"done": "menu", "error": "sorry"}},
    "menu": {"type": "menu", "prompt": "choose", "valid": ["1", "2"], "next": {"1": "one", "invalid": "sorry"}},
    "one": {"type": "reject", "code": 486, "reason": "one"},
    "sorry": {"type": "reject", "code": 503, "reason": "sorry"}}})


def start_play(engine):
    eng, fake = engine
    fake.vars.update({"$ci": "call-1", "$fU": "0301234567"})
    eng.start(None, Directory({"4930": (1, PLAY_FLOW)}), "4930", "0301234567", None)
    return eng, fake


def test_media_node_relays_to_the_media_service(engine):
    eng, fake = start_play(engine)
    assert fake.vars["$ru"] == "sip:play@127.0.0.1:5080"
    assert ("tm", "t_on_branch", names.MEDIA_BRANCH_ROUTE) in fake.calls
    assert not any(c[:2] == ("hdr", "append") for c in fake.calls), "the header goes on the branch only"
    eng.on_media_branch()
    assert ("hdr", "append", "X-Kemi-App: play;audio=welcome;loop=1\r\n") in fake.calls
    assert ("tm", "t_on_failure", names.MEDIA_FAILURE_ROUTE) in fake.calls
    assert ("tm", "t_relay") in fake.calls
    assert names.decode_state(fake.vars[names.FLOW_STATE]).node == "hello"


@pytest.mark.parametrize("status,outcome_header,digits,expected", [
    (302, "done", None, ("menu",)),                 # play done -> the menu is next (another media branch)
    (503, None, None, ("reply", 503, "sorry")),      # the media service failed: error -> sorry
    (302, "strange", None, ("reply", 503, "sorry")),
])
def test_media_answers_continue_the_flow(engine, status, outcome_header, digits, expected):
    eng, fake = start_play(engine)
    fake.calls.clear()
    fake.results[("tm", "t_is_canceled")] = 0
    fake.vars.update({"$T_reply_code": status, "$T_rpl($hdr(X-Kemi-Outcome))": outcome_header,
                      "$T_rpl($hdr(X-Kemi-Digits))": digits})
    eng.on_media_failure(None, Directory({}))
    if expected[0] == "menu":
        assert fake.vars["$ru"] == "sip:menu@127.0.0.1:5080"
        assert fake.vars[names.FLOW_MEDIA].startswith("X-Kemi-App: menu;prompt=choose;")
    else:
        eng.on_media_branch()          # a later non-media branch gets no X-Kemi-App
        assert not any(c[:2] == ("hdr", "append") for c in fake.calls)
        assert ("tm", "t_reply", expected[1], expected[2]) in fake.calls


def test_menu_digits_pick_the_outcome(engine):
    eng, fake = start_play(engine)
    fake.results[("tm", "t_is_canceled")] = 0
    fake.vars.update({"$T_reply_code": 302, "$T_rpl($hdr(X-Kemi-Outcome))": "done"})
    eng.on_media_failure(None, Directory({}))
    fake.calls.clear()
    fake.vars.update({"$T_rpl($hdr(X-Kemi-Outcome))": "digits", "$T_rpl($hdr(X-Kemi-Digits))": "1"})
    eng.on_media_failure(None, Directory({}))
    assert ("tm", "t_reply", 486, "one") in fake.calls


@pytest.mark.parametrize("port,token,ip,code", [
    (40001, "s3cret", "127.0.0.1", 200),
    (40002, "s3cret", "127.0.0.1", 403),      # not the helper's port
    (40001, "guess", "127.0.0.1", 403),       # wrong token
    (40001, "s3cret", "192.0.2.7", 403),      # not from this host
])
def test_helper_answers_are_authenticated(engine, port, token, ip, code):
    eng, fake = engine
    fake.vars.update({"$rm": "MESSAGE", "$rU": "kemi-flow-helper", "$sp": port, "$si": ip,
                      "$hdr(X-Kemi-Token)": token, "$rb": "12:34\n1|Alice"})
    assert eng.is_helper_message()
    eng.helper_message()
    assert ("sl", "sl_send_reply", code, "OK" if code == 200 else "Forbidden - not the flow helper") in fake.calls
    resumed = ("tmx", "t_continue", 12, 34, names.HTTP_RESUME_ROUTE) in fake.calls
    assert resumed is (code == 200)
    assert (fake.tables.get((names.HTTP_TABLE, "12:34")) == "1|Alice") is (code == 200)


def test_cached_name_needs_no_helper(engine):
    eng, fake = engine
    flow = json.dumps({"start": "who", "nodes": {
        "who": {"type": "lookup", "url": "http://crm.example/{caller}", "next": "end"},
        "end": {"type": "reject", "code": 480, "reason": "done"}}})
    from kemi.flow_engine import NAME_TABLE, _cache_key
    fake.tables[(NAME_TABLE, _cache_key("http://crm.example/{caller}", "0301"))] = "9999999999|Cached Name"
    fake.vars.update({"$ci": "c", "$fU": "0301"})
    eng.start(None, Directory({"4931": (1, flow)}), "4931", "0301", None)
    assert not any(c[:2] == ("tmx", "t_suspend") for c in fake.calls)
    assert names.decode_state(fake.vars[names.FLOW_STATE]).display == "Cached Name"
    assert ("sl", "sl_send_reply", 480, "done") in fake.calls
