"""`kemictl queue supervision NAME on|off` (issue 14 section 2): whether a queue's calls
are bridged through the media service, so its supervisors can whisper (5#) and barge (6#)."""
from __future__ import annotations

import psycopg

from provision.store import ProvisioningError

ACTIONS = ("supervision",)
VALUES = {"on": True, "off": False}


def add_parsers(qua) -> None:
    s = qua.add_parser("supervision", help="on: calls go through the media service (whisper 5#, barge 6#); "
                                           "off (default): direct, listen (4#) only")
    s.add_argument("name")
    s.add_argument("value", help="on or off")


def set_supervision(conn: psycopg.Connection, name: str, value: str) -> bool:
    if value not in VALUES:
        raise ProvisioningError(f"field 'value': {value[:20]!r} must be on or off")
    with conn.transaction():
        row = conn.execute("SELECT supervised FROM queue WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise ProvisioningError(f"field 'name': no queue named {name[:64]!r}")
        conn.execute("UPDATE queue SET supervised = %s WHERE name = %s", (VALUES[value], name))
        return VALUES[value]


def cmd(args, conn) -> None:
    on = set_supervision(conn, args.name, args.value)
    print(f"queue {args.name!r}: supervision {'on (whisper 5# and barge 6# possible)' if on else 'off (listen 4# only)'}")
