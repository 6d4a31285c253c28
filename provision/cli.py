"""kemictl: provisioning from the command line. Uses the `make run` database unless KEMI_DSN
(or KEMI_PG_PORT) says otherwise. Errors go to stderr with exit code 2 and name the field
and the rule; nothing is written when a command fails."""
from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

import psycopg

from kemi.config import Settings
from provision import groups, store, trunks
from provision import bans, flows, journal, live
from provision import media  # media
from provision import conference  # conference rooms
from provision import agent_cli  # phones: agent keys and auto-pause from kemictl
from provision import callback  # callback (seed 002)
from provision import supervise as supervise_cli  # whisper and barge
from provision import launch  # launcher (seed 003)
from provision.store import ProvisioningError


def generated_password() -> str:
    return secrets.token_urlsafe(12)


def table(rows, header) -> str:
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*r) for r in rows])


def cmd_subscriber(args, conn, settings) -> None:
    if args.action == "add":
        password = args.password or generated_password()
        store.add_subscriber(conn, args.number, password, settings.realm, args.name, not args.disabled)
        print(f"added {args.number}" + ("" if args.password else f" with password {password}"))
    elif args.action == "change":
        if args.password is None and args.name is None:
            raise ProvisioningError("nothing to change: give --password and/or --name")
        store.change_subscriber(conn, args.number, settings.realm, password=args.password, display_name=args.name)
        print(f"changed {args.number}")
    elif args.action in ("enable", "disable"):
        store.change_subscriber(conn, args.number, settings.realm, active=args.action == "enable")
        print(f"{args.action}d {args.number}")
    elif args.action == "remove":
        store.remove_subscriber(conn, args.number)
        print(f"removed {args.number}")
    elif args.action == "list":
        rows = [(n, "yes" if a else "no", name, devices) for n, a, name, devices in store.list_subscribers(conn)]
        print(table(rows, ("number", "active", "name", "devices")))


def cmd_hunt(args, conn, settings) -> None:
    if args.action == "import":
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
        count = store.import_group(conn, args.group, text, args.ring_timeout)
        print(f"imported hunt group {args.group!r}: {count} SIP numbers")
    elif args.action == "export":
        sys.stdout.write(store.export_group(conn, args.group, "," if args.csv else "\t"))
    elif args.action == "remove":
        store.remove_group(conn, args.group)
        print(f"removed hunt group {args.group!r}")
    elif args.action == "list":
        print(table(store.list_groups(conn), ("group", "ring timeout", "members", "service numbers")))
    elif args.action == "show":
        chain = store.show_chain(conn, args.number, settings.ring_timeout)
        print(table([(i + 1, n, f"{t}s", s) for i, (n, t, s) in enumerate(chain)], ("step", "number", "rings", "state")))
    elif args.action == "overflow":
        groups.set_hunt_overflow(conn, args.group, None if args.target == "none" else args.target)
        print(f"hunt group {args.group!r} overflows to {args.target}")
    elif args.action == "ring-timeout":
        store.set_ring_timeout(conn, args.target, None if args.seconds == "default" else int(args.seconds))
        print(f"ring timeout of {args.target} set to {args.seconds}")


def yes_no(text: str | None) -> bool | None:
    if text is None:
        return None
    if text.lower() in ("yes", "on", "1", "true"):
        return True
    if text.lower() in ("no", "off", "0", "false"):
        return False
    raise ProvisioningError(f"{text!r} must be yes or no")


def cmd_trunk(args, conn, settings) -> None:
    if args.action in ("add", "change"):
        trunks.save_trunk(conn, args.name, args.address, args.transport, yes_no(args.trusted),
                          yes_no(args.send_pai), args.default_caller_id, create=args.action == "add")
        print(f"{args.action}{'ed' if args.action == 'add' else 'd'} trunk {args.name!r}")
    elif args.action == "remove":
        trunks.remove_trunk(conn, args.name)
        print(f"removed trunk {args.name!r}")
    elif args.action == "list":
        print(table(trunks.list_trunks(conn), ("trunk", "transport", "trusted", "send PAI", "default caller ID", "addresses")))


