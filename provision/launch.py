"""kemictl launch start|status|list|stop and kemictl launch scheme set|show|list|remove.

A launch (seed 003) is a row of `launch` with its contacts (sql/019_launch.sql); the media
service's launcher (media/launcher.py) claims it within a second and runs the alert scheme.
Input rules are those of kemi/core/launcher.py (shared with the HTTP endpoint); errors name
the field and the rule (ProvisioningError: exit code 2, nothing written)."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import yaml

from kemi.core import launcher as core
from media import launcher_store as q, pin
from provision import conference
from provision.store import ProvisioningError

FIELDS = ("name", "work", "home", "mobile", "email")
made_room = False      # this command created a temporary room: kemictl waits until it is routed


def contact_from_option(value: str, n: int) -> dict:
    """`--contact "Name,work,home,mobile,email"` (empty parts allowed)."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) > len(FIELDS):
        raise ProvisioningError(f"field 'contact {n + 1}': at most {len(FIELDS)} parts: name,work,home,mobile,email")
    return dict(zip(FIELDS, parts + [""] * (len(FIELDS) - len(parts))))


def load_file(path: str):
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ProvisioningError(f"cannot read {path}: {err.strerror}") from None
    try:
        return yaml.safe_load(text) if not path.endswith(".json") else json.loads(text)
    except (yaml.YAMLError, ValueError) as err:
        raise ProvisioningError(f"{path}: not valid YAML/JSON: {str(err).splitlines()[0]}") from None


def _parse(fn, data):
    try:
        return fn(data)
    except core.LaunchError as err:
        raise ProvisioningError(str(err)) from None


def start(conn, data: dict, source: str = "kemictl") -> tuple[int, str, bool]:
    """Validate, create a temporary room if the number is free, store the launch.
    Returns (launch id, PIN, temporary room)."""
    req = _parse(core.parse_request, data)
    if req.welcome and conn.execute("SELECT 1 FROM audio WHERE name = %s", (req.welcome,)).fetchone() is None:
        raise ProvisioningError(f"field 'welcome': no audio {req.welcome!r} (kemictl audio add)")
    scheme = conn.execute(q.SCHEME, (req.scheme,)).fetchone()
    if scheme is None and req.scheme != core.CONFCALL.name:
        raise ProvisioningError(f"field 'scheme': no scheme {req.scheme!r} (kemictl launch scheme list)")
    with conn.transaction():   # a temporary room and its launch, or neither
        room = conn.execute(q.ROOM, (req.room,)).fetchone()
        temporary = room is None
        if temporary:
            global made_room
            made_room = True
            pin_value = req.pin or f"{secrets.randbelow(900000) + 100000}"
            conference.add_room(conn, req.room, req.title or f"Launch {req.room}", pin_value, record=req.record,
                                max_size=max(10, len(req.contacts) + 5))
        else:
            if req.pin is None:
                raise ProvisioningError(f"field 'pin': room {req.room} exists; give its PIN (it is sent to the contacts)")
            if not pin.verify(req.pin, room[0]):
                raise ProvisioningError(f"field 'pin': not the PIN of room {req.room}")
            pin_value = req.pin
        row = conn.execute(q.INSERT, q.insert_params(req, pin_value, temporary, q.scheme_body(scheme), source)).fetchone()
    return row[0], pin_value, temporary


def status(conn, launch_id: int) -> dict:
    launch = conn.execute(q.STATUS, (launch_id,)).fetchone()
    if launch is None:
        raise ProvisioningError(f"no launch {launch_id}")
    return q.status_dict(launch, conn.execute(q.STATUS_CONTACTS, (launch_id,)).fetchall(),
                         conn.execute(q.STATUS_EVENTS, (launch_id,)).fetchall())


def set_scheme(conn, data) -> core.Scheme:
    scheme = _parse(core.parse_scheme, data)
    conn.execute("INSERT INTO launch_scheme (name, body) VALUES (%s, %s::jsonb) ON CONFLICT (name) DO UPDATE "
                 "SET body = EXCLUDED.body, updated_at = now()", (scheme.name, json.dumps(scheme.to_dict())))
    return scheme


def show_scheme(conn, name: str) -> dict:
    row = conn.execute(q.SCHEME, (name,)).fetchone()
    if row is None and name != core.CONFCALL.name:
        raise ProvisioningError(f"no scheme {name!r}")
    return q.scheme_body(row)


def describe(scheme: dict) -> str:
    lines = [f"scheme {scheme['name']}: calls ring {scheme['ring_seconds']} s; over after {scheme['end_after']} s"]
    for s in scheme["steps"]:
        what = f"call the {s['call']} number" if "call" in s else "send " + " + ".join(s["notify"])
        lines.append(f"  t = {s['at']:>5} s  {what} of {'everyone' if s['who'] == 'all' else 'those not joined'}")
    return "\n".join(lines)


