"""kemictl subcommands for agent state (issues 11, 12): what the agent keys do from a phone,
live state and statistics, and the per-queue auto-pause limit. The decisions are
kemi/core/agent_machine.py's; kemictl writes PostgreSQL (kemi/agent_state.py) and pushes the
change into Kamailio's shared memory over its RPC socket (htable agentst, and the agent's
number into agentev for the dispatcher), so the change is live when the command returns.
No directory reload happens.

    kemictl agent login NUMBER [WHERE]       in to every queue and ring-all group, or one (name or number)
    kemictl agent logout NUMBER [WHERE]      out of them
    kemictl agent pause NUMBER [REASON]      like *63[REASON] (REASON: 1-32 of a-z, 0-9, _; default break)
    kemictl agent unpause NUMBER             like *64
    kemictl agent dnd NUMBER                 like *65 (toggles)
    kemictl agent status [NUMBER]            live state and queue statistics (all agents without NUMBER)
    kemictl agent show NUMBER                the same for one agent
    kemictl queue auto-pause QUEUE N|off     pause agents after N unanswered offers in a row
    kemictl queue progress-interval QUEUE N|default   182 Queued again every N s (default 60)

The state read before a change is Kamailio's live one (a phone may have changed it a moment
ago); without a running Kamailio it is the database's, and the change applies at its start.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

from kemi import agent_state, names
from kemi.core import agent_machine as am
from kemi.core.agent_machine import Membership
from provision.bans import Rpc
from provision.store import ProvisioningError

ACTIONS = ("show", "status", "login", "logout", "pause", "unpause", "dnd")
QUEUE_ACTIONS = ("auto-pause", "progress-interval")
NUMBER = re.compile(r"[0-9]{2,32}")


def add_agent_parsers(sub) -> None:
    sub.add_parser("show", help="memberships with live state and statistics").add_argument("number")
    p = sub.add_parser("status", help="live state and queue statistics of one agent or of all")
    p.add_argument("number", nargs="?")
    p = sub.add_parser("pause", help="pause in every queue logged in to (like *63 on the phone)")
    p.add_argument("number")
    p.add_argument("reason", nargs="?", help="reason code: 1-32 of a-z, 0-9, _ (default break)")
    sub.add_parser("unpause", help="undo a pause (like *64)").add_argument("number")
    sub.add_parser("dnd", help="toggle do not disturb (like *65)").add_argument("number")


def add_queue_parsers(sub) -> None:
    p = sub.add_parser("auto-pause", help="pause an agent after N unanswered offers in a row ('off': never)")
    p.add_argument("name")
    p.add_argument("limit", help="1..100 or off")
    p = sub.add_parser("progress-interval", help="seconds between the 182 Queued waiting callers get again")
    p.add_argument("name")
    p.add_argument("seconds", help="1..600 or default (60)")


class Live:
    """Kamailio's shared memory over RPC; `None` tables when Kamailio is not running."""

    def __init__(self, var_dir: str):
        from kemi.config import ROOT
        self.rpc = Rpc(Path(ROOT, var_dir, "run", "kamailio-ctl.sock"))
        self.running = self.rpc.socket_path.exists()

    def table(self, name: str) -> dict[str, str] | None:
        if not self.running:
            return None
        try:
            return self.rpc.dump(name)
        except ProvisioningError:
            self.running = False
            return None

    def push(self, number: str, changed) -> bool:
        if not self.running or not changed:
            return self.running
        for m in changed:
            out = self.rpc.call("htable.sets", names.AGENT_STATE_TABLE, f"s:{names.agent_key(m.kind, m.group, number)}",
                                f"s:{am.encode_state(m)}")
            if "error" in out.lower():
                raise ProvisioningError(f"Kamailio refused the change: {out.strip()}")
        self.rpc.call("htable.sets", names.AGENT_EVENT_TABLE, f"s:{time.time_ns()}.ctl.{number}", f"s:{number}")
        return True


def _live_memberships(stored: tuple[Membership, ...], number: str, live: dict[str, str] | None):
    if live is None:
        return stored
    out = []
    for m in stored:
        decoded = am.decode_state(live.get(names.agent_key(m.kind, m.group, number)))
        out.append(Membership(m.kind, m.group, *decoded) if decoded else m)
    return tuple(out)


def _check_number(number: str) -> None:
    if not NUMBER.fullmatch(number):
        raise ProvisioningError("field 'number': 2-32 digits")


