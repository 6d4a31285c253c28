"""The flow model: a directed graph of nodes, each with a type, settings and named outcomes
that lead to other nodes. Parsed from plain data (a YAML or JSON document):

    name: sales-line              # optional label (journal, logs)
    timezone: Europe/Riga         # time routing is decided in this zone (default UTC)
    start: hours                  # the first node
    nodes:
      hours:
        type: time
        hours: {mon-fri: ["09:00-17:00"]}
        next: {open: sales, closed: closed}
      sales: {type: queue, number: "6000", next: {timeout: closed}}
      closed: {type: reject, code: 480, reason: "Closed"}

An outcome with no next node ends the call with the reply kemi.core.machine states for it.
Parsing checks shapes only (`FlowShapeError`); kemi.core.validate checks the rules.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

NODE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
TOP_KEYS = ("name", "timezone", "start", "nodes")


class FlowShapeError(ValueError):
    """The document is not a flow at all: names the place and the rule."""

    def __init__(self, where: str, rule: str):
        super().__init__(f"{where}: {rule}")
        self.where = where
        self.rule = rule


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    settings: dict[str, Any] = field(default_factory=dict)
    next: dict[str, str] = field(default_factory=dict)      # outcome -> node id


@dataclass(frozen=True)
class Flow:
    start: str
    nodes: dict[str, Node]
    name: str = ""
    timezone: str = "UTC"

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]


def parse(doc: object) -> Flow:
    if not isinstance(doc, dict):
        raise FlowShapeError("flow", "must be a mapping with start and nodes")
    unknown = sorted(set(map(str, doc)) - set(TOP_KEYS))
    if unknown:
        raise FlowShapeError(unknown[0], f"unknown top-level key (allowed: {', '.join(TOP_KEYS)})")
    nodes_doc = doc.get("nodes")
    if not isinstance(nodes_doc, dict) or not nodes_doc:
        raise FlowShapeError("nodes", "must map node ids to nodes, at least one")
    start = doc.get("start")
    if not isinstance(start, str) or not start:
        raise FlowShapeError("start", "must name the first node")
    nodes = {}
    for node_id, body in nodes_doc.items():
        node_id = str(node_id)
        if not NODE_ID.match(node_id):
            raise FlowShapeError(f"node {node_id!r}", "id must start with a letter: letters, digits, _ . - (64 at most)")
        if not isinstance(body, dict):
            raise FlowShapeError(f"node {node_id}", "must be a mapping with a type")
        node_type = body.get("type")
        if not isinstance(node_type, str):
            raise FlowShapeError(f"node {node_id}.type", "is missing")
        nxt = body.get("next", {})
        if isinstance(nxt, str):          # a single-outcome shorthand: next: other_node
            nxt = {"next": nxt}
        if not isinstance(nxt, dict):
            raise FlowShapeError(f"node {node_id}.next", "must map outcomes to node ids")
        for outcome, target in nxt.items():
            if target is not None and not isinstance(target, str):
                raise FlowShapeError(f"node {node_id}.next.{outcome}", "must be a node id or null")
        settings = {str(k): v for k, v in body.items() if k not in ("type", "next")}
        nodes[node_id] = Node(node_id, node_type, settings,
                              {str(k): v for k, v in nxt.items() if v is not None})
    name = doc.get("name", "")
    tz = doc.get("timezone", "UTC")
    if not isinstance(name, str) or not isinstance(tz, str):
        raise FlowShapeError("name" if not isinstance(name, str) else "timezone", "must be text")
    return Flow(start, nodes, name, tz)


def to_doc(flow: Flow) -> dict[str, Any]:
    """The plain-data form (export, storage): parse(to_doc(f)) == f."""
    nodes: dict[str, Any] = {}
    for node in flow.nodes.values():
        body: dict[str, Any] = {"type": node.type, **node.settings}
        if node.next:
            body["next"] = dict(node.next)
        nodes[node.id] = body
    doc: dict[str, Any] = {}
    if flow.name:
        doc["name"] = flow.name
    doc["timezone"] = flow.timezone
    doc["start"] = flow.start
    doc["nodes"] = nodes
    return doc


def to_json(flow: Flow) -> str:
    return json.dumps(to_doc(flow), sort_keys=True, separators=(",", ":"), default=str)


def from_json(text: str) -> Flow:
    return parse(json.loads(text))
