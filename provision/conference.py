"""kemictl conference add|list|status|kick|mute|unmute|pin|remove|recordings.

Rooms are rows of `conference_room` (sql/015_conference.sql); numbers share the one
namespace of provision/store.number_owner; PINs are scrypt hashes like voicemail PINs. The
live commands (status, kick, mute) talk to the media service's control socket
(media/conference_control.py: loopback TCP, token in var/run/media-control.json, mode 0600).
Errors name the field and the rule (ProvisioningError: exit code 2, nothing written)."""
from __future__ import annotations

import re
from pathlib import Path

from kemi.store import load_directory
from media import audio, conference_control, pin
from provision import text
from provision.store import LOCK, ProvisioningError, check_number, number_owner

NODE = re.compile(r"[A-Za-z0-9.-]{1,100}:[0-9]{1,5}")
SIZE_MIN, SIZE_MAX = 2, 100


def _pin(field: str, value: str) -> str:
    try:
        return pin.hash_pin(value)
    except pin.PinError as err:
        raise ProvisioningError(f"field '{field}': {err}") from None


def _yes_no(value: str | None, field: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("yes", "on", "1", "true"):
        return True
    if value.lower() in ("no", "off", "0", "false"):
        return False
    raise ProvisioningError(f"field '{field}': {value!r} must be yes or no")


def check_room(number: str, name: str, max_size: int, node: str | None, pin_value: str,
               moderator_pin: str | None, wait_for_moderator: bool) -> None:
    """Every rule but the namespace (which needs the database). Raises ProvisioningError."""
    check_number("number", number)
    problem = text.text_problem("name", name) if name else "field 'name': must not be empty"
    if problem:
        raise ProvisioningError(problem)
    if not SIZE_MIN <= max_size <= SIZE_MAX:
        raise ProvisioningError(f"field 'max-size': must be {SIZE_MIN}-{SIZE_MAX} (got {max_size})")
    if node is not None and (not NODE.fullmatch(node) or not 1 <= int(node.rsplit(":", 1)[1]) <= 65535):
        raise ProvisioningError(f"field 'node': {node[:40]!r} must be host:port of a media service")
    for field, value in (("pin", pin_value), ("moderator-pin", moderator_pin)):
        if value is not None and not pin.PIN_RULE.fullmatch(value):
            raise ProvisioningError(f"field '{field}': must be 4 to 8 digits")
    if moderator_pin is not None and moderator_pin == pin_value:
        raise ProvisioningError("field 'moderator-pin': must differ from the PIN")
    if wait_for_moderator and moderator_pin is None:
        raise ProvisioningError("field 'wait-for-moderator': needs --moderator-pin")


def add_room(conn, number: str, name: str | None, pin_value: str, moderator_pin: str | None = None,
             wait_for_moderator: bool = False, max_size: int = 10, record: bool = False,
             node: str | None = None) -> None:
    name = name if name is not None else f"Room {number}"
    check_room(number, name, max_size, node, pin_value, moderator_pin, wait_for_moderator)
    with conn.transaction():
        conn.execute(LOCK)
        owner = number_owner(load_directory(conn), number)
        if owner:
            raise ProvisioningError(f"field 'number': {number} is {owner}; a conference number must differ "
                                    "from every other number")
        conn.execute("INSERT INTO conference_room (number, name, pin_hash, moderator_pin_hash, wait_for_moderator, "
                     "max_size, record, node) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                     (number, name, _pin("pin", pin_value),
                      _pin("moderator-pin", moderator_pin) if moderator_pin else None,
                      wait_for_moderator, max_size, record, node))


def _existing(conn, number: str) -> None:
    check_number("number", number)
    if conn.execute("SELECT 1 FROM conference_room WHERE number = %s", (number,)).fetchone() is None:
        raise ProvisioningError(f"conference room {number!r} does not exist")


def set_pin(conn, number: str, value: str, moderator: bool = False) -> None:
    _existing(conn, number)
    column = "moderator_pin_hash" if moderator else "pin_hash"
    conn.execute(f"UPDATE conference_room SET {column} = %s WHERE number = %s",
                 (_pin("moderator-pin" if moderator else "pin", value), number))


def list_rooms(conn):
    return conn.execute(
        "SELECT r.number, r.name, r.max_size, CASE WHEN moderator_pin_hash IS NULL THEN 'no' "
        "WHEN wait_for_moderator THEN 'yes, waits' ELSE 'yes' END, CASE WHEN record THEN 'yes' ELSE 'no' END, "
        "coalesce(node, 'local'), count(c.id) FROM conference_room r "
        "LEFT JOIN conference_recording c ON c.room = r.number GROUP BY r.number ORDER BY r.number").fetchall()


def remove_room(conn, number: str) -> None:
    _existing(conn, number)
    conn.execute("DELETE FROM conference_room WHERE number = %s", (number,))


def list_recordings(conn, number: str):
    _existing(conn, number)
    return conn.execute("SELECT id, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'), round(duration_ms / 1000.0, 1) || 's', "
                        "CASE WHEN complete THEN '' ELSE 'partial' END FROM conference_recording "
                        "WHERE room = %s ORDER BY started_at, id", (number,)).fetchall()


