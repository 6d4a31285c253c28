"""kemictl subcommands for agent state (issue 12): what the agent keys do from a phone, and
the per-queue auto-pause limit. The changes themselves are kemi/agent_state.py's, shared with
the SIP workers.

    kemictl agent show NUMBER               every membership with its state and pause reason
    kemictl agent pause NUMBER [REASON]     like *63[REASON] (REASON: digits or a word, default break)
    kemictl agent unpause NUMBER            like *64
    kemictl agent dnd NUMBER                like *65 (toggles)
    kemictl queue auto-pause QUEUE N|off    pause agents after N unanswered offers in a row
    kemictl queue progress-interval QUEUE N|default   182 Queued again every N s (default 60)
"""
from __future__ import annotations

import re

from kemi import agent_state
from provision.store import ProvisioningError

ACTIONS = ("show", "pause", "unpause", "dnd")
QUEUE_ACTIONS = ("auto-pause", "progress-interval")


def add_agent_parsers(sub) -> None:
    sub.add_parser("show", help="memberships with state and pause reason").add_argument("number")
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


def cmd_agent(args, conn, table) -> None:
    if args.action == "show":
        rows = agent_state.show(conn, args.number)
        if not rows:
            raise ProvisioningError(f"field 'number': {args.number} is no member of any ring-all group or queue")
        print(table(rows, ("kind", "group or queue", "state", "reason")))
        return
    if args.action == "pause":
        if args.reason is not None and not re.fullmatch(r"[a-z0-9_]{1,32}", args.reason):
            raise ProvisioningError("field 'reason': 1-32 characters of a-z, 0-9 and _")
        change = agent_state.pause(conn, args.number, args.reason)
    elif args.action == "unpause":
        change = agent_state.unpause(conn, args.number)
    else:
        change = agent_state.toggle_dnd(conn, args.number)
    if not change.ok:
        raise ProvisioningError(f"field 'number': {change.reason.split(' - ', 1)[-1]}")
    print(f"{args.number}: {change.reason.split(' - ', 1)[-1]}")


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
