"""The pure flow core: validation, time routing, the per-call state machine, the media
contract. Tables of cases; a property test that no valid flow loops a call forever."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kemi.core import flow as flowmod
from kemi.core import machine, media, timerules, validate
from kemi.core.machine import Email, HttpGet, HttpRoute, Media, Notify, Outcome, Reply, Ring, SetCaller
from kemi.core.nodes import TYPES

UTC = dt.timezone.utc
NUMBERS = validate.Numbers(subscribers=frozenset({"77721401", "77721402"}), hunt=frozenset({"8008001", "77721401"}),
                           ringall=frozenset({"7000"}), queues=frozenset({"6000"}))


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def F(nodes, start="a", tz="UTC"):
    return flowmod.parse({"timezone": tz, "start": start, "nodes": nodes})


OFFICE = {"type": "time", "hours": {"mon-fri": ["09:00-12:00", "13:00-17:00"], "sat": ["10:00-14:00"]},
          "exceptions": [{"date": "2026-12-24", "hours": ["09:00-12:00"]}, {"date": "2026-12-25"}],
          "next": {"open": "q", "closed": "closed", "holiday": "hol"}}
DEMO = {
    "a": OFFICE,
    "q": {"type": "queue", "number": "6000", "next": {"timeout": "h"}},
    "h": {"type": "hunt", "number": "8008001", "next": {"exhausted": "mail"}},
    "mail": {"type": "email", "to": "boss@example.com", "subject": "Missed call"},
    "closed": {"type": "reject", "code": 480, "reason": "Closed - call 9-17"},
    "hol": {"type": "reject", "code": 480, "reason": "Closed for the holidays"},
}

# ------------------------------------------------------------------ validation


def errors_of(nodes, start="a", tz="UTC", own=None):
    return [(e.node, e.field) for e in validate.validate(F(nodes, start, tz), NUMBERS, own)]


VALID_CASES = [
    DEMO,
    {"a": {"type": "reject", "code": 403}},
    {"a": {"type": "caller", "prefix": "0", "suffix": "11", "display_tag": "[Sales]", "next": "b"},
     "b": {"type": "sip", "number": "77721401", "ring_timeout": 20, "next": {"no_answer": "c"}},
     "c": {"type": "voicemail", "box": "77721401"}},
    {"a": {"type": "lookup", "url": "https://crm.example/name?n={caller}", "header": "Authorization",
           "token": "Bearer x", "ttl": 60, "timeout": 1.5, "next": "b"},
     "b": {"type": "http_route", "url": "http://127.0.0.1:8080/route", "next": {"1": "c", "error": "c"}},
     "c": {"type": "notify", "url": "http://127.0.0.1:8080/n", "next": "d"},
     "d": {"type": "external", "number": "+4930123456"}},
    {"a": {"type": "menu", "prompt": "welcome", "digits": "1-2", "valid": ["1", "12"],
           "next": {"1": "b", "12": "c", "invalid": "c"}},
     "b": {"type": "play", "audio": "bye", "loop": 2, "next": {"done": "c"}},
     "c": {"type": "history", "window": 86400, "next": {"not_found": "d"}},
     "d": {"type": "ringall", "number": "7000"}},
]


@pytest.mark.parametrize("nodes", VALID_CASES)
def test_valid_flows_pass(nodes):
    assert validate.validate(F(nodes), NUMBERS, "4930000000") == []


INVALID_CASES = [
    ({"a": {"type": "teleport"}}, ("a", "type")),
    ({"a": {"type": "reject"}}, ("a", "code")),
    ({"a": {"type": "reject", "code": 200}}, ("a", "code")),
    ({"a": {"type": "reject", "code": 480, "colour": "red"}}, ("a", "colour")),
    ({"a": {"type": "time", "hours": {"mon": ["09:00-17:00"]}, "next": {"open": "b"}},
      "b": {"type": "reject", "code": 480}}, ("a", "next.closed")),
    ({"a": {"type": "caller", "prefix": "0", "next": "nowhere"}}, ("a", "next.next")),
    ({"a": {"type": "reject", "code": 480, "next": {"done": "a"}}}, ("a", "next.done")),
    ({"a": {"type": "reject", "code": 480}, "b": {"type": "reject", "code": 486}}, ("b", "id")),
    ({"a": {"type": "caller", "next": "b"}, "b": {"type": "caller", "next": "a"}}, ("a", "next")),
    ({"a": {"type": "sip", "number": "77721401", "next": {"no_answer": "a"}}}, ("a", "next")),
    ({"a": {"type": "time", "hours": {"mon": ["17:00-09:00"]}, "next": {"open": "b", "closed": "b"}},
      "b": {"type": "reject", "code": 480}}, ("a", "hours.mon[0]")),
    ({"a": {"type": "time", "hours": {"funday": ["09:00-10:00"]}, "next": {"open": "b", "closed": "b"}},
      "b": {"type": "reject", "code": 480}}, ("a", "hours.funday")),
    ({"a": {"type": "time", "hours": {"mon": ["09:00-12:00", "11:00-13:00"]}, "next": {"open": "b", "closed": "b"}},
      "b": {"type": "reject", "code": 480}}, ("a", "hours.mon")),
    ({"a": {"type": "time", "hours": {"mon": ["09:00-10:00"]}, "exceptions": [{"date": "2026-13-01"}],
            "next": {"open": "b", "closed": "b"}}, "b": {"type": "reject", "code": 480}}, ("a", "exceptions[0].date")),
    ({"a": {"type": "lookup", "url": "ftp://crm.example/x", "next": "b"}, "b": {"type": "reject", "code": 480}},
     ("a", "url")),
    ({"a": {"type": "notify", "url": "file:///etc/passwd", "next": "b"}, "b": {"type": "reject", "code": 480}},
     ("a", "url")),
    ({"a": {"type": "queue", "number": "77721401"}}, ("a", "number")),
    ({"a": {"type": "sip", "number": "99999"}}, ("a", "number")),
    ({"a": {"type": "sip", "number": 77721401}}, ("a", "number")),
    ({"a": {"type": "hunt", "number": "4930000000"}}, ("a", "number")),
    ({"a": {"type": "email", "to": "not an address"}}, ("a", "to")),
    ({"a": {"type": "caller", "display_tag": "bad\r\nInjected: 1", "next": "b"}, "b": {"type": "reject", "code": 480}},
     ("a", "display_tag")),
    ({"a": {"type": "menu", "prompt": "p", "next": {"timeout": "b"}}, "b": {"type": "reject", "code": 480}},
     ("a", "next")),
    ({"a": {"type": "lookup", "url": "http://x.example/", "timeout": 30, "next": "b"}, "b": {"type": "reject", "code": 480}},
     ("a", "timeout")),
]


@pytest.mark.parametrize("nodes,expected", INVALID_CASES)
def test_invalid_flows_name_node_and_field(nodes, expected):
    assert expected in errors_of(nodes, own="4930000000")


def test_bad_time_zone_and_start_are_named():
    assert ("flow", "timezone") in errors_of({"a": {"type": "reject", "code": 480}}, tz="Mars/Olympus")
    assert ("flow", "start") in errors_of({"a": {"type": "reject", "code": 480}}, start="zz")


def test_cycle_error_names_the_loop():
    errs = validate.validate(F({"a": {"type": "caller", "next": "b"}, "b": {"type": "caller", "next": "a"}}))
    assert any("a -> b -> a" in e.rule for e in errs)


@pytest.mark.parametrize("doc,where", [
    ([], "flow"), ({"start": "a"}, "nodes"), ({"nodes": {"a": {"type": "reject"}}}, "start"),
    ({"start": "a", "nodes": {"1a": {"type": "reject"}}}, "node '1a'"),
    ({"start": "a", "nodes": {"a": {"code": 1}}}, "node a.type"),
    ({"start": "a", "nodes": {"a": {"type": "reject"}}, "colour": 1}, "colour"),
])
def test_shape_errors(doc, where):
    with pytest.raises(flowmod.FlowShapeError) as err:
        flowmod.parse(doc)
    assert err.value.where == where


def test_json_round_trip():
    f = F(DEMO, tz="Europe/Riga")
    assert flowmod.from_json(flowmod.to_json(f)) == f


# ------------------------------------------------------------------ time routing

SCHEDULE = timerules.parse(OFFICE)
RIGA = timerules.zone("Europe/Riga")   # UTC+2 in winter, UTC+3 in summer


@pytest.mark.parametrize("utc,outcome", [
    ("2026-12-02 07:00", "open"),       # Wed 09:00 Riga
    ("2026-12-02 06:59", "closed"),     # Wed 08:59
    ("2026-12-02 10:30", "closed"),     # Wed 12:30 lunch
    ("2026-12-02 11:00", "open"),       # Wed 13:00
    ("2026-12-02 14:59", "open"),       # Wed 16:59
    ("2026-12-02 15:00", "closed"),     # Wed 17:00 (end exclusive)
    ("2026-12-05 09:00", "open"),       # Sat 11:00
    ("2026-12-06 09:00", "closed"),     # Sun
    ("2026-12-24 08:00", "open"),       # special hours 09-12 on the 24th: 10:00
    ("2026-12-24 12:00", "holiday"),    # 14:00 on the 24th
    ("2026-12-25 09:00", "holiday"),    # closed all day
    ("2026-07-01 06:30", "open"),       # summer time: 09:30 Riga (UTC+3)
    ("2026-07-01 14:30", "closed"),     # 17:30 Riga
])
def test_office_hours(utc, outcome):
    assert timerules.decide(SCHEDULE, RIGA, at(utc)).outcome == outcome


def test_same_instant_differs_by_zone():
    now = at("2026-12-02 18:30")     # 13:30 in New York
    assert timerules.decide(SCHEDULE, timerules.zone("UTC"), now).outcome == "closed"
    assert timerules.decide(SCHEDULE, timerules.zone("America/New_York"), now).outcome == "open"


def test_24_00_end_covers_the_last_minute():
    sched = timerules.parse({"hours": {"mon-sun": ["00:00-24:00"]}})
    assert timerules.decide(sched, timerules.zone("UTC"), at("2026-12-02 23:59")).outcome == "open"


# ------------------------------------------------------------------ the state machine

NOW = at("2026-12-02 08:00")    # Wed 10:00 Riga: open


def run(nodes, events, tz="Europe/Riga", caller="0301234567", display=None):
    """Start, then feed outcomes; returns every action and the final state."""
    f = F(nodes, tz=tz)
    result = machine.start(f, caller, display, NOW)
    actions = list(result.actions)
    for name, kw in events:
        result = machine.step(f, result.state, Outcome(name, NOW, **kw))
        actions.extend(result.actions)
    return actions, result.state


MACHINE_CASES = [
    # (nodes, outcomes fed, expected actions, ended)
    (DEMO, [], [Ring("queue", "6000")], False),
    (DEMO, [("timeout", {})], [Ring("queue", "6000"), Ring("hunt", "8008001")], False),
    (DEMO, [("timeout", {}), ("exhausted", {"code": 486, "reason": "Busy Here"})],
     [Ring("queue", "6000"), Ring("hunt", "8008001"), Email(("boss@example.com",), "Missed call"),
      Reply(480, "Temporarily Unavailable - the flow ends here")], True),
    ({"a": {"type": "hunt", "number": "8008001"}}, [("exhausted", {"code": 486, "reason": "Busy Here - all"})],
     [Ring("hunt", "8008001"), Reply(486, "Busy Here - all")], True),
    ({"a": {"type": "sip", "number": "77721401", "ring_timeout": 10, "next": {"no_answer": "b"}},
      "b": {"type": "reject", "code": 404, "reason": "Nobody"}}, [("busy", {})],
     [Ring("sip", "77721401", 10), Reply(404, "Nobody")], True),
    ({"a": {"type": "sip", "number": "77721401", "next": {"busy": "b", "no_answer": "c"}},
      "b": {"type": "reject", "code": 486}, "c": {"type": "reject", "code": 480}}, [("busy", {})],
     [Ring("sip", "77721401"), Reply(486, "Rejected by the flow")], True),
    ({"a": {"type": "caller", "strip_prefix": "0", "prefix": "+49", "suffix": "9", "display_tag": "[S]", "next": "b"},
      "b": {"type": "caller", "prefix": "1", "next": "c"}, "c": {"type": "sip", "number": "77721401"}}, [],
     [SetCaller("+493012345679", "[S]"), SetCaller("1+493012345679", "[S]"), Ring("sip", "77721401")], False),
    ({"a": {"type": "lookup", "url": "http://h.example/{caller}", "next": "b"}, "b": {"type": "sip", "number": "77721401"}},
     [("next", {"value": "Alice Example"})],
     [HttpGet("http://h.example/{caller}", None, None, 300, 1.5), SetCaller("0301234567", "Alice Example"),
      Ring("sip", "77721401")], False),
    ({"a": {"type": "lookup", "url": "http://h.example/", "next": "b"}, "b": {"type": "sip", "number": "77721401"}},
     [("next", {"value": ""})], [HttpGet("http://h.example/", None, None, 300, 1.5), Ring("sip", "77721401")], False),
    ({"a": {"type": "http_route", "url": "http://h.example/", "next": {"3": "b", "error": "c"}},
      "b": {"type": "reject", "code": 403}, "c": {"type": "reject", "code": 503}}, [("3", {})],
     [HttpRoute("http://h.example/", None, None, 1.5), Reply(403, "Rejected by the flow")], True),
    ({"a": {"type": "http_route", "url": "http://h.example/", "next": {"3": "b", "error": "c"}},
      "b": {"type": "reject", "code": 403}, "c": {"type": "reject", "code": 503}}, [("4", {})],
     [HttpRoute("http://h.example/", None, None, 1.5), Reply(480, "Temporarily Unavailable - the flow ends here")], True),
    ({"a": {"type": "notify", "url": "http://h.example/n", "next": "b"}, "b": {"type": "sip", "number": "77721401"}}, [],
     [Notify("http://h.example/n", None, None), Ring("sip", "77721401")], False),
    ({"a": {"type": "queue", "number": "6000", "next": {"timeout": "b"}}, "b": {"type": "reject", "code": 480}},
     [("no_agents", {})], [Ring("queue", "6000"), Reply(480, "Rejected by the flow")], True),
    ({"a": {"type": "history", "window": 600, "next": {"not_found": "b"}}, "b": {"type": "queue", "number": "6000"}},
     [("no_answer", {})], [Ring("history", "", None, 600), Ring("queue", "6000")], False),
    ({"a": {"type": "play", "audio": "hello", "next": {"done": "b"}}, "b": {"type": "voicemail", "box": "77721401"}},
     [("done", {})], [Media("play", (("audio", "hello"), ("loop", "1")), False),
                      Media("voicemail", (("box", "77721401"),), True)], True),
    ({"a": {"type": "menu", "prompt": "p", "valid": ["1", "2"], "next": {"1": "b", "invalid": "c"}},
      "b": {"type": "reject", "code": 401}, "c": {"type": "reject", "code": 402}}, [("digits", {"value": "1"})],
     [Media("menu", (("prompt", "p"), ("invalid", "invalid"), ("digits", "1-1"), ("valid", "1,2"), ("timeout", "5"),
                     ("retries", "2")), False), Reply(401, "Rejected by the flow")], True),
    ({"a": {"type": "menu", "prompt": "p", "next": {"1": "b", "invalid": "c"}},
      "b": {"type": "reject", "code": 401}, "c": {"type": "reject", "code": 402}}, [("digits", {"value": "7"})],
     [Media("menu", (("prompt", "p"), ("invalid", "invalid"), ("digits", "1-1"), ("valid", ""), ("timeout", "5"),
                     ("retries", "2")), False), Reply(402, "Rejected by the flow")], True),
    ({"a": {"type": "menu", "prompt": "p", "next": {"1": "b", "invalid": "c"}},
      "b": {"type": "reject", "code": 401}, "c": {"type": "reject", "code": 402}}, [("timeout", {})],
     [Media("menu", (("prompt", "p"), ("invalid", "invalid"), ("digits", "1-1"), ("valid", ""), ("timeout", "5"),
                     ("retries", "2")), False), Reply(402, "Rejected by the flow")], True),
]


@pytest.mark.parametrize("nodes,events,expected,ended", MACHINE_CASES)
def test_machine_table(nodes, events, expected, ended):
    actions, state = run(nodes, events)
    assert actions == expected
    assert state.ended is ended


def test_time_node_outcomes_through_the_machine():
    f = F(DEMO, tz="Europe/Riga")
    assert machine.start(f, "1", None, at("2026-12-02 20:00")).actions == (Reply(480, "Closed - call 9-17"),)
    assert machine.start(f, "1", None, at("2026-12-25 09:00")).actions == (Reply(480, "Closed for the holidays"),)
    nodes = {**DEMO, "a": {**OFFICE, "next": {"open": "q", "closed": "closed"}}}
    del nodes["hol"]
    no_holiday = F(nodes, tz="Europe/Riga")      # holiday falls back to closed
    assert machine.start(no_holiday, "1", None, at("2026-12-25 09:00")).actions == (Reply(480, "Closed - call 9-17"),)


def test_events_after_the_end_do_nothing():
    f = F({"a": {"type": "reject", "code": 480}})
    result = machine.start(f, "1", None, NOW)
    assert machine.step(f, result.state, Outcome("next", NOW)).actions == ()


def test_trail_explains_each_node():
    f = F(DEMO, tz="Europe/Riga")
    trail = machine.start(f, "1", None, at("2026-12-02 20:00")).trail
    assert [(t.node, t.outcome) for t in trail] == [("a", "closed"), ("closed", "")]
    assert "outside 09:00-12:00, 13:00-17:00" in trail[0].why


# ------------------------------------------------------------------ media contract

def test_media_request_encoding():
    req = media.request("menu", (("prompt", "hello world"), ("valid", "1,2")), "127.0.0.1:5080")
    assert req.ruri == "sip:menu@127.0.0.1:5080"
    assert req.header == "X-Kemi-App: menu;prompt=hello%20world;valid=1%2C2"


@pytest.mark.parametrize("status,outcome,digits,expected", [
    (302, "done", None, media.MediaResult("done")),
    (302, "DIGITS", "12#", media.MediaResult("digits", "12#")),
    (302, "digits", "", media.MediaResult("error")),
    (302, "digits", "1;x", media.MediaResult("error")),
    (302, "timeout", None, media.MediaResult("timeout")),
    (302, "weird", None, media.MediaResult("error")),
    (302, None, None, media.MediaResult("error")),
    (503, "done", None, media.MediaResult("error")),
    (408, None, None, media.MediaResult("error")),
])
def test_media_result_decoding(status, outcome, digits, expected):
    assert media.result(status, outcome, digits) == expected


# ------------------------------------------------------------------ property: no call loops forever

NODE_IDS = [f"n{i}" for i in range(8)]
SIMPLE = {
    "caller": lambda: {"prefix": "1"},
    "notify": lambda: {"url": "http://h.example/"},
    "sip": lambda: {"number": "77721401"},
    "queue": lambda: {"number": "6000"},
    "hunt": lambda: {"number": "8008001"},
    "time": lambda: {"hours": {"mon-fri": ["09:00-17:00"]}},
    "http_route": lambda: {"url": "http://h.example/"},
    "lookup": lambda: {"url": "http://h.example/"},
    "reject": lambda: {"code": 480},
    "play": lambda: {"audio": "a"},
    "email": lambda: {"to": "a@example.com"},
}


@st.composite
def any_flow(draw):
    """Random graphs over random node types; most are invalid, the property is about the valid."""
    count = draw(st.integers(1, len(NODE_IDS)))
    ids = NODE_IDS[:count]
    nodes = {}
    for node_id in ids:
        kind = draw(st.sampled_from(sorted(SIMPLE)))
        nxt = {}
        for outcome in TYPES[kind].outcomes:
            if draw(st.booleans()):
                nxt[outcome] = draw(st.sampled_from(ids))
        nodes[node_id] = {"type": kind, **SIMPLE[kind](), "next": nxt}
    return F(nodes, start="n0")


@st.composite
def valid_flow(draw):
    """Valid by construction: outcomes lead only forward (a DAG), required outcomes wired,
    nodes no outcome reaches are dropped."""
    count = draw(st.integers(1, len(NODE_IDS)))
    ids = NODE_IDS[:count]
    nodes = {}
    for i, node_id in enumerate(ids):
        later = ids[i + 1:]
        kinds = sorted(k for k in SIMPLE if not TYPES[k].required_outcomes or later)
        kind = draw(st.sampled_from(kinds))
        nxt = {}
        for outcome in TYPES[kind].outcomes:
            if later and (outcome in TYPES[kind].required_outcomes or draw(st.booleans())):
                nxt[outcome] = draw(st.sampled_from(later))
        nodes[node_id] = {"type": kind, **SIMPLE[kind](), "next": nxt}
    reachable, todo = {"n0"}, ["n0"]
    while todo:
        for target in nodes[todo.pop()]["next"].values():
            if target not in reachable:
                reachable.add(target)
                todo.append(target)
    return F({k: v for k, v in nodes.items() if k in reachable}, start="n0")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(valid_flow(), st.lists(st.sampled_from(["no_answer", "busy", "failed", "timeout", "no_agents", "exhausted",
                                             "1", "3", "5", "error", "next", "done"]), max_size=30),
       st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1)))
def test_no_valid_flow_loops_forever(flow, outcomes, when):
    assert validate.validate(flow) == []
    now = when.replace(tzinfo=UTC)
    result = machine.start(flow, "0301234567", None, now)
    visited = result.state.steps
    for name in outcomes:
        if result.state.ended:
            break
        result = machine.step(flow, result.state, Outcome(name, now))
        visited = result.state.steps
        assert Reply(*machine.LOOP_GUARD) not in result.actions, "the step budget must never be needed"
    assert visited <= len(flow.nodes)


@given(any_flow())
def test_every_cycle_is_refused(flow):
    if validate.find_cycle(flow) is not None:
        assert any("cycle" in e.rule for e in validate.validate(flow))
