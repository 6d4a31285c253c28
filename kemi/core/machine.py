"""The per-call flow state machine: `step(flow, state, event) -> Result(state, actions, trail)`.

Pure: the clock comes in every event, everything the outside world learned comes in as an
`Outcome`. The machine runs the pure nodes (time routing, caller change, reject,
notifications) at once and stops at the first node that needs the world (ringing, HTTP,
media), returning the action for the adapter and waiting for that node's outcome. The
proxy (kemi/flow_engine.py) and `kemictl flow trace` run this same code.

    Start ──► [pure nodes ...] ──► waiting at node N ──Outcome(o)──► [pure nodes ...] ──► ...
                                         └── answered / Reply / terminal node ──► ended

A valid flow is acyclic, so a call visits each node at most once; `budget` is a second
fence (a call never takes more steps than the flow has nodes) that a property test proves
is never reached for valid flows.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from kemi.core import timerules
from kemi.core.flow import Flow, Node
from kemi.core.nodes import TYPES

# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class Start:
    now: dt.datetime


@dataclass(frozen=True)
class Outcome:
    name: str                 # the outcome of the node the call waits at
    now: dt.datetime
    value: str = ""           # a looked-up name, the digits of a menu
    code: int = 0             # the final SIP reply behind a ring failure, if any
    reason: str = ""


Event = Start | Outcome

# ------------------------------------------------------------------ actions


@dataclass(frozen=True)
class Ring:
    kind: str                 # sip / external / hunt / ringall / queue / history
    number: str               # "" for history
    ring_timeout: int | None = None
    window: int | None = None  # history: seconds to look back


@dataclass(frozen=True)
class SetCaller:
    number: str
    display: str | None


@dataclass(frozen=True)
class Reply:
    code: int
    reason: str


@dataclass(frozen=True)
class HttpGet:
    """Caller name lookup: the outcome is `next` with the name (or "") as value."""
    url: str
    header: str | None
    token: str | None
    ttl: int
    timeout: float


@dataclass(frozen=True)
class HttpRoute:
    url: str
    header: str | None
    token: str | None
    timeout: float


@dataclass(frozen=True)
class Notify:
    """Fire-and-forget JSON POST; the flow does not wait."""
    url: str
    header: str | None
    token: str | None


@dataclass(frozen=True)
class Email:
    """Queued for the mailer process; the flow does not wait."""
    to: tuple[str, ...]
    subject: str


@dataclass(frozen=True)
class Media:
    app: str                  # voicemail / vmaccess / play / menu
    params: tuple[tuple[str, str], ...]
    terminal: bool


Action = Ring | SetCaller | Reply | HttpGet | HttpRoute | Notify | Email | Media

# ------------------------------------------------------------------ state


@dataclass(frozen=True)
class State:
    caller: str
    display: str | None
    node: str = ""            # the node waiting for an outcome; "" before start
    steps: int = 0            # nodes visited
    ended: bool = False


@dataclass(frozen=True)
class TraceLine:
    node: str
    type: str
    outcome: str
    why: str


@dataclass(frozen=True)
class Result:
    state: State
    actions: tuple[Action, ...]
    trail: tuple[TraceLine, ...]


# When an outcome is not wired, these stand in for it (then the call ends).
FALLBACK = {("sip", "busy"): "no_answer", ("sip", "failed"): "no_answer", ("queue", "no_agents"): "timeout",
            ("history", "no_answer"): "not_found", ("time", "holiday"): "closed", ("play", "error"): "done",
            ("menu", "timeout"): "invalid", ("menu", "error"): "invalid"}

# The reply when an outcome leads nowhere: (type, outcome) -> (code, reason).
END_REPLY = {
    ("time", "closed"): (480, "Temporarily Unavailable - closed"),
    ("time", "holiday"): (480, "Temporarily Unavailable - closed for a holiday"),
    ("sip", "no_answer"): (480, "Temporarily Unavailable - no answer"),
    ("sip", "busy"): (486, "Busy Here"),
    ("external", "failed"): (503, "Service Unavailable - the external call failed"),
    ("hunt", "exhausted"): (480, "Temporarily Unavailable - no member answered"),
    ("ringall", "exhausted"): (480, "Temporarily Unavailable - nobody answered"),
    ("queue", "timeout"): (480, "Queue Timeout - no agent became free"),
    ("history", "not_found"): (480, "Temporarily Unavailable - no earlier agent"),
    ("http_route", "error"): (500, "Server Internal Error - HTTP routing failed"),
    ("menu", "invalid"): (480, "Temporarily Unavailable - no valid choice"),
}
DEFAULT_END = (480, "Temporarily Unavailable - the flow ends here")
LOOP_GUARD = (500, "Server Internal Error - flow step budget exhausted")


def budget(flow: Flow) -> int:
    return len(flow.nodes)


def start(flow: Flow, caller: str, display: str | None, now: dt.datetime) -> Result:
    return step(flow, State(caller, display), Start(now))


def step(flow: Flow, state: State, event: Event) -> Result:
    if state.ended:
        return Result(state, (), ())
    if isinstance(event, Start):
        if state.node:
            return Result(state, (), ())          # already started: ignore a repeat
        return _run(flow, state, flow.start, event.now, [], [])
    if not state.node or state.node not in flow.nodes:
        return Result(replace(state, ended=True), (Reply(*LOOP_GUARD),), ())
    node = flow.nodes[state.node]
    actions: list[Action] = []
    trail: list[TraceLine] = []
    outcome = event.name
    if node.type == "lookup":
        name = event.value.strip()[:64]
        if name and name != state.display:
            state = replace(state, display=name)
            actions.append(SetCaller(state.caller, name))
        trail.append(TraceLine(node.id, node.type, "next", f"name {name!r}" if name else "no name: caller unchanged"))
        outcome = "next"
    elif node.type == "menu" and outcome == "digits":
        outcome = event.value if event.value in node.next else "invalid"
        trail.append(TraceLine(node.id, node.type, outcome, f"digits {event.value!r}"))
    else:
        trail.append(TraceLine(node.id, node.type, outcome, event.reason or f"outcome {outcome}"))
    return _follow(flow, state, node, outcome, event, actions, trail)


def _follow(flow: Flow, state: State, node: Node, outcome: str, event: Event,
            actions: list[Action], trail: list[TraceLine]) -> Result:
    target = _target(node, outcome)
    if target is None:
        code, reason = END_REPLY.get((node.type, outcome), DEFAULT_END)
        if isinstance(event, Outcome) and event.code >= 400 and node.type in ("hunt", "ringall", "external"):
            code, reason = event.code, event.reason or reason   # the group's own final reply
        actions.append(Reply(code, reason))
        return Result(replace(state, node="", ended=True), tuple(actions), tuple(trail))
    return _run(flow, state, target, event.now, actions, trail)


def _target(node: Node, outcome: str) -> str | None:
    seen = set()
    while outcome not in node.next:
        if outcome in seen:
            return None
        seen.add(outcome)
        fallback = FALLBACK.get((node.type, outcome))
        if fallback is None:
            return None
        outcome = fallback
    return node.next[outcome]


def _run(flow: Flow, state: State, node_id: str, now: dt.datetime,
         actions: list[Action], trail: list[TraceLine]) -> Result:
    """Enter nodes until one waits for the world or the call ends."""
    while True:
        if state.steps >= budget(flow) or node_id not in flow.nodes:
            actions.append(Reply(*LOOP_GUARD))
            return Result(replace(state, node="", ended=True), tuple(actions), tuple(trail))
        node = flow.nodes[node_id]
        state = replace(state, steps=state.steps + 1, node=node.id)
        spec = TYPES[node.type]
        s = node.settings
        if node.type == "time":
            decision = timerules.decide(timerules.parse(s), timerules.zone(flow.timezone), now)
            trail.append(TraceLine(node.id, node.type, decision.outcome, decision.why))
            outcome = decision.outcome
        elif node.type == "caller":
            number = state.caller
            strip = str(s.get("strip_prefix", ""))
            if strip and number.startswith(strip):
                number = number[len(strip):]
            number = f"{s.get('prefix', '')}{number}{s.get('suffix', '')}"
            display = state.display
            tag = s.get("display_tag")
            if tag:
                display = f"{tag} {display}" if display else str(tag)
            state = replace(state, caller=number, display=display)
            actions.append(SetCaller(number, display))
            trail.append(TraceLine(node.id, node.type, "next", f"caller now {number}" + (f" {display!r}" if display else "")))
            outcome = "next"
        elif node.type == "reject":
            code, reason = int(s["code"]), str(s.get("reason") or "Rejected by the flow")
            actions.append(Reply(code, reason))
            trail.append(TraceLine(node.id, node.type, "", f"reply {code} {reason}"))
            return Result(replace(state, node="", ended=True), tuple(actions), tuple(trail))
        elif node.type == "notify":
            actions.append(Notify(str(s["url"]), _opt(s, "header"), _opt(s, "token")))
            trail.append(TraceLine(node.id, node.type, "next", f"POST {s['url']} (not waited for)"))
            outcome = "next"
        elif node.type == "email":
            to = s["to"] if isinstance(s["to"], list) else [s["to"]]
            actions.append(Email(tuple(map(str, to)), str(s.get("subject") or "Missed call")))
            trail.append(TraceLine(node.id, node.type, "next", f"email to {', '.join(map(str, to))} (queued)"))
            outcome = "next"
        else:
            action = _waiting_action(node)
            actions.append(action)
            trail.append(TraceLine(node.id, node.type, "", _describe(action)))
            if spec.terminal:
                return Result(replace(state, ended=True), tuple(actions), tuple(trail))
            return Result(state, tuple(actions), tuple(trail))
        target = _target(node, outcome)
        if target is None:
            return _follow(flow, state, node, outcome, Start(now), actions, trail)
        node_id = target


def _opt(settings: dict[str, object], name: str) -> str | None:
    value = settings.get(name)
    return None if value is None else str(value)


def _waiting_action(node: Node) -> Action:
    s = node.settings
    if node.type in ("sip", "external", "hunt", "ringall", "queue"):
        timeout = s.get("ring_timeout")
        return Ring(node.type, str(s["number"]), int(timeout) if isinstance(timeout, int) else None)
    if node.type == "history":
        timeout = s.get("ring_timeout")
        return Ring("history", "", int(timeout) if isinstance(timeout, int) else None, int(s["window"]))
    if node.type == "lookup":
        return HttpGet(str(s["url"]), _opt(s, "header"), _opt(s, "token"), int(s.get("ttl", 300)),
                       float(s.get("timeout", 1.5)))
    if node.type == "http_route":
        return HttpRoute(str(s["url"]), _opt(s, "header"), _opt(s, "token"), float(s.get("timeout", 1.5)))
    # media nodes: the settings become the X-Kemi-App parameters (kemi.core.media)
    from kemi.core import media
    return Media(node.type, media.params(node), TYPES[node.type].terminal)


def _describe(action: Action) -> str:
    if isinstance(action, Ring):
        if action.kind == "history":
            return f"ring the last agent of this caller within {action.window}s"
        return f"ring {action.kind} {action.number}" + (f" for {action.ring_timeout}s" if action.ring_timeout else "")
    if isinstance(action, HttpGet):
        return f"GET {action.url} (at most {action.timeout:g}s, cached {action.ttl}s)"
    if isinstance(action, HttpRoute):
        return f"GET {action.url} (at most {action.timeout:g}s): body 1..5 picks the outcome"
    if isinstance(action, Media):
        return f"media service: {action.app} " + ";".join(f"{k}={v}" for k, v in action.params)
    return type(action).__name__
