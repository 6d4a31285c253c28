"""kemictl flow: import / export / remove / list / trace call flows.

Import validates with the same core the proxy runs (kemi.core.validate) against the numbers
provisioned now, in one transaction; trace runs the proxy's state machine
(kemi.core.machine) with answers the operator chooses, and prints the path node by node.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import dataclass
from typing import Any

import psycopg
import yaml

from kemi.core import flow as flowmod
from kemi.core import machine, timerules, validate
from kemi.core.machine import Email, HttpGet, HttpRoute, Media, Notify, Outcome, Reply, Ring
from kemi.store import load_directory
from provision.store import LOCK, ProvisioningError, check_number, number_owner

FLOW_LOCK = LOCK + "; LOCK TABLE flow IN SHARE ROW EXCLUSIVE MODE"
MAX_BYTES = 256 * 1024


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors/aliases: an alias bomb cannot expand into gigabytes."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed in flow files")
        return super().compose_node(parent, index)


def read_doc(path: str, text: str | None = None) -> object:
    """A flow file: YAML or JSON (JSON is YAML too); `-` reads stdin."""
    if text is None:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    if len(text.encode()) > MAX_BYTES:
        raise ProvisioningError(f"file {path}: larger than {MAX_BYTES // 1024} kB")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as err:
        raise ProvisioningError(f"file {path}: not valid YAML or JSON: {err}") from None


def numbers_of(directory) -> validate.Numbers:
    return validate.Numbers(frozenset(n for n, s in directory.subscribers.items() if s.active),
                            frozenset(directory.services) | frozenset(directory.members),
                            frozenset(directory.ringall), frozenset(directory.queues))


def parse_and_check(doc: object, directory, number: str) -> flowmod.Flow:
    try:
        flow = flowmod.parse(doc)
    except flowmod.FlowShapeError as err:
        raise ProvisioningError(f"{err.where}: {err.rule}") from None
    errors = validate.validate(flow, numbers_of(directory), own_number=number)
    if errors:
        raise ProvisioningError(f"flow for {number} refused ({len(errors)} error{'s' if len(errors) > 1 else ''}):\n  "
                                + "\n  ".join(map(str, errors)))
    return flow


def import_flow(conn: psycopg.Connection, number: str, doc: object) -> int:
    """Validate and store (replace) the flow of `number`; returns its new version."""
    check_number("number", number)
    with conn.transaction():
        conn.execute(FLOW_LOCK)
        directory = load_directory(conn)
        flow = parse_and_check(doc, directory, number)
        row = conn.execute(
            "INSERT INTO flow (number, name, doc) VALUES (%s, %s, %s::jsonb) ON CONFLICT (number) DO UPDATE SET "
            "name = EXCLUDED.name, doc = EXCLUDED.doc, version = flow.version + 1, updated = now() RETURNING version",
            (number, flow.name, flowmod.to_json(flow))).fetchone()
        return int(row[0])


def export_flow(conn: psycopg.Connection, number: str, as_json: bool = False) -> str:
    row = conn.execute("SELECT doc::text FROM flow WHERE number = %s", (number,)).fetchone()
    if row is None:
        raise ProvisioningError(f"field 'number': {number} has no flow")
    doc = flowmod.to_doc(flowmod.from_json(row[0]))
    if as_json:
        return json.dumps(doc, indent=2) + "\n"
    return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def remove_flow(conn: psycopg.Connection, number: str) -> None:
    with conn.transaction():
        if conn.execute("DELETE FROM flow WHERE number = %s", (number,)).rowcount == 0:
            raise ProvisioningError(f"field 'number': {number} has no flow")


def list_flows(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    directory = load_directory(conn)
    rows = conn.execute("SELECT number, name, version, (SELECT count(*) FROM jsonb_object_keys(doc->'nodes')), "
                        "to_char(updated, 'YYYY-MM-DD HH24:MI') FROM flow ORDER BY number").fetchall()
    return [(n, name or "-", v, nodes, (number_owner(directory, n) or "own number").replace("a ", "", 1), when)
            for n, name, v, nodes, when in rows]


# ------------------------------------------------------------------ trace


@dataclass(frozen=True)
class Answers:
    """What the world answers during a trace (no call is placed)."""
    agents_free: int = 0           # ring / queue nodes: answered when > 0
    http_answer: str | None = None  # http_route: body; None = error (timeout)
    name: str | None = None        # caller name lookup result
    last_agent: str | None = None  # routing by call history
    digits: str | None = None      # menu


def _outcome_for(action: machine.Action, answers: Answers) -> tuple[str, str, str] | None:
    """(outcome, value, explanation), or None when the call ends here (answered)."""
    if isinstance(action, Ring):
        if action.kind == "history":
            if answers.last_agent is None:
                return "not_found", "", "no earlier agent for this caller (--last-agent to pretend one)"
            if answers.agents_free > 0:
                return None
            return "no_answer", "", f"last agent {answers.last_agent} does not answer (--agents-free 0)"
        if answers.agents_free > 0:
            return None
        failure = {"sip": "no_answer", "external": "failed", "hunt": "exhausted", "ringall": "exhausted",
                   "queue": "timeout"}[action.kind]
        return failure, "", "nobody answers (--agents-free 0)"
    if isinstance(action, HttpGet):
        name = answers.name or ""
        return "next", name, f"the server answers {name!r}" if name else "no name (--name to pretend one)"
    if isinstance(action, HttpRoute):
        body = (answers.http_answer or "").strip()
        if body in ("1", "2", "3", "4", "5"):
            return body, "", f"the server answers {body}"
        return "error", "", "no usable answer (--http-answer 1..5)" if not body else f"answer {body!r} is not 1..5"
    if isinstance(action, Media):
        if action.app == "menu":
            if answers.digits:
                return "digits", answers.digits, f"the caller presses {answers.digits}"
            return "timeout", "", "the caller presses nothing (--digits to press)"
        return "done", "", "played"
    return None


def trace(flow: flowmod.Flow, caller: str, when: dt.datetime, answers: Answers) -> list[str]:
    lines = []
    result = machine.start(flow, caller, None, when)
    n = 0
    while True:
        for line in result.trail:
            n += 1
            lines.append(f"{n:2}. {line.node} ({line.type})" + (f" -> {line.outcome}" if line.outcome else "")
                         + f": {line.why}")
        for action in result.actions:
            if isinstance(action, Notify):
                lines.append(f"    notification POST {action.url} (the call does not wait)")
            elif isinstance(action, Email):
                lines.append(f"    email to {', '.join(action.to)}: {action.subject!r} (sent by the mailer)")
            elif isinstance(action, Reply):
                lines.append(f"    => the caller gets {action.code} {action.reason}")
        if result.state.ended:
            last = result.actions[-1] if result.actions else None
            if isinstance(last, Media):
                lines.append(f"    => the media service takes the call ({last.app})")
            return lines
        waiting = [a for a in result.actions if isinstance(a, (Ring, HttpGet, HttpRoute, Media))]
        if not waiting:
            return lines
        answer = _outcome_for(waiting[-1], answers)
        if answer is None:
            lines.append("    => answered (--agents-free N > 0): the call is connected, the flow ends")
            return lines
        outcome, value, why = answer
        result = machine.step(flow, result.state, Outcome(outcome, when, value=value, reason=why))


def parse_when(text: str | None, tz_name: str) -> dt.datetime:
    tz = timerules.zone(tz_name)
    if text is None:
        return dt.datetime.now(dt.timezone.utc).astimezone(tz)
    try:
        naive = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ProvisioningError(f"field '--at': {text!r} must be \"YYYY-MM-DD HH:MM\"") from None
    return naive.replace(tzinfo=tz) if naive.tzinfo is None else naive


def trace_number(conn: psycopg.Connection, number: str, caller: str, at: str | None, answers: Answers) -> str:
    directory = load_directory(conn)
    entry = directory.flows.get(number)
    if entry is None:
        owner = number_owner(directory, number)
        raise ProvisioningError(f"field 'number': {number} has no flow"
                                + (f" ({owner} routes as before)" if owner else ""))
    version, text = entry
    flow = flowmod.from_json(text)
    when = parse_when(at, flow.timezone)
    head = (f"flow {number} v{version}" + (f" {flow.name!r}" if flow.name else "")
            + f", call from {caller} at {when:%Y-%m-%d %H:%M} {flow.timezone}")
    return "\n".join([head] + trace(flow, caller, when, answers)) + "\n"


# ------------------------------------------------------------------ command line

def add_parser(top: argparse._SubParsersAction) -> None:   # type: ignore[type-arg]
    fl = top.add_parser("flow", help="call flows: a graph of nodes a number runs (issue 10)")
    fa = fl.add_subparsers(dest="action", required=True)
    imp = fa.add_parser("import", help="validate and store (replace) a number's flow, from YAML or JSON")
    imp.add_argument("number")
    imp.add_argument("file", help="flow.yaml, flow.json or - for stdin")
    exp = fa.add_parser("export", help="print a number's flow")
    exp.add_argument("number")
    exp.add_argument("--json", action="store_true")
    fa.add_parser("remove").add_argument("number")
    fa.add_parser("list")
    tr = fa.add_parser("trace", help="the path a call would take, node by node, and why (no call placed)")
    tr.add_argument("number")
    tr.add_argument("--from", dest="caller", default="0000000000", help="caller number")
    tr.add_argument("--at", help='"YYYY-MM-DD HH:MM" in the flow\'s time zone (default now)')
    tr.add_argument("--http-answer", help="what HTTP routing servers answer (1..5; else error)")
    tr.add_argument("--agents-free", type=int, default=0, help="0: nobody answers; N > 0: answered")
    tr.add_argument("--name", help="what caller name lookups answer")
    tr.add_argument("--last-agent", help="routing by call history finds this agent")
    tr.add_argument("--digits", help="what the caller presses in menus")


def command(args: argparse.Namespace, conn: psycopg.Connection, settings: object) -> None:
    if args.action == "import":
        version = import_flow(conn, args.number, read_doc(args.file))
        print(f"flow of {args.number} stored (version {version}); the next call runs it")
    elif args.action == "export":
        sys.stdout.write(export_flow(conn, args.number, args.json))
    elif args.action == "remove":
        remove_flow(conn, args.number)
        print(f"removed the flow of {args.number}")
    elif args.action == "list":
        from provision.cli import table
        print(table(list_flows(conn), ("number", "name", "version", "nodes", "number is", "updated")))
    elif args.action == "trace":
        answers = Answers(args.agents_free, args.http_answer, args.name, args.last_agent, args.digits)
        sys.stdout.write(trace_number(conn, args.number, args.caller, args.at, answers))