def cmd_route(args, conn, settings) -> None:
    if args.action == "add":
        trunks.add_route(conn, args.prefix, args.trunk, args.priority)
        print(f"route {args.prefix or '(any)'} via {args.trunk} priority {args.priority}")
    elif args.action == "remove":
        trunks.remove_route(conn, args.prefix, args.trunk)
        print(f"removed route {args.prefix or '(any)'} via {args.trunk}")
    elif args.action == "list":
        print(table(trunks.list_routes(conn), ("prefix", "trunk", "priority")))


def cmd_did(args, conn, settings) -> None:
    if args.action == "add":
        trunks.save_did(conn, args.number, args.trunk, args.target, args.caller_prefix, args.caller_suffix,
                        args.display_tag)
        print(f"DID {args.number} on {args.trunk} -> {args.target}")
    elif args.action == "remove":
        trunks.remove_did(conn, args.number)
        print(f"removed DID {args.number}")
    elif args.action == "list":
        print(table(trunks.list_dids(conn), ("DID", "trunk", "target", "caller prefix", "caller suffix", "display tag")))


def cmd_callerid(args, conn, settings) -> None:
    if args.action == "set":
        trunks.set_caller_ids(conn, args.subscriber, args.numbers)
        print(f"caller IDs of {args.subscriber}: " + (", ".join(f"c{i}={n}" for i, n in enumerate(args.numbers, 1)) or "none"))
    elif args.action == "policy":
        trunks.set_caller_policy(conn, args.subscriber, args.public_name, args.default_caller_id,
                                 yes_no(args.hide), yes_no(args.send_pai))
        print(f"caller-ID policy of {args.subscriber} changed")


def cmd_journal(args, conn, settings) -> None:
    if args.call:
        call, legs = journal.call_legs(conn, args.call)
        print("\n".join(journal.call_summary(call)))
        print(table(journal.leg_rows(legs, call), journal.LEG_HEADER))
    elif args.number:
        rows = journal.member_journal(conn, args.number, args.limit)
        print(table(rows, journal.MEMBER_HEADER) if rows else f"no journal records for {args.number}")
    else:
        raise ProvisioningError("give a NUMBER or --call CALL_ID")


def cmd_ringall(args, conn, settings) -> None:
    if args.action in ("add", "change"):
        groups.save_ringall(conn, args.name, args.number, args.action == "add", args.display_format,
                            args.ring_timeout, args.timeout_target)
        print(f"{'added' if args.action == 'add' else 'changed'} ring-all group {args.name!r}")
    elif args.action == "members":
        groups.set_ringall_members(conn, args.name, args.numbers)
        print(f"ring-all group {args.name!r}: {' '.join(args.numbers) or 'no members'}")
    elif args.action == "remove":
        groups.remove(conn, "ringall_group", args.name)
        print(f"removed ring-all group {args.name!r}")
    elif args.action == "list":
        print(table(groups.list_ringall(conn), ("group", "number", "display", "ring timeout", "overflow", "members")))


def cmd_queue(args, conn, settings) -> None:
    if args.action in agent_cli.QUEUE_ACTIONS:   # phones: auto-pause
        return agent_cli.cmd_queue(args, conn)
    if args.action == "hold":   # media: music on hold and announcements
        music, interval, announce = groups.set_queue_hold(conn, args.name, args.music, args.interval, args.announce)
        print(f"queue {args.name!r}: music {music}, every {interval} s announce {announce}")
        return
    if args.action in supervise_cli.ACTIONS:   # whisper and barge
        return supervise_cli.cmd(args, conn)
    if args.action in ("add", "change"):
        groups.save_queue(conn, args.name, args.number, args.action == "add", strategy=args.strategy,
                          ring_timeout=args.ring_timeout, max_wait=args.max_wait, timeout_target=args.timeout_target,
                          timeout_code=args.timeout_code, sticky_window=args.sticky_window, max_calls=args.max_calls)
        print(f"{'added' if args.action == 'add' else 'changed'} queue {args.name!r}")
    elif args.action == "agents":
        groups.set_queue_agents(conn, args.name, args.agents)
        print(f"queue {args.name!r}: {' '.join(args.agents) or 'no agents'}")
    elif args.action == "remove":
        groups.remove(conn, "queue", args.name)
        print(f"removed queue {args.name!r}")
    elif args.action == "list":
        print(table(groups.list_queues(conn), ("queue", "number", "strategy", "max wait", "timeout", "sticky", "agents")))