def add_parsers(top) -> None:
    la = top.add_parser("launch", help="conference launcher: call contacts into a room with escalation (seed 003)")
    sub = la.add_subparsers(dest="action", required=True)
    s = sub.add_parser("start", help="launch a conference call")
    s.add_argument("--room", required=True, help="conference number (a free number: a temporary room is made)")
    s.add_argument("--pin", help="the room's PIN (a temporary room: generated when not given)")
    s.add_argument("--contact", action="append", default=[], metavar="NAME,WORK,HOME,MOBILE,EMAIL")
    s.add_argument("--contacts", metavar="FILE", help="YAML/JSON list of {name, work, home, mobile, email}")
    s.add_argument("--title", default="")
    s.add_argument("--welcome", default="", metavar="AUDIO", help="stored audio played first (kemictl audio add)")
    s.add_argument("--record", default="no", metavar="yes|no")
    s.add_argument("--scheme", default=core.CONFCALL.name)
    s.add_argument("--dial-in", default="", help="the number contacts call to rejoin (default: the room's)")
    st = sub.add_parser("status", help="who joined, when and how; SMS and email results")
    st.add_argument("id", type=int)
    st.add_argument("--json", action="store_true")
    st.add_argument("--events", action="store_true", help="every call, join, SMS and email try")
    sub.add_parser("list", help="recent launches")
    sub.add_parser("stop", help="stop escalating (people stay in the room)").add_argument("id", type=int)
    sc = sub.add_parser("scheme", help="alert schemes")
    sca = sc.add_subparsers(dest="scheme_action", required=True)
    ss = sca.add_parser("set", help="add or replace a scheme from a YAML/JSON file")
    ss.add_argument("file")
    sca.add_parser("show").add_argument("name")
    sca.add_parser("list")
    sca.add_parser("remove").add_argument("name")


def command(args, conn, settings) -> None:
    from provision.cli import table
    if args.action == "start":
        contacts = [contact_from_option(c, i) for i, c in enumerate(args.contact)]
        if args.contacts:
            loaded = load_file(args.contacts)
            if not isinstance(loaded, list):
                raise ProvisioningError(f"field 'contacts': {args.contacts} must hold a list of contacts")
            contacts += loaded
        record = conference._yes_no(args.record, "record")
        data = {"room": args.room, "pin": args.pin, "contacts": contacts, "title": args.title, "welcome": args.welcome,
                "record": bool(record), "scheme": args.scheme, "dial_in": args.dial_in}
        launch_id, pin_value, temporary = start(conn, data)
        print(f"launch {launch_id} started: room {args.room}{' (temporary)' if temporary else ''}, PIN {pin_value}, "
              f"{len(contacts)} contacts, scheme {args.scheme}")
    elif args.action == "status":
        st = status(conn, args.id)
        if args.json:
            print(json.dumps(st, indent=1))
            return
        print(f"launch {st['id']} ({st['source']}): room {st['room']} {st['title']!r}; {st['state']}"
              f"{'; ' + st['outcome'] if st['outcome'] else ''}")
        print(table([(c["contact"], c["name"], c["joined"] or "-",
                      "" if c["joined_after_s"] is None else f"{c['joined_after_s']}s", c["sms"], c["email_status"])
                     for c in st["contacts"]], ("#", "name", "joined", "after", "sms", "email")))
        if args.events:
            print(table([("" if e["contact"] is None else e["contact"], f"{e['after_s']}s", e["kind"], e["detail"])
                         for e in st["events"]], ("#", "at", "what", "detail")))
    elif args.action == "list":
        rows = conn.execute("SELECT l.id, l.room, l.title, l.state, l.source, l.created_at::timestamp(0), "
                            "count(c.joined_at) || ' of ' || count(c.idx) FROM launch l LEFT JOIN launch_contact c "
                            "ON c.launch = l.id GROUP BY l.id ORDER BY l.id DESC LIMIT 20").fetchall()
        print(table(rows, ("id", "room", "title", "state", "from", "created", "joined")))
    elif args.action == "stop":
        row = conn.execute("UPDATE launch SET state = 'cancelled', finished_at = now(), outcome = 'stopped by kemictl' "
                           "WHERE id = %s AND state IN ('pending', 'running') RETURNING id", (args.id,)).fetchone()
        if row is None:
            raise ProvisioningError(f"no pending or running launch {args.id}")
        print(f"launch {args.id} stopped")
    elif args.action == "scheme":
        if args.scheme_action == "set":
            scheme = set_scheme(conn, load_file(args.file))
            print(describe(scheme.to_dict()))
        elif args.scheme_action == "show":
            print(describe(show_scheme(conn, args.name)))
        elif args.scheme_action == "list":
            names = [r[0] for r in conn.execute("SELECT name FROM launch_scheme ORDER BY name")]
            print("\n".join(([core.CONFCALL.name + " (built in)"] if core.CONFCALL.name not in names else []) + names))
        elif args.scheme_action == "remove":
            if conn.execute("DELETE FROM launch_scheme WHERE name = %s RETURNING name", (args.name,)).fetchone() is None:
                raise ProvisioningError(f"no scheme {args.name!r}")
            print(f"removed scheme {args.name}")


COMMANDS = {"launch": command}