def export_recording(conn, number: str, rec_id: str, path: str) -> None:
    if not rec_id.isdigit():
        raise ProvisioningError("field 'export': ID must be a recording id (digits)")
    row = conn.execute("SELECT pcm FROM conference_recording WHERE id = %s AND room = %s",
                       (int(rec_id), number)).fetchone()
    if row is None:
        raise ProvisioningError(f"recording {rec_id} of room {number} does not exist")
    Path(path).write_bytes(audio.to_wav(audio.from_pcm_bytes(bytes(row[0]))))


# ---- the live room (the media service's control socket) --------------------------------

def live(settings, op: str, **fields: str) -> dict:
    try:
        answer = conference_control.request(settings.var_dir, op, **fields)
    except FileNotFoundError:
        raise ProvisioningError(f"the media service is not running on this machine (no "
                                f"{conference_control.control_path(settings.var_dir)})") from None
    except (OSError, ValueError) as err:
        raise ProvisioningError(f"the media service's control socket does not answer: {err}") from None
    if answer.get("status") != 200:
        raise ProvisioningError(f"media service: {answer.get('status')} {answer.get('error', '')}")
    return answer


def participant_id(settings, number: str, who: str) -> str:
    """A participant id, or a caller number resolved to the id of its (first) leg in the room."""
    people = live(settings, "status", room=number)["participants"]
    for p in people:
        if who in (p["id"], p["caller"]):
            return p["id"]
    raise ProvisioningError(f"field 'participant': nobody {who!r} in room {number} "
                            f"(see `kemictl conference status {number}`)")


# ---- command line -------------------------------------------------------------------------

def add_parsers(top) -> None:
    co = top.add_parser("conference", help="conference rooms: dial-in number, PIN, moderator, size, recording")
    ca = co.add_subparsers(dest="action", required=True)
    a = ca.add_parser("add", help="add a room")
    a.add_argument("number", help="the dial-in number (2-32 digits, not used by anything else)")
    a.add_argument("--pin", required=True, help="4-8 digits (stored hashed)")
    a.add_argument("--name", help="shown in lists (printable text, at most 64 characters)")
    a.add_argument("--moderator-pin", help="4-8 digits: who enters it is the moderator")
    a.add_argument("--wait-for-moderator", metavar="yes|no", help="music until a moderator joins")
    a.add_argument("--max-size", type=int, default=10, help=f"{SIZE_MIN}-{SIZE_MAX} participants (default 10)")
    a.add_argument("--record", metavar="yes|no", help="record the room (kemictl conference recordings)")
    a.add_argument("--node", help="host:port of the media service the room lives on (default KEMI_MEDIA_SIP)")
    ca.add_parser("list")
    ca.add_parser("status", help="who is in the room now").add_argument("number")
    for action in ("kick", "mute", "unmute"):
        k = ca.add_parser(action, help=f"{action} a participant (id or caller number from status)")
        k.add_argument("number")
        k.add_argument("participant")
    p = ca.add_parser("pin", help="set a new PIN (or --moderator for the moderator PIN)")
    p.add_argument("number")
    p.add_argument("pin")
    p.add_argument("--moderator", action="store_true")
    ca.add_parser("remove").add_argument("number")
    r = ca.add_parser("recordings", help="a room's recordings")
    r.add_argument("number")
    r.add_argument("--export", nargs=2, metavar=("ID", "FILE.wav"), help="write one recording as WAV")


def command(args, conn, settings) -> None:
    from provision.cli import table
    if args.action == "add":
        add_room(conn, args.number, args.name, args.pin, args.moderator_pin,
                 bool(_yes_no(args.wait_for_moderator, "wait-for-moderator")), args.max_size,
                 bool(_yes_no(args.record, "record")), args.node)
        print(f"added conference room {args.number}")
    elif args.action == "list":
        print(table(list_rooms(conn), ("number", "name", "max", "moderator", "record", "node", "recordings")))
    elif args.action == "status":
        _existing(conn, args.number)
        answer = live(settings, "status", room=args.number)
        people = answer["participants"]
        print(f"room {args.number}: {len(people)} of {answer['max_size'] or '?'} in; "
              f"{'locked' if answer['locked'] else 'open'}; {'recording' if answer['recording'] else 'not recording'}; "
              f"{'mixing' if answer['mixing'] else 'music'}")
        if people:
            print(table([(p["id"], p["caller"], p["role"], "muted" if p["muted"] else "", f"{p['seconds']}s")
                         for p in people], ("id", "caller", "role", "", "in for")))
    elif args.action in ("kick", "mute", "unmute"):
        _existing(conn, args.number)
        who = participant_id(settings, args.number, args.participant)
        live(settings, args.action, room=args.number, id=who)
        done = {"kick": "kicked", "mute": "muted", "unmute": "unmuted"}[args.action]
        print(f"{done} {args.participant} in room {args.number}")
    elif args.action == "pin":
        set_pin(conn, args.number, args.pin, args.moderator)
        print(f"{'moderator ' if args.moderator else ''}PIN of room {args.number} changed")
    elif args.action == "remove":
        remove_room(conn, args.number)
        print(f"removed conference room {args.number} and its recordings")
    elif args.action == "recordings":
        if args.export:
            export_recording(conn, args.number, args.export[0], args.export[1])
            print(f"wrote recording {args.export[0]} to {args.export[1]}")
        else:
            print(table(list_recordings(conn, args.number), ("id", "started", "length", "")))


COMMANDS = {"conference": command}