def cmd_supervisor(args, conn, settings) -> None:
    if args.action == "add":
        groups.add_supervisor(conn, args.number, args.kind, args.name)
        print(f"{args.number} supervises {args.kind} {args.name!r} (may listen in with 4#)")
    elif args.action == "remove":
        groups.remove_supervisor(conn, args.number, args.kind, args.name)
        print(f"{args.number} no longer supervises {args.kind} {args.name!r}")
    elif args.action == "list":
        print(table(groups.list_supervisors(conn), ("supervisor", "kind", "group or queue")))


def cmd_agent(args, conn, settings) -> None:
    if args.action in agent_cli.ACTIONS:   # phones: pause, unpause, dnd, show
        return agent_cli.cmd_agent(args, conn, table)
    count = groups.set_logged_in(conn, args.number, args.action == "login", args.where)
    print(f"{args.number} logged {'in to' if args.action == 'login' else 'out of'} {count} group(s)/queue(s)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kemictl", description="Provision the kemi routing proxy.")
    top = p.add_subparsers(dest="area", required=True)

    sub = top.add_parser("subscriber", help="SIP numbers phones register and call as")
    sa = sub.add_subparsers(dest="action", required=True)
    add = sa.add_parser("add", help="add a SIP number (a password is generated unless given)")
    add.add_argument("number")
    add.add_argument("--password")
    add.add_argument("--name", help="display name")
    add.add_argument("--disabled", action="store_true", help="add it disabled")
    ch = sa.add_parser("change", help="change password and/or display name")
    ch.add_argument("number")
    ch.add_argument("--password")
    ch.add_argument("--name")
    for action in ("enable", "disable", "remove"):
        sa.add_parser(action).add_argument("number")
    sa.add_parser("list")

    hg = top.add_parser("hunt", help="sequential hunt groups (seed 000)")
    ha = hg.add_subparsers(dest="action", required=True)
    imp = ha.add_parser("import", help="replace a group with a four-column table (tab or comma separated)")
    imp.add_argument("group")
    imp.add_argument("file", help="path, or - for standard input")
    imp.add_argument("--ring-timeout", type=int, help="seconds each member rings (group default)")
    exp = ha.add_parser("export", help="print a group as the four-column table")
    exp.add_argument("group")
    exp.add_argument("--csv", action="store_true", help="comma separated instead of tabs")
    ha.add_parser("remove").add_argument("group")
    ha.add_parser("list")
    ha.add_parser("show", help="the chain a service (or member) number rings").add_argument("number")
    ov = ha.add_parser("overflow", help="where a call goes when nobody in the group answered")
    ov.add_argument("group")
    ov.add_argument("target", help="a SIP, service, group or queue number; 'none' to end with 486/480")
    rt = ha.add_parser("ring-timeout", help="set a group's or a member's ring timeout")
    rt.add_argument("target", help="group name or member SIP number")
    rt.add_argument("seconds", help="1-600, or 'default'")
    tr = top.add_parser("trunk", help="SIP trunks (carriers), recognised by source address")
    ta = tr.add_subparsers(dest="action", required=True)
    for action in ("add", "change"):
        t = ta.add_parser(action)
        t.add_argument("name")
        t.add_argument("--address", action="append", help="IP or IP:PORT; repeat for failover order "
                       "(replaces all addresses); without a port any source port matches and calls go to 5060")
        t.add_argument("--transport", choices=("udp", "tcp"))
        t.add_argument("--trusted", metavar="yes|no", help="may receive/send P-Asserted-Identity")
        t.add_argument("--send-pai", metavar="yes|no", help="add PAI and PPI on calls to it (if trusted)")
        t.add_argument("--default-caller-id", help="caller ID when the caller has none for this trunk")
    ta.add_parser("remove").add_argument("name")
    ta.add_parser("list")

    ro = top.add_parser("route", help="outbound routes: longest matching prefix, then priority")
    ra = ro.add_subparsers(dest="action", required=True)
    r = ra.add_parser("add")
    r.add_argument("prefix", help="digits; '' for every number")
    r.add_argument("trunk")
    r.add_argument("--priority", type=int, default=0, help="lower is tried first")
    r = ra.add_parser("remove")
    r.add_argument("prefix")
    r.add_argument("trunk")
    ra.add_parser("list")

    di = top.add_parser("did", help="public numbers trunks deliver, and where they go")
    da = di.add_subparsers(dest="action", required=True)
    d = da.add_parser("add", help="add or change a DID")
    d.add_argument("number")
    d.add_argument("trunk")
    d.add_argument("target", help="SIP number or service number (T allowed)")
    d.add_argument("--caller-prefix", default="", help="put before the caller's number")
    d.add_argument("--caller-suffix", default="", help="put after the caller's number")
    d.add_argument("--display-tag", help="put before the caller's display name")
    da.add_parser("remove").add_argument("number")
    da.add_parser("list")

    rg = top.add_parser("ringall", help="ring-all groups (seed 004): every registered member rings at once")
    rga = rg.add_subparsers(dest="action", required=True)
    for action in ("add", "change"):
        r = rga.add_parser(action)
        r.add_argument("name")
        r.add_argument("number", nargs="?" if action == "change" else None, help="the group's number")
        r.add_argument("--display-format", help="what members see, e.g. '{group}: {caller}'")
        r.add_argument("--ring-timeout", type=int, help="seconds the members ring")
        r.add_argument("--timeout-target", help="where the call goes when nobody answers ('' to clear)")
    r = rga.add_parser("members", help="replace the members (SIP numbers)")
    r.add_argument("name")
    r.add_argument("numbers", nargs="*")
    rga.add_parser("remove").add_argument("name")
    rga.add_parser("list")

    qu = top.add_parser("queue", help="call-centre queues (seed 001)")
    qua = qu.add_subparsers(dest="action", required=True)
    for action in ("add", "change"):
        q = qua.add_parser(action)
        q.add_argument("name")
        q.add_argument("number", nargs="?" if action == "change" else None, help="the queue's number")
        q.add_argument("--strategy", help="ringall, fewest_calls, longest_idle, round_robin, linear or random")
        q.add_argument("--ring-timeout", type=int, help="seconds an offer rings before the caller waits again")
        q.add_argument("--max-wait", type=int, help="seconds a caller waits before the timeout destination")
        q.add_argument("--timeout-target", help="number the caller goes to after max wait ('' to clear)")
        q.add_argument("--timeout-code", type=int, help="final reply after max wait when there is no target")
        q.add_argument("--sticky-window", help="seconds to prefer the agent who last answered the caller ('' off)")
        q.add_argument("--max-calls", type=int, help="calls per agent at once (default 1)")
    q = qua.add_parser("agents", help="replace the agents: NUMBER or NUMBER:TIER (1 rings first), in order")
    q.add_argument("name")
    q.add_argument("agents", nargs="*")
    qua.add_parser("remove").add_argument("name")
    qua.add_parser("list")
    agent_cli.add_queue_parsers(qua)   # phones
    q = qua.add_parser("hold", help="what waiting callers hear: music on hold and announcements (media)")
    q.add_argument("name")
    q.add_argument("--music", help="an audio name (e.g. music-hold), or 'off' for silence")
    q.add_argument("--interval", type=int, help="seconds between announcements (0: never; default 30)")
    q.add_argument("--announce", help="none, position, wait (expected wait) or both (default position)")
    supervise_cli.add_parsers(qua)   # whisper and barge

    su = top.add_parser("supervisor", help="who may listen in (4# + number) on whose calls")
    sua = su.add_subparsers(dest="action", required=True)
    for action in ("add", "remove"):
        x = sua.add_parser(action)
        x.add_argument("number")
        x.add_argument("kind", choices=("hunt", "ringall", "queue"))
        x.add_argument("name", help="the group's or queue's name")
    sua.add_parser("list")

    ag = top.add_parser("agent", help="log an agent or member in or out (do not disturb)")
    aga = ag.add_subparsers(dest="action", required=True)
    for action in ("login", "logout"):
        a = aga.add_parser(action)
        a.add_argument("number")
        a.add_argument("where", nargs="?", help="a ring-all group or queue name (default: all)")
    agent_cli.add_agent_parsers(aga)   # phones

    ci = top.add_parser("callerid", help="caller-ID list (c1, c2, ...) and policy of a subscriber")
    ca = ci.add_subparsers(dest="action", required=True)
    c = ca.add_parser("set", help="replace the ordered caller-ID list")
    c.add_argument("subscriber")
    c.add_argument("numbers", nargs="*")
    c = ca.add_parser("policy")
    c.add_argument("subscriber")
    c.add_argument("--public-name", help="caller name on public (trunk) calls")
    c.add_argument("--default-caller-id")
    c.add_argument("--hide", metavar="yes|no", help="never send caller ID on public calls (anonymous)")
    c.add_argument("--send-pai", metavar="yes|no", help="add PAI/PPI on calls to trusted trunks")
    bn = top.add_parser("ban", help="banned addresses and locked-out numbers (flood / password guessing)")
    ba = bn.add_subparsers(dest="action", required=True)
    ba.add_parser("list", help="what is banned or locked out, why, and for how long")
    ba.add_parser("remove", help="lift a ban (ADDRESS) or a lock-out (NUMBER) now").add_argument("target")
    flows.add_parser(top)
    jo = top.add_parser("journal", help="call journal: a member's recent calls, or one call's legs")
    jo.add_argument("number", nargs="?", help="SIP number (member, agent or caller)")
    jo.add_argument("--limit", type=int, default=20, help="calls to show (default 20)")
    jo.add_argument("--call", metavar="CALL_ID", help="every leg of one call")
    media.add_parsers(top)   # media: audio, voicemail
    conference.add_parsers(top)   # conference rooms
    callback.add_parsers(top)   # callback
    launch.add_parsers(top)   # launcher
    return p


