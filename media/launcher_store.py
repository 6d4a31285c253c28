"""The launcher's SQL (sql/019_launch.sql), shared by kemictl (provision/launch.py, psycopg
sync) and the media service (media/launcher.py, the async Store): one statement per step so
both sides run exactly the same text."""
from __future__ import annotations

import json

from kemi.core import launcher as core

SCHEME = "SELECT body FROM launch_scheme WHERE name = %s"
ROOM = "SELECT pin_hash FROM conference_room WHERE number = %s"

INSERT = """
WITH l AS (INSERT INTO launch (room, pin, temporary_room, title, welcome, record, dial_in, scheme, source)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s) RETURNING id),
     c AS (INSERT INTO launch_contact (launch, idx, name, work, home, mobile, email)
           SELECT l.id, x.idx, x.name, x.work, x.home, x.mobile, x.email FROM l,
                  jsonb_to_recordset(%s::jsonb) AS x(idx int, name text, work text, home text, mobile text,
                                                     email text))
SELECT id FROM l"""

# The media service claims one pending launch at a time (several services: SKIP LOCKED).
CLAIM = """
UPDATE launch SET state = 'running', started_at = now()
 WHERE id = (SELECT id FROM launch WHERE state = 'pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, room, pin, title, welcome, record, dial_in, scheme"""
CONTACTS = "SELECT name, work, home, mobile, email FROM launch_contact WHERE launch = %s ORDER BY idx"
ORPHANS = ("UPDATE launch SET state = 'finished', finished_at = now(), outcome = 'interrupted: media service "
           "restarted' WHERE state = 'running' RETURNING id")
CANCELLED = "SELECT state FROM launch WHERE id = %s"
JOINED = ("UPDATE launch_contact SET joined_at = now(), joined_how = %s "
          "WHERE launch = %s AND idx = %s AND joined_at IS NULL")
EVENT = "INSERT INTO launch_event (launch, idx, kind, detail) VALUES (%s, %s, %s, %s)"
FINISH = ("UPDATE launch SET state = CASE WHEN state = 'cancelled' THEN state ELSE 'finished' END, "
          "finished_at = now(), outcome = %s WHERE id = %s")

STATUS = ("SELECT id, room, title, state, source, created_at, started_at, finished_at, outcome, dial_in, record, "
          "temporary_room FROM launch WHERE id = %s")
STATUS_CONTACTS = ("SELECT idx, name, work, home, mobile, email, joined_at, joined_how, "
                   "extract(epoch FROM joined_at - l.started_at) FROM launch_contact c JOIN launch l ON l.id = c.launch "
                   "WHERE launch = %s ORDER BY idx")
STATUS_EVENTS = ("SELECT idx, extract(epoch FROM e.at - l.started_at), kind, detail FROM launch_event e "
                 "JOIN launch l ON l.id = e.launch WHERE launch = %s ORDER BY e.id")


def scheme_body(row) -> dict:
    """The scheme to copy into a launch: the stored one, or CONFCALL built in."""
    return row[0] if row else core.CONFCALL.to_dict()


def insert_params(req: core.Request, pin: str, temporary: bool, scheme: dict, source: str) -> tuple:
    contacts = [{"idx": i, "name": c.name, "work": c.work, "home": c.home, "mobile": c.mobile, "email": c.email}
                for i, c in enumerate(req.contacts)]
    return (req.room, pin, temporary, req.title, req.welcome, req.record, req.dial_in or req.room,
            json.dumps(scheme), source, json.dumps(contacts))


def status_dict(launch, contacts, events) -> dict:
    """One launch's status as plain data (kemictl prints it, the HTTP endpoint returns it)."""
    (lid, room, title, state, source, created, started, finished, outcome, dial_in, record, temporary) = launch
    people = []
    for idx, name, work, home, mobile, email, joined_at, how, after in contacts:
        sent = {}
        for e_idx, _at, kind, detail in events:
            if e_idx == idx and kind in ("sms", "email"):
                sent[kind] = detail
        people.append({"contact": idx, "name": name, "work": work, "home": home, "mobile": mobile, "email": email,
                       "joined": how, "joined_at": joined_at.isoformat() if joined_at else None,
                       "joined_after_s": round(float(after), 1) if after is not None else None,
                       "sms": sent.get("sms", ""), "email_status": sent.get("email", "")})
    return {"id": lid, "room": room, "title": title, "state": state, "source": source, "dial_in": dial_in,
            "record": record, "temporary_room": temporary,
            "created_at": created.isoformat(), "started_at": started.isoformat() if started else None,
            "finished_at": finished.isoformat() if finished else None, "outcome": outcome, "contacts": people,
            "events": [{"contact": i, "after_s": round(float(t), 1) if t is not None else None, "kind": k,
                        "detail": d} for i, t, k, d in events]}
