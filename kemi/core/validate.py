"""Every rule a flow must pass before it is stored. Errors name the node and the field.

Rules: known node type; required settings present, no unknown settings, each setting in its
range; outcomes known for the type; required outcomes wired; outcomes and start lead to
existing nodes; every node reachable from start; no cycle (a flow is a directed acyclic
graph, so no call can loop forever: menus repeat through their own `retries`); valid time
spec and time zone; HTTP URLs http(s) only; numbers in ring nodes exist with that kind and
are not the flow's own number (which would start the flow again).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from kemi.core import timerules
from kemi.core.flow import Flow, Node
from kemi.core.nodes import TYPES

NUMBER = re.compile(r"^[0-9]{2,32}$")
EXTERNAL = re.compile(r"^\+?[0-9]{2,32}$")
AFFIX = re.compile(r"^[0-9]{0,8}$")
HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
AUDIO = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
EMAIL = re.compile(r"^[^@\s,;<>\"]{1,64}@[A-Za-z0-9.-]{1,190}$")
DIGITS = re.compile(r"^([1-9]|[12][0-9]|3[0-2])-([1-9]|[12][0-9]|3[0-2])$")
MENU_CHOICE = re.compile(r"^[0-9*#]{1,32}$")
MAX_NODES = 200


@dataclass(frozen=True)
class FlowError:
    node: str            # node id, or "flow" for flow-level fields
    field: str
    rule: str

    def __str__(self) -> str:
        return f"node {self.node} field {self.field}: {self.rule}" if self.node != "flow" \
            else f"field {self.field}: {self.rule}"


@dataclass(frozen=True)
class Numbers:
    """What the numbers of this proxy are, for checking ring nodes (None: not checked)."""
    subscribers: frozenset[str] = frozenset()
    hunt: frozenset[str] = frozenset()        # service numbers and hunt members
    ringall: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()

    def kind(self, number: str) -> str | None:
        for kind, numbers in (("queue", self.queues), ("ring-all group", self.ringall),
                              ("hunt group", self.hunt), ("SIP number", self.subscribers)):
            if number in numbers:
                return kind
        return None


def _text(value: object, limit: int) -> str | None:
    if not isinstance(value, str) or not value or len(value) > limit or any(c in value for c in "\r\n\0"):
        return f"must be text of 1 to {limit} characters on one line"
    return None


def _int(value: object, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"must be a whole number from {low} to {high}"
    return None


def _seconds(value: object, low: float, high: float) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        return f"must be a number of seconds from {low:g} to {high:g}"
    return None


def _url(value: object) -> str | None:
    if not isinstance(value, str) or any(c in value for c in "\r\n\0 "):
        return "must be an http:// or https:// URL without spaces"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme or '(none)'!r} is not allowed: only http and https"
    if not parts.hostname:
        return "must name a host"
    return None


def _setting_rule(node: Node, name: str, value: object, numbers: Numbers | None, own: str | None) -> str | None:
    t = node.type
    if name == "number":
        pattern = EXTERNAL if t == "external" else NUMBER
        if not isinstance(value, str) or not pattern.match(value):
            return "must be a number of 2 to 32 digits, as text (quote it in YAML)"
        if own is not None and value == own and t != "external":
            return f"{value} is this flow's own number: the call would start the flow again"
        if numbers is not None and t != "external":
            want, pool = {"sip": ("SIP number", numbers.subscribers), "hunt": ("hunt group", numbers.hunt),
                          "ringall": ("ring-all group", numbers.ringall), "queue": ("queue", numbers.queues)}[t]
            if value not in pool:
                have = numbers.kind(value)
                return f"{value} is not a {want}" + (f" (it is a {have})" if have else " (no such number)")
        return None
    if name == "ring_timeout":
        return _int(value, 1, 600)
    if name == "window":
        return _int(value, 1, 2592000)
    if name == "code":
        return _int(value, 400, 699)
    if name in ("reason", "subject"):
        return _text(value, 120)
    if name in ("prefix", "suffix", "strip_prefix"):
        return None if isinstance(value, str) and AFFIX.match(value) else "must be 0 to 8 digits, as text"
    if name == "display_tag":
        return _text(value, 32) or (None if '"' not in str(value) and "\\" not in str(value)
                                    else "must not contain quotes or backslashes")
    if name == "url":
        return _url(value)
    if name == "header":
        return None if isinstance(value, str) and HEADER.match(value) else "must be an HTTP header name"
    if name == "token":
        return _text(value, 512)
    if name == "ttl":
        return _int(value, 0, 86400)
    if name == "timeout":
        return _int(value, 1, 60) if t == "menu" else _seconds(value, 0.1, 10)
    if name == "to":
        addrs = value if isinstance(value, list) else [value]
        if not addrs or len(addrs) > 10 or not all(isinstance(a, str) and EMAIL.match(a) for a in addrs):
            return "must be an email address or a list of at most 10"
        return None
    if name in ("audio", "prompt", "invalid"):
        return None if isinstance(value, str) and AUDIO.match(value) else "must be an audio name: letters, digits, _ . -"
    if name == "box":
        return None if isinstance(value, str) and NUMBER.match(value) else "must be a box number of 2 to 32 digits"
    if name == "loop":
        return _int(value, 1, 100)
    if name == "retries":
        return _int(value, 0, 9)
    if name == "digits":
        match = DIGITS.match(str(value))
        return None if match and int(match.group(1)) <= int(match.group(2)) else 'must be "MIN-MAX" digits, 1 to 32'
    if name == "valid":
        if not isinstance(value, list) or not all(isinstance(v, str) and re.match(r"^[0-9*#]{1,32}$", v) for v in value):
            return "must be a list of digit strings"
        return None
    return None


def validate(flow: Flow, numbers: Numbers | None = None, own_number: str | None = None) -> list[FlowError]:
    """All errors at once, in node order; an empty list means the flow may be stored."""
    errors: list[FlowError] = []
    try:
        timerules.zone(flow.timezone)
    except timerules.TimeSpecError as err:
        errors.append(FlowError("flow", err.field, err.rule))
    if len(flow.nodes) > MAX_NODES:
        errors.append(FlowError("flow", "nodes", f"at most {MAX_NODES} nodes"))
    if flow.start not in flow.nodes:
        errors.append(FlowError("flow", "start", f"{flow.start!r} is not a node of this flow"))
    for node in flow.nodes.values():
        errors.extend(_node_errors(node, flow, numbers, own_number))
    if flow.start in flow.nodes:
        reachable = _reachable(flow)
        for node_id in flow.nodes:
            if node_id not in reachable:
                errors.append(FlowError(node_id, "id", f"unreachable: no outcome leads here from start {flow.start!r}"))
        cycle = find_cycle(flow)
        if cycle:
            errors.append(FlowError(cycle[0], "next", "cycle " + " -> ".join(cycle)
                                    + ": a call could loop forever (menus repeat with `retries`)"))
    return errors


def _node_errors(node: Node, flow: Flow, numbers: Numbers | None, own: str | None) -> list[FlowError]:
    spec = TYPES.get(node.type)
    if spec is None:
        return [FlowError(node.id, "type", f"unknown type {node.type!r} (known: {', '.join(sorted(TYPES))})")]
    errors = []
    allowed = set(spec.required) | set(spec.optional)
    for name in spec.required:
        if name not in node.settings:
            errors.append(FlowError(node.id, name, f"is required for a {node.type} node"))
    for name, value in node.settings.items():
        if name not in allowed:
            errors.append(FlowError(node.id, name, f"unknown setting for a {node.type} node"
                                    + (f" (allowed: {', '.join(sorted(allowed))})" if allowed else " (it takes none)")))
            continue
        rule = _setting_rule(node, name, value, numbers, own)
        if rule:
            errors.append(FlowError(node.id, name, rule))
    if node.type == "time":
        try:
            timerules.parse(node.settings)
        except timerules.TimeSpecError as err:
            errors.append(FlowError(node.id, err.field, err.rule))
    if node.type == "menu":
        errors.extend(_menu_errors(node))
    for outcome, target in node.next.items():
        if outcome not in spec.outcomes and not (node.type == "menu" and MENU_CHOICE.match(outcome)):
            errors.append(FlowError(node.id, f"next.{outcome}", f"a {node.type} node has no outcome {outcome!r}"
                                    + (f" (outcomes: {', '.join(spec.outcomes)})" if spec.outcomes else " (it ends the call)")))
        elif target not in flow.nodes:
            errors.append(FlowError(node.id, f"next.{outcome}", f"leads to {target!r}, which is not a node of this flow"))
    for outcome in spec.required_outcomes:
        if outcome not in node.next:
            errors.append(FlowError(node.id, f"next.{outcome}", f"a {node.type} node needs outcome {outcome!r} to lead somewhere"))
    return errors


def _menu_errors(node: Node) -> list[FlowError]:
    choices = [o for o in node.next if o not in ("timeout", "invalid", "error")]
    if not choices:
        return [FlowError(node.id, "next", "a menu needs at least one digit outcome")]
    valid = node.settings.get("valid")
    if isinstance(valid, list) and valid and set(choices) - set(valid):
        return [FlowError(node.id, "next", f"outcomes {sorted(set(choices) - set(valid))} are not in valid")]
    return []


def _edges(flow: Flow, node_id: str) -> list[str]:
    node = flow.nodes.get(node_id)
    return [t for t in node.next.values() if t in flow.nodes] if node else []


def _reachable(flow: Flow) -> set[str]:
    seen, todo = {flow.start}, [flow.start]
    while todo:
        for target in _edges(flow, todo.pop()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def find_cycle(flow: Flow) -> list[str] | None:
    """A cycle as a path (first node repeated at the end), or None. Iterative DFS, colours."""
    colour: dict[str, int] = {}
    for root in sorted(flow.nodes, key=lambda n: n != flow.start):
        if colour.get(root):
            continue
        stack: list[tuple[str, list[str]]] = [(root, _edges(flow, root))]
        path = [root]
        colour[root] = 1
        while stack:
            node_id, pending = stack[-1]
            if not pending:
                colour[node_id] = 2
                stack.pop()
                path.pop()
                continue
            target = pending.pop(0)
            if colour.get(target) == 1:
                return path[path.index(target):] + [target]
            if not colour.get(target):
                colour[target] = 1
                path.append(target)
                stack.append((target, _edges(flow, target)))
    return None