def cmd_ban(args, settings) -> None:
    """Talks to Kamailio (its control socket), not to the database."""
    rpc = bans.Rpc(Path(settings.var_dir) / "run" / "kamailio-ctl.sock")
    if args.action == "list":
        rows = [(e.kind, e.key, e.reason, "?" if e.seconds_left is None else f"{e.seconds_left}s")
                for e in bans.list_entries(rpc)]
        print(table(rows, ("kind", "address/number", "reason", "expires in")))
    else:
        print(bans.remove(rpc, args.target))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    if args.area == "ban":
        try:
            cmd_ban(args, settings)
        except ProvisioningError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    try:
        with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=5) as conn:
            commands = {"subscriber": cmd_subscriber, "hunt": cmd_hunt, "trunk": cmd_trunk, "route": cmd_route,
                        "did": cmd_did, "callerid": cmd_callerid,
                        "ringall": cmd_ringall, "queue": cmd_queue, "agent": cmd_agent,
                        "supervisor": cmd_supervisor, "journal": cmd_journal,
                        "flow": flows.command}
            commands.update(media.COMMANDS)   # media: audio, voicemail
            commands.update(conference.COMMANDS)   # conference rooms
            commands.update(callback.COMMANDS)   # callback
            commands.update(launch.COMMANDS)   # launcher
            started_ns = time.time_ns()   # a load that began after this includes the commit below
            commands[args.area](args, conn, settings)    # (unless another writer's load began in between)
        if live.changes_routing(args.area, getattr(args, "action", None)):
            if not live.wait_until_live(settings.var_dir, started_ns):
                print(f"note: committed, but the routing snapshot in {settings.var_dir} was not refreshed "
                      f"within {live.TIMEOUT:.0f} s (is the stack's directory loader running?)", file=sys.stderr)
    except ProvisioningError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as err:
        print(f"error: cannot reach the database ({settings.database_url}); is `make run` running?\n{err}",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