def cmd_agent(args, conn, table) -> None:
    from kemi.config import Settings
    live = Live(Settings.from_env().var_dir)
    if args.action in ("show", "status"):
        return _status(conn, table, live, args.number)
    _check_number(args.number)
    ms = _live_memberships(agent_state.memberships(conn, args.number), args.number, live.table(names.AGENT_STATE_TABLE))
    if args.action in ("login", "logout"):
        result = _login(conn, args.number, ms, args.where, args.action == "login")
    elif args.action == "pause":
        if args.reason is not None and not am.REASON.fullmatch(args.reason):
            raise ProvisioningError("field 'reason': 1-32 characters of a-z, 0-9 and _")
        result = am.pause(args.number, ms, args.reason)
    elif args.action == "unpause":
        result = am.unpause(args.number, ms)
    else:
        result = am.toggle_dnd(args.number, ms)
    if not result.ok:
        raise ProvisioningError(f"field 'number': {result.text}")
    with conn.transaction():
        agent_state.save(conn, args.number, result.changed, time.time())
    pushed = live.push(args.number, result.changed)
    print(f"{args.number}: {result.text}")
    if not pushed:
        print("note: Kamailio is not running; the change applies when it starts")


def _login(conn, number: str, ms, where: str | None, logged_in: bool) -> am.Result:
    if where is None:
        return am.login(number, ms, None, logged_in)
    groups = agent_state.names(conn)
    match = [(kind, n) for (kind, n), name in groups.items() if where in (name, n)]
    if not match:
        raise ProvisioningError(f"field 'where': no ring-all group or queue {where!r}")
    kind, group = match[0]
    return am.login(number, ms, group, logged_in, kind)


def _status(conn, table, live: Live, number: str | None) -> None:
    if number is not None:
        _check_number(number)
    rows = conn.execute(
        "SELECT m.number, m.kind, m.grp, m.name, m.logged_in, m.paused_reason, coalesce(s.answered, 0), "
        "coalesce(s.talk_seconds, 0), coalesce(s.last_end, 0), coalesce(s.unanswered, 0) FROM ("
        " SELECT a.number, 'q' AS kind, q.number AS grp, q.name, a.logged_in, a.paused_reason"
        " FROM queue_agent a JOIN queue q ON q.id = a.queue_id"
        " UNION ALL SELECT r.number, 'g', g.number, g.name, r.logged_in, r.paused_reason"
        " FROM ringall_member r JOIN ringall_group g ON g.id = r.group_id) m"
        " LEFT JOIN agent_stat s ON m.kind = 'q' AND s.queue_number = m.grp AND s.number = m.number"
        " WHERE %(n)s::text IS NULL OR m.number = %(n)s ORDER BY 1, 2 DESC, 4", {"n": number}).fetchall()
    if not rows:
        raise ProvisioningError(f"field 'number': {number} is no member of any ring-all group or queue" if number
                                else "field 'number': no agents provisioned")
    states = live.table(names.AGENT_STATE_TABLE)
    stats = live.table(names.AGENT_STAT_TABLE)
    out = []
    for agent, kind, group, name, logged_in, paused, *stored in rows:
        decoded = am.decode_state(states.get(names.agent_key(kind, group, agent))) if states is not None else None
        state, reason = decoded or agent_state.state_of(logged_in, paused)
        shown = {am.IN: "logged in", am.OUT: "logged out"}.get(state, "dnd" if reason == am.DND else "paused")
        figures = ("", "", "", "")
        if kind == am.QUEUE:
            values = dict(zip(names.STAT_FIELDS, stored))
            if stats is not None:
                values = {f: int(stats.get(names.stat_key(f, group, agent), 0) or 0) for f in names.STAT_FIELDS}
            end = int(values["end"])
            figures = (str(values["ans"]), str(values["talk"]),
                       time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(end)) if end else "-", str(values["miss"]))
        out.append((agent, "queue" if kind == am.QUEUE else "ringall", f"{name} ({group})", shown, reason, *figures))
    print(table(out, ("agent", "kind", "group or queue", "state", "reason", "answered", "talk s", "last call end",
                      "unanswered")))
    if states is None:
        print("note: Kamailio is not running; shown as stored in the database")


def cmd_queue(args, conn) -> None:
    if args.action == "progress-interval":
        raw = args.seconds.strip().lower()
        if raw != "default" and not (raw.isdigit() and 1 <= int(raw) <= 600):
            raise ProvisioningError("field 'seconds': a number 1..600 or 'default'")
        seconds = None if raw == "default" else int(raw)
        if conn.execute("UPDATE queue SET progress_interval = %s WHERE name = %s", [seconds, args.name]).rowcount == 0:
            raise ProvisioningError(f"field 'queue': no queue named {args.name!r}")
        print(f"queue {args.name!r}: 182 Queued every {seconds or 60} s while a caller waits")
        return
    raw = args.limit.strip().lower()
    if raw == "off":
        limit = None
    elif raw.isdigit():
        limit = int(raw)
    else:
        raise ProvisioningError("field 'limit': a number 1..100 or 'off'")
    try:
        agent_state.set_auto_pause(conn, args.name, limit)
    except ValueError as err:
        raise ProvisioningError(str(err)) from None
    print(f"queue {args.name!r}: " + (f"agents paused after {limit} unanswered offers in a row" if limit
                                      else "no auto-pause"))
