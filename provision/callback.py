"""kemictl callback: callback accounts (seed 002), their authorised caller IDs and passwords
(scrypt hashes only), per-prefix rates and credit. Errors name the field and the rule
(ProvisioningError: exit code 2, nothing written).

    kemictl callback add|set NUMBER [--caller-id-of SUB] [--mode authorized|caller|fixed]
        [--fixed-number N] [--trigger S] [--dial-timeout S] [--password DIGITS|none]
        [--per-id-password yes|no] [--credit-query yes|no] [--out-sound AUDIO]
    kemictl callback remove|show|unlock NUMBER ; kemictl callback list
    kemictl callback caller NUMBER add|remove CALLER [--password DIGITS]
    kemictl callback rate set PREFIX PER_MINUTE | rate remove PREFIX | rate list
    kemictl callback credit NUMBER [--add AMOUNT | --set AMOUNT]
"""
from __future__ import annotations

import hashlib
import re
import secrets
from decimal import Decimal, InvalidOperation

from kemi.core.callback import MODES
from kemi.store import load_directory
from provision.store import ProvisioningError, check_number, number_owner

PASSWORD = re.compile(r"[0-9]{4,12}")
AUDIO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_AMOUNT = Decimal("1000000")


def hash_password(password: str) -> str:
    """scrypt, in the format media/pin.py verifies."""
    if not PASSWORD.fullmatch(password or ""):
        raise ProvisioningError("field 'password': must be 4 to 12 digits (it is keyed in by DTMF)")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _yes_no(field: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("yes", "on", "1", "true"):
        return True
    if value.lower() in ("no", "off", "0", "false"):
        return False
    raise ProvisioningError(f"field '{field}': {value!r} must be yes or no")


def _seconds(field: str, value: int | None, low: int, high: int) -> int | None:
    if value is not None and not low <= value <= high:
        raise ProvisioningError(f"field '{field}': {value} must be from {low} to {high} seconds")
    return value


def amount(field: str, text: str, allow_negative: bool = False) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ProvisioningError(f"field '{field}': {text!r} must be a number like 12.50") from None
    if not value.is_finite() or abs(value) >= MAX_AMOUNT or value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ProvisioningError(f"field '{field}': {text!r} must be below {MAX_AMOUNT} with at most 4 decimals")
    if value < 0 and not allow_negative:
        raise ProvisioningError(f"field '{field}': {text!r} must not be negative")
    return value


def _account(conn, number: str) -> tuple:
    row = conn.execute("SELECT number, mode, fixed_number FROM callback_account WHERE number = %s",
                       (number,)).fetchone()
    if row is None:
        raise ProvisioningError(f"field 'number': no callback account {number}")
    return row


def _notify(conn) -> None:
    """Every change reloads the snapshot, so kemictl's wait-until-live returns at once."""
    conn.execute("SELECT pg_notify('kemi_config', 'callback_account')")


def save_account(conn, args, new: bool) -> None:
    check_number("number", args.number)
    fields: dict[str, object] = {}
    if args.caller_id_of is not None:
        if args.caller_id_of == "none":
            fields["caller_id_of"] = None
        else:
            check_number("caller-id-of", args.caller_id_of)
            if conn.execute("SELECT 1 FROM subscriber WHERE number = %s", (args.caller_id_of,)).fetchone() is None:
                raise ProvisioningError(f"field 'caller-id-of': {args.caller_id_of} is not a SIP number")
            fields["caller_id_of"] = args.caller_id_of
    if args.mode is not None:
        if args.mode not in MODES:
            raise ProvisioningError(f"field 'mode': {args.mode!r} must be one of {', '.join(MODES)}")
        fields["mode"] = args.mode
    if args.fixed_number is not None:
        if args.fixed_number == "none":
            fields["fixed_number"] = None
        else:
            check_number("fixed-number", args.fixed_number)
            fields["fixed_number"] = args.fixed_number
    if _seconds("trigger", args.trigger, 1, 60) is not None:
        fields["trigger_seconds"] = args.trigger
    if _seconds("dial-timeout", args.dial_timeout, 3, 120) is not None:
        fields["dial_seconds"] = args.dial_timeout
    if args.password is not None:
        fields["password_hash"] = None if args.password == "none" else hash_password(args.password)
    for field, column in (("per_id_password", "per_id_password"), ("credit_query", "credit_query")):
        value = _yes_no(field.replace("_", "-"), getattr(args, field))
        if value is not None:
            fields[column] = value
    if args.out_sound is not None:
        if not AUDIO_NAME.fullmatch(args.out_sound):
            raise ProvisioningError(f"field 'out-sound': {args.out_sound!r} is not an audio name "
                                    "(letters, digits, '_', '.', '-', at most 64)")
        fields["out_sound"] = args.out_sound
    with conn.transaction():
        if new:
            owner = number_owner(load_directory(conn), args.number)
            if owner is not None:
                raise ProvisioningError(f"field 'number': {args.number} is already {owner}")
            if conn.execute("SELECT 1 FROM callback_account WHERE number = %s", (args.number,)).fetchone():
                raise ProvisioningError(f"field 'number': callback account {args.number} exists (use set)")
            conn.execute("INSERT INTO callback_account (number, mode, fixed_number) VALUES (%s, 'authorized', NULL)",
                         (args.number,))
        else:
            _account(conn, args.number)
        _, mode, fixed = _account(conn, args.number)
        if fields.get("mode", mode) == "fixed" and not fields.get("fixed_number", fixed):
            raise ProvisioningError("field 'fixed-number': mode fixed needs --fixed-number")
        if fields:
            sets = ", ".join(f"{column} = %s" for column in fields)
            conn.execute(f"UPDATE callback_account SET {sets} WHERE number = %s", (*fields.values(), args.number))
        _notify(conn)


def remove_account(conn, number: str) -> None:
    _account(conn, number)
    conn.execute("DELETE FROM callback_account WHERE number = %s", (number,))


def list_accounts(conn):
    return conn.execute(
        "SELECT a.number, a.mode, coalesce(a.fixed_number, '-'), coalesce(a.caller_id_of, '-'), a.trigger_seconds, "
        "a.dial_seconds, CASE WHEN a.password_hash IS NULL THEN 'no' ELSE 'yes' END, "
        "CASE WHEN a.per_id_password THEN 'yes' ELSE 'no' END, CASE WHEN a.credit_query THEN 'yes' ELSE 'no' END, "
        "a.credit, (SELECT count(*) FROM callback_caller c WHERE c.account = a.number) "
        "FROM callback_account a ORDER BY a.number").fetchall()


def show(conn, number: str) -> str:
    _account(conn, number)
    row = conn.execute("SELECT mode, coalesce(fixed_number, '-'), coalesce(caller_id_of, '-'), trigger_seconds, "
                       "dial_seconds, password_hash IS NOT NULL, per_id_password, credit_query, credit, out_sound, "
                       "failed_passwords, coalesce(locked_until > now(), false) FROM callback_account WHERE number = %s",
                       (number,)).fetchone()
    names = ("mode", "fixed number", "caller ID of", "trigger after (s)", "dial within (s)", "password",
             "per-ID password", "credit query", "credit", "out-of-credit sound", "wrong passwords", "locked")
    lines = [f"callback {number}"] + [f"  {n}: {('yes' if v else 'no') if isinstance(v, bool) else v}"
                                      for n, v in zip(names, row)]
    callers = conn.execute("SELECT caller, password_hash IS NOT NULL FROM callback_caller WHERE account = %s "
                           "ORDER BY caller", (number,)).fetchall()
    lines.append("  authorised caller IDs: " + (", ".join(f"{c}{' (password)' if p else ''}" for c, p in callers)
                                                 or "none"))
    charges = conn.execute("SELECT to_char(ts, 'YYYY-MM-DD HH24:MI:SS'), kind, dialled, seconds, cost "
                           "FROM callback_charge WHERE account = %s ORDER BY ts DESC, id DESC LIMIT 10",
                           (number,)).fetchall()
    for ts, kind, dialled, seconds, cost in charges:
        lines.append(f"  {ts}  {kind:<6} {dialled:<16} {seconds:>8}s  {cost}")
    return "\n".join(lines)


def credit(conn, number: str) -> Decimal:
    _account(conn, number)
    return conn.execute("SELECT credit FROM callback_account WHERE number = %s", (number,)).fetchone()[0]


def change_credit(conn, number: str, add: str | None, set_to: str | None) -> Decimal:
    with conn.transaction():
        _account(conn, number)
        if add is not None:
            value = amount("add", add, allow_negative=True)
            row = conn.execute("UPDATE callback_account SET credit = credit + %s WHERE number = %s RETURNING credit",
                               (value, number)).fetchone()
            delta = value
        else:
            value = amount("set", set_to or "")
            old = conn.execute("SELECT credit FROM callback_account WHERE number = %s", (number,)).fetchone()[0]
            row = conn.execute("UPDATE callback_account SET credit = %s WHERE number = %s RETURNING credit",
                               (value, number)).fetchone()
            delta = value - old
        if abs(row[0]) >= MAX_AMOUNT:
            raise ProvisioningError(f"field 'credit': the result {row[0]} must be below {MAX_AMOUNT}")
        conn.execute("INSERT INTO callback_charge (account, call_id, dialled, seconds, cost, kind) "
                     "VALUES (%s, 'kemictl', '-', 0, %s, 'top-up')", (number, -delta))
        return row[0]


def caller(conn, number: str, op: str, who: str, password: str | None) -> None:
    check_number("caller", who)
    with conn.transaction():
        _account(conn, number)
        if op == "add":
            hashed = hash_password(password) if password else None
            conn.execute("INSERT INTO callback_caller (account, caller, password_hash) VALUES (%s, %s, %s) "
                         "ON CONFLICT (account, caller) DO UPDATE SET password_hash = EXCLUDED.password_hash",
                         (number, who, hashed))
        else:
            if conn.execute("DELETE FROM callback_caller WHERE account = %s AND caller = %s RETURNING 1",
                            (number, who)).fetchone() is None:
                raise ProvisioningError(f"field 'caller': {who} is not authorised on {number}")
        _notify(conn)


def rate(conn, op: str, prefix: str | None, per_minute: str | None):
    if op == "list":
        return conn.execute("SELECT prefix, per_minute FROM callback_rate ORDER BY prefix").fetchall()
    if not prefix or not re.fullmatch(r"[0-9]{1,24}", prefix):
        raise ProvisioningError(f"field 'prefix': {prefix!r} must be 1 to 24 digits")
    if op == "set":
        if per_minute is None:
            raise ProvisioningError("field 'per_minute': required (e.g. 0.05)")
        value = amount("per_minute", per_minute)
        conn.execute("INSERT INTO callback_rate (prefix, per_minute) VALUES (%s, %s) "
                     "ON CONFLICT (prefix) DO UPDATE SET per_minute = EXCLUDED.per_minute", (prefix, value))
    elif conn.execute("DELETE FROM callback_rate WHERE prefix = %s RETURNING 1", (prefix,)).fetchone() is None:
        raise ProvisioningError(f"field 'prefix': no rate for {prefix}")
    _notify(conn)
    return None


def unlock(conn, number: str) -> None:
    _account(conn, number)
    conn.execute("UPDATE callback_account SET failed_passwords = 0, locked_until = NULL WHERE number = %s", (number,))
    _notify(conn)


# ---------------------------------------------------------------- kemictl wiring

def add_parsers(top) -> None:
    cb = top.add_parser("callback", help="callback accounts (seed 002): callers, passwords, rates, credit")
    ca = cb.add_subparsers(dest="action", required=True)
    for action in ("add", "set"):
        a = ca.add_parser(action, help=f"{action} a callback account (its number is a DID's target)")
        a.add_argument("number")
        a.add_argument("--caller-id-of", help="SIP number whose caller-ID policy the outgoing legs use (none: unset)")
        a.add_argument("--mode", help="return calls: authorized (authorised caller IDs only), caller (any "
                                      "caller ID, never hidden), fixed (to --fixed-number)")
        a.add_argument("--fixed-number", help="where every call is returned in mode fixed")
        a.add_argument("--trigger", type=int, help="seconds of ringing before the caller is released and called back")
        a.add_argument("--dial-timeout", type=int, help="seconds to dial the remote party's number")
        a.add_argument("--password", help="password (4-12 digits) asked on callback; none: no password")
        a.add_argument("--per-id-password", metavar="yes|no", help="ask the authorised caller ID's own password")
        a.add_argument("--credit-query", metavar="yes|no", help="the user may hear the credit before calling")
        a.add_argument("--out-sound", help="audio played before disconnecting when the credit runs out")
    for action in ("remove", "show", "unlock"):
        ca.add_parser(action).add_argument("number")
    ca.add_parser("list")
    c = ca.add_parser("caller", help="authorised caller IDs (and their passwords)")
    c.add_argument("number")
    c.add_argument("op", choices=("add", "remove"))
    c.add_argument("caller")
    c.add_argument("--password", help="this caller ID's password (4-12 digits)")
    r = ca.add_parser("rate", help="per-minute rates by destination prefix (longest wins; none: not allowed)")
    r.add_argument("op", choices=("set", "remove", "list"))
    r.add_argument("prefix", nargs="?")
    r.add_argument("per_minute", nargs="?")
    k = ca.add_parser("credit", help="show, top up (--add) or set (--set) an account's credit")
    k.add_argument("number")
    g = k.add_mutually_exclusive_group()
    g.add_argument("--add", metavar="AMOUNT")
    g.add_argument("--set", metavar="AMOUNT")


def command(args, conn, settings) -> None:
    from provision.cli import table
    if args.action in ("add", "set"):
        save_account(conn, args, args.action == "add")
        print(f"{'added' if args.action == 'add' else 'changed'} callback {args.number}")
    elif args.action == "remove":
        remove_account(conn, args.number)
        print(f"removed callback {args.number}")
    elif args.action == "list":
        print(table(list_accounts(conn), ("number", "mode", "fixed", "caller ID of", "trigger", "dial", "password",
                                          "per-ID", "credit query", "credit", "callers")))
    elif args.action == "show":
        print(show(conn, args.number))
    elif args.action == "unlock":
        unlock(conn, args.number)
        print(f"unlocked callback {args.number}")
    elif args.action == "caller":
        caller(conn, args.number, args.op, args.caller, args.password)
        print(f"callback {args.number}: caller {args.caller} {'authorised' if args.op == 'add' else 'removed'}")
    elif args.action == "rate":
        rows = rate(conn, args.op, args.prefix, args.per_minute)
        if rows is not None:
            print(table(rows, ("prefix", "per minute")))
        else:
            print(f"rate {args.prefix} {'set' if args.op == 'set' else 'removed'}")
    elif args.action == "credit":
        if args.add is None and args.set is None:
            print(f"credit {credit(conn, args.number)}")
        else:
            print(f"credit {change_credit(conn, args.number, args.add, args.set)}")


COMMANDS = {"callback": command}
