"""kemictl for the media service: `audio add|list|remove` and `voicemail box
add|list|pin|greeting|rule|remove`, `voicemail messages BOX`. Errors name the field and the
rule (ProvisioningError: exit code 2, nothing written)."""
from __future__ import annotations

import re
from pathlib import Path

from media import audio, pin
from provision.store import ProvisioningError

NAME_RULE = "1-64 characters: letters, digits, '_', '.', '-', starting with a letter or digit"
MAX_UPLOAD = 50 * 1024 * 1024


def read_audio(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise ProvisioningError(f"file {path!r} does not exist")
    if p.stat().st_size > MAX_UPLOAD:
        raise ProvisioningError(f"file {path!r} is larger than {MAX_UPLOAD // 2**20} MB")
    return p.read_bytes()


def convert(path: str):
    try:
        return audio.from_wav(read_audio(path))
    except audio.AudioError as err:
        raise ProvisioningError(f"file {path!r} refused: {err}") from None


def add_audio(conn, name: str, path: str, replace: bool = False) -> float:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise ProvisioningError(f"name {name!r}: {NAME_RULE}")
    pcm = convert(path)
    with conn.transaction():
        row = conn.execute("SELECT builtin FROM audio WHERE name = %s", (name,)).fetchone()
        if row is not None and not replace:
            raise ProvisioningError(f"name {name!r} exists{' (a built-in prompt)' if row[0] else ''}: use --replace")
        conn.execute("INSERT INTO audio (name, pcm, builtin, source) VALUES (%s, %s, false, %s) "
                     "ON CONFLICT (name) DO UPDATE SET pcm = EXCLUDED.pcm, builtin = false, source = EXCLUDED.source, "
                     "created_at = now()", (name, audio.pcm_bytes(pcm), Path(path).name[:200]))
    return len(pcm) / audio.RATE


def list_audio(conn):
    return conn.execute("SELECT name, round(length(pcm) / 16000.0, 1), CASE WHEN builtin THEN 'built-in' ELSE 'uploaded' END, "
                        "coalesce(source, ''), to_char(created_at, 'YYYY-MM-DD HH24:MI') FROM audio ORDER BY name").fetchall()


def remove_audio(conn, name: str) -> None:
    row = conn.execute("SELECT builtin FROM audio WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise ProvisioningError(f"audio {name!r} does not exist")
    if row[0]:
        raise ProvisioningError(f"audio {name!r} is a built-in prompt; upload another with --replace to change it")
    conn.execute("DELETE FROM audio WHERE name = %s", (name,))


def _pin(value: str) -> str:
    try:
        return pin.hash_pin(value)
    except pin.PinError as err:
        raise ProvisioningError(f"--pin: {err}") from None


def _no_answer(value: str | None) -> int | None:
    if value in (None, "", "off", "no"):
        return None
    if not value.isdigit() or not 1 <= int(value) <= 300:
        raise ProvisioningError("--no-answer must be 1-300 seconds or 'off'")
    return int(value)


def add_box(conn, number: str, pin_value: str, always: bool, on_busy: bool, no_answer: str | None,
            max_seconds: int, mwi_unsolicited: bool = False) -> None:
    if conn.execute("SELECT 1 FROM subscriber WHERE number = %s", (number,)).fetchone() is None:
        raise ProvisioningError(f"box {number!r}: a voicemail box belongs to an existing SIP number")
    if not 5 <= max_seconds <= 3600:
        raise ProvisioningError("--max-seconds must be 5-3600")
    if conn.execute("SELECT 1 FROM voicemail_box WHERE number = %s", (number,)).fetchone():
        raise ProvisioningError(f"box {number!r} exists; use `voicemail box rule` or `pin`")
    conn.execute("INSERT INTO voicemail_box (number, pin_hash, always, on_busy, no_answer_seconds, max_seconds, "
                 "mwi_unsolicited) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (number, _pin(pin_value), always, on_busy, _no_answer(no_answer), max_seconds, mwi_unsolicited))


def set_rule(conn, number: str, always: bool | None, on_busy: bool | None, no_answer: str | None,
             max_seconds: int | None, mwi_unsolicited: bool | None = None) -> None:
    _existing(conn, number)
    if max_seconds is not None and not 5 <= max_seconds <= 3600:
        raise ProvisioningError("--max-seconds must be 5-3600")
    conn.execute("UPDATE voicemail_box SET always = coalesce(%s, always), on_busy = coalesce(%s, on_busy), "
                 "no_answer_seconds = CASE WHEN %s THEN %s ELSE no_answer_seconds END, "
                 "max_seconds = coalesce(%s, max_seconds), mwi_unsolicited = coalesce(%s, mwi_unsolicited) "
                 "WHERE number = %s",
                 (always, on_busy, no_answer is not None, _no_answer(no_answer), max_seconds, mwi_unsolicited, number))


EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,200}\.[A-Za-z]{2,24}")


def set_email(conn, number: str, address: str | None, keep: bool | None) -> None:
    """Voicemail by email: each new message is mailed (WAV attached) to `address` ('off':
    no email), then kept or deleted (`keep`). The address is checked strictly: it becomes a
    mail header, so no spaces, commas, angle brackets or line breaks."""
    if address is not None and address != "off" and not EMAIL.fullmatch(address):
        raise ProvisioningError(f"field 'email': {address[:80]!r} is not a plain address like name@example.com")
    if address is None and keep is None:
        return
    _existing(conn, number)
    if address is not None:
        conn.execute("UPDATE voicemail_box SET email = %s WHERE number = %s",
                     (None if address == "off" else address, number))
    if keep is not None:
        conn.execute("UPDATE voicemail_box SET email_keep = %s WHERE number = %s", (keep, number))


def _existing(conn, number: str) -> None:
    if conn.execute("SELECT 1 FROM voicemail_box WHERE number = %s", (number,)).fetchone() is None:
        raise ProvisioningError(f"box {number!r} does not exist")


def set_pin(conn, number: str, value: str) -> None:
    _existing(conn, number)
    conn.execute("UPDATE voicemail_box SET pin_hash = %s, failed_pins = 0, locked_until = NULL WHERE number = %s",
                 (_pin(value), number))


def set_greeting(conn, number: str, path: str | None) -> None:
    _existing(conn, number)
    pcm = audio.pcm_bytes(convert(path)) if path else None
    conn.execute("UPDATE voicemail_box SET greeting = %s WHERE number = %s", (pcm, number))


def list_boxes(conn):
    return conn.execute(
        "SELECT b.number, CASE WHEN always THEN 'always' ELSE concat_ws(', ', CASE WHEN on_busy THEN 'busy' END, "
        "CASE WHEN no_answer_seconds IS NOT NULL THEN 'no answer ' || no_answer_seconds || 's' END) END, "
        "CASE WHEN greeting IS NULL THEN 'default' ELSE 'own' END, max_seconds || 's', "
        "count(m.id) FILTER (WHERE m.state = 'new'), count(m.id) FILTER (WHERE m.state = 'saved'), "
        "CASE WHEN locked_until > now() THEN 'locked' ELSE '' END "
        "FROM voicemail_box b LEFT JOIN voicemail_message m ON m.box = b.number "
        "GROUP BY b.number ORDER BY b.number").fetchall()


def list_messages(conn, number: str):
    _existing(conn, number)
    return conn.execute("SELECT id, caller, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'), "
                        "round(duration_ms / 1000.0, 1) || 's', state, CASE WHEN complete THEN '' ELSE 'partial' END "
                        "FROM voicemail_message WHERE box = %s ORDER BY created_at, id", (number,)).fetchall()


def export_message(conn, message_id: int, path: str) -> None:
    row = conn.execute("SELECT pcm FROM voicemail_message WHERE id = %s", (message_id,)).fetchone()
    if row is None:
        raise ProvisioningError(f"message {message_id} does not exist")
    Path(path).write_bytes(audio.to_wav(audio.from_pcm_bytes(bytes(row[0]))))


def remove_box(conn, number: str) -> None:
    _existing(conn, number)
    conn.execute("DELETE FROM voicemail_box WHERE number = %s", (number,))


# ---- command line -------------------------------------------------------------------------

def add_parsers(top) -> None:
    au = top.add_parser("audio", help="stored audio for the media service (play, menu, greetings)")
    aa = au.add_subparsers(dest="action", required=True)
    a = aa.add_parser("add", help="convert a WAV (any rate, width, channels) to 8 kHz mono and store it")
    a.add_argument("name")
    a.add_argument("file")
    a.add_argument("--replace", action="store_true", help="replace an existing audio (also a built-in prompt)")
    aa.add_parser("list")
    aa.add_parser("remove").add_argument("name")

    vm = top.add_parser("voicemail", help="voicemail boxes and their messages")
    va = vm.add_subparsers(dest="what", required=True)
    bx = va.add_parser("box")
    ba = bx.add_subparsers(dest="action", required=True)
    for action in ("add", "rule"):
        b = ba.add_parser(action, help="add a box" if action == "add" else "change when calls go to voicemail")
        b.add_argument("number", help="the owner's SIP number (also the box number)")
        if action == "add":
            b.add_argument("--pin", required=True, help="4-8 digits (stored hashed)")
        b.add_argument("--always", metavar="yes|no", help="every direct call goes to voicemail")
        b.add_argument("--busy", metavar="yes|no", help="calls go to voicemail when busy (default yes)")
        b.add_argument("--no-answer", metavar="SECONDS|off", help="voicemail after ringing this long")
        b.add_argument("--max-seconds", type=int, help="longest message (default 120)")
        b.add_argument("--mwi-notify", metavar="yes|no", help="NOTIFY the owner's registered phones without a SUBSCRIBE")
        b.add_argument("--email", metavar="ADDRESS|off", help="mail each new message (WAV attached) to this address")
        b.add_argument("--email-keep", metavar="yes|no", help="keep a message after it was mailed (default yes)")
    b = ba.add_parser("pin", help="set a new PIN (also unlocks the box)")
    b.add_argument("number")
    b.add_argument("pin")
    b = ba.add_parser("greeting", help="upload a greeting (WAV), or --default")
    b.add_argument("number")
    b.add_argument("file", nargs="?")
    b.add_argument("--default", action="store_true")
    ba.add_parser("list")
    ba.add_parser("remove").add_argument("number")
    ms = va.add_parser("messages", help="a box's messages")
    ms.add_argument("number")
    ms.add_argument("--export", nargs=2, metavar=("ID", "FILE.wav"), help="write one message as WAV")


def _yes_no(value: str | None, field: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("yes", "on", "1", "true"):
        return True
    if value.lower() in ("no", "off", "0", "false"):
        return False
    raise ProvisioningError(f"{field} {value!r} must be yes or no")


def cmd_audio(args, conn, settings) -> None:
    if args.action == "add":
        seconds = add_audio(conn, args.name, args.file, args.replace)
        print(f"stored audio {args.name!r}: {seconds:.1f} s, 8 kHz mono")
    elif args.action == "list":
        from provision.cli import table
        print(table(list_audio(conn), ("name", "seconds", "kind", "source", "added")))
    elif args.action == "remove":
        remove_audio(conn, args.name)
        print(f"removed audio {args.name!r}")


def cmd_voicemail(args, conn, settings) -> None:
    from provision.cli import table
    if args.what == "messages":
        if args.export:
            if not args.export[0].isdigit():
                raise ProvisioningError("--export ID must be a message id (digits)")
            export_message(conn, int(args.export[0]), args.export[1])
            print(f"wrote message {args.export[0]} to {args.export[1]}")
            return
        print(table(list_messages(conn, args.number), ("id", "caller", "time", "length", "state", "")))
        return
    if args.action == "add":
        add_box(conn, args.number, args.pin, bool(_yes_no(args.always, "--always")),
                _yes_no(args.busy, "--busy") is not False, args.no_answer, args.max_seconds or 120,
                bool(_yes_no(args.mwi_notify, "--mwi-notify")))
        set_email(conn, args.number, args.email, _yes_no(args.email_keep, "--email-keep"))
        print(f"added voicemail box {args.number}")
    elif args.action == "rule":
        set_rule(conn, args.number, _yes_no(args.always, "--always"), _yes_no(args.busy, "--busy"),
                 args.no_answer, args.max_seconds, _yes_no(args.mwi_notify, "--mwi-notify"))
        set_email(conn, args.number, args.email, _yes_no(args.email_keep, "--email-keep"))
        print(f"changed the rule of box {args.number}")
    elif args.action == "pin":
        set_pin(conn, args.number, args.pin)
        print(f"PIN of box {args.number} changed")
    elif args.action == "greeting":
        if not args.default and not args.file:
            raise ProvisioningError("give a WAV file or --default")
        set_greeting(conn, args.number, None if args.default else args.file)
        print(f"greeting of box {args.number}: {'default' if args.default else args.file}")
    elif args.action == "list":
        print(table(list_boxes(conn), ("box", "to voicemail", "greeting", "max", "new", "saved", "")))
    elif args.action == "remove":
        remove_box(conn, args.number)
        print(f"removed voicemail box {args.number} and its messages")


COMMANDS = {"audio": cmd_audio, "voicemail": cmd_voicemail}
