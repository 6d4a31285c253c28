"""Provisioning of ring-all groups, queues, their members/agents and agent states. One
transaction each; errors name the field and the rule."""
from __future__ import annotations

import string

import psycopg

from kemi.directory import Directory
from kemi.queue_strategy import STRATEGIES
from kemi.store import load_directory
from provision.store import LOCK, ProvisioningError, check_number, check_text, number_owner
from provision.trunks import NAME


def check_target(directory: Directory, field: str, target: str | None, own_number: str | None) -> None:
    """A timeout destination must be a local number other than the element itself."""
    if not target:
        return
    check_number(field, target)
    if target == own_number:
        raise ProvisioningError(f"field '{field}': {target} is this element's own number")
    if not directory.is_local(target):
        raise ProvisioningError(f"field '{field}': {target} is no SIP, service, group or queue number of this proxy")


def _row(conn, table: str, name: str) -> tuple:
    row = conn.execute(f"SELECT id, number FROM {table} WHERE name = %s", (name,)).fetchone()
    if not row:
        kind = "ring-all group" if table == "ringall_group" else "queue"
        raise ProvisioningError(f"field 'name': no {kind} named {name!r}")
    return row


def _check_new_number(directory: Directory, number: str, old_number: str | None) -> None:
    check_number("number", number)
    owner = number_owner(directory, number)
    if owner and number != old_number:
        raise ProvisioningError(f"field 'number': {number} is already {owner}; a group or queue number "
                                "must differ from every line, service number, DID, group and queue")


def _check_name(name: str) -> None:
    if not NAME.match(name or ""):
        raise ProvisioningError(f"field 'name': {name!r} must be 1-64 letters, digits, '_', '.' or '-'")


# ------------------------------------------------------------------ ring-all groups

def save_ringall(conn: psycopg.Connection, name: str, number: str | None, create: bool,
                 display_format: str | None = None, ring_timeout: int | None = None,
                 timeout_target: str | None = None) -> None:
    _check_name(name)
    if display_format is not None:
        try:
            fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(display_format) if f is not None]
        except ValueError as err:
            raise ProvisioningError(f"field 'display-format': only {{group}} and {{caller}} may be used ({err})") from None
        if any(f not in ("group", "caller") or spec or conv for f, spec, conv in fields):
            raise ProvisioningError("field 'display-format': only {group} and {caller} may be used")
        check_text("display-format", display_format)
    if ring_timeout is not None and not 1 <= ring_timeout <= 600:
        raise ProvisioningError("field 'ring-timeout': must be between 1 and 600 seconds")
    with conn.transaction():
        conn.execute(LOCK)
        directory = load_directory(conn)
        if create:
            if conn.execute("SELECT 1 FROM ringall_group WHERE name = %s", (name,)).fetchone():
                raise ProvisioningError(f"field 'name': ring-all group {name!r} already exists")
            _check_new_number(directory, number, None)
            check_target(directory, "timeout-target", timeout_target, number)
            conn.execute("INSERT INTO ringall_group (name, number, display_format, ring_timeout, timeout_target) "
                         "VALUES (%s, %s, coalesce(%s, '{group}: {caller}'), %s, %s)",
                         (name, number, display_format, ring_timeout, timeout_target or None))
            return
        group_id, old_number = _row(conn, "ringall_group", name)
        if number is not None:
            _check_new_number(directory, number, old_number)
        check_target(directory, "timeout-target", timeout_target, number or old_number)
        for column, value in (("number", number), ("display_format", display_format),
                              ("ring_timeout", ring_timeout), ("timeout_target", timeout_target)):
            if value is not None:
                conn.execute(f"UPDATE ringall_group SET {column} = %s WHERE id = %s", (value or None, group_id))


def set_ringall_members(conn: psycopg.Connection, name: str, members: list[str]) -> None:
    with conn.transaction():
        conn.execute(LOCK)
        directory = load_directory(conn)
        group_id, _ = _row(conn, "ringall_group", name)
        _check_members(directory, members)
        states = dict(conn.execute("SELECT number, logged_in FROM ringall_member WHERE group_id = %s", (group_id,)).fetchall())
        conn.execute("DELETE FROM ringall_member WHERE group_id = %s", (group_id,))
        for position, number in enumerate(members):
            conn.execute("INSERT INTO ringall_member (group_id, number, logged_in, position) VALUES (%s, %s, %s, %s)",
                         (group_id, number, states.get(number, True), position))


def _check_members(directory: Directory, numbers: list[str]) -> None:
    if len(set(numbers)) != len(numbers):
        raise ProvisioningError("field 'members': a SIP number is listed twice")
    for n in numbers:
        if n not in directory.subscribers:
            raise ProvisioningError(f"field 'members': {n} is not an existing SIP number")


# ------------------------------------------------------------------ queues

QUEUE_FIELDS = ("strategy", "ring_timeout", "max_wait", "timeout_target", "timeout_code", "sticky_window", "max_calls")
LIMITS = {"ring_timeout": (1, 600), "max_wait": (1, 86400), "timeout_code": (400, 699),
          "sticky_window": (1, 2592000), "max_calls": (1, 10)}


def save_queue(conn: psycopg.Connection, name: str, number: str | None, create: bool, **settings) -> None:
    _check_name(name)
    values = {k: v for k, v in settings.items() if k in QUEUE_FIELDS and v is not None}
    if "strategy" in values and values["strategy"] not in STRATEGIES:
        raise ProvisioningError(f"field 'strategy': must be one of {', '.join(STRATEGIES)}")
    for field, (low, high) in LIMITS.items():
        if field in values and values[field] != "" and not low <= int(values[field]) <= high:
            raise ProvisioningError(f"field '{field.replace('_', '-')}': must be between {low} and {high}")
    with conn.transaction():
        conn.execute(LOCK)
        directory = load_directory(conn)
        if create:
            if conn.execute("SELECT 1 FROM queue WHERE name = %s", (name,)).fetchone():
                raise ProvisioningError(f"field 'name': queue {name!r} already exists")
            _check_new_number(directory, number, None)
            check_target(directory, "timeout-target", values.get("timeout_target"), number)
            queue_id = conn.execute("INSERT INTO queue (name, number) VALUES (%s, %s) RETURNING id",
                                    (name, number)).fetchone()[0]
        else:
            queue_id, old_number = _row(conn, "queue", name)
            if number is not None:
                _check_new_number(directory, number, old_number)
                conn.execute("UPDATE queue SET number = %s WHERE id = %s", (number, queue_id))
            check_target(directory, "timeout-target", values.get("timeout_target"), number or old_number)
        for column, value in values.items():
            conn.execute(f"UPDATE queue SET {column} = %s WHERE id = %s", (value if value != "" else None, queue_id))


def set_queue_agents(conn: psycopg.Connection, name: str, agents: list[str]) -> None:
    """agents: "NUMBER" or "NUMBER:TIER" in the listed (linear / round-robin) order."""
    parsed = []
    for item in agents:
        number, _, tier = item.partition(":")
        if tier and (not tier.isdigit() or not 1 <= int(tier) <= 9):
            raise ProvisioningError(f"field 'agents': tier in {item!r} must be 1-9 (1 rings first)")
        parsed.append((number, int(tier or 1)))
    with conn.transaction():
        conn.execute(LOCK)
        directory = load_directory(conn)
        queue_id, _ = _row(conn, "queue", name)
        _check_members(directory, [n for n, _ in parsed])
        states = dict(conn.execute("SELECT number, logged_in FROM queue_agent WHERE queue_id = %s", (queue_id,)).fetchall())
        conn.execute("DELETE FROM queue_agent WHERE queue_id = %s", (queue_id,))
        for position, (number, tier) in enumerate(parsed):
            conn.execute("INSERT INTO queue_agent (queue_id, number, tier, position, logged_in) VALUES (%s, %s, %s, %s, %s)",
                         (queue_id, number, tier, position, states.get(number, True)))


# ------------------------------------------------------------------ shared

def remove(conn: psycopg.Connection, table: str, name: str) -> None:
    with conn.transaction():
        conn.execute(LOCK)
        _row(conn, table, name)
        directory = load_directory(conn)
        number = conn.execute(f"SELECT number FROM {table} WHERE name = %s", (name,)).fetchone()[0]
        users = sorted({g.name for g in directory.groups.values() if g.timeout_target == number}
                       | {g.name for g in directory.ringall.values() if g.timeout_target == number}
                       | {q.name for q in directory.queues.values() if q.timeout_target == number}
                       | {d.number for d in directory.dids.values() if d.target.rstrip("T") == number})
        if users:
            raise ProvisioningError(f"field 'name': {number} is still the destination of {', '.join(users)}")
        conn.execute(f"DELETE FROM {table} WHERE name = %s", (name,))


def set_logged_in(conn: psycopg.Connection, number: str, logged_in: bool, where: str | None = None) -> int:
    """Log an agent/member in or out (do not disturb) of one group or queue, or of all."""
    with conn.transaction():
        changed = 0
        for table, parent, key in (("ringall_member", "ringall_group", "group_id"), ("queue_agent", "queue", "queue_id")):
            sql = f"UPDATE {table} SET logged_in = %s WHERE number = %s"
            args: list = [logged_in, number]
            if where:
                sql += f" AND {key} IN (SELECT id FROM {parent} WHERE name = %s)"
                args.append(where)
            changed += conn.execute(sql, args).rowcount
        if changed == 0:
            raise ProvisioningError(f"field 'number': {number} is no member of "
                                    + (f"{where!r}" if where else "any ring-all group or queue"))
        return changed


def set_hunt_overflow(conn: psycopg.Connection, group: str, target: str | None) -> None:
    with conn.transaction():
        conn.execute(LOCK)
        directory = load_directory(conn)
        check_target(directory, "target", target, None)
        if conn.execute("UPDATE hunt_group SET timeout_target = %s WHERE name = %s", (target, group)).rowcount == 0:
            raise ProvisioningError(f"field 'group': no hunt group named {group!r}")


def list_ringall(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT g.name, g.number, g.display_format, coalesce(g.ring_timeout::text, 'default'), "
        " coalesce(g.timeout_target, ''), coalesce((SELECT string_agg(m.number || CASE WHEN m.logged_in THEN '' "
        " ELSE '(out)' END, ' ' ORDER BY m.position) FROM ringall_member m WHERE m.group_id = g.id), '') "
        "FROM ringall_group g ORDER BY g.name").fetchall()


def list_queues(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT q.name, q.number, q.strategy, q.max_wait, coalesce(q.timeout_target, q.timeout_code::text), "
        " coalesce(q.sticky_window::text, ''), coalesce((SELECT string_agg(a.number || ':' || a.tier || CASE WHEN "
        " a.logged_in THEN '' ELSE '(out)' END, ' ' ORDER BY a.position) FROM queue_agent a WHERE a.queue_id = q.id), '') "
        "FROM queue q ORDER BY q.name").fetchall()


# ------------------------------------------------------------------ media: what waiting callers hear

HOLD_ANNOUNCE = ("none", "position", "wait", "both")


def set_queue_hold(conn: psycopg.Connection, name: str, music: str | None, interval: int | None,
                   announce: str | None) -> tuple:
    """Music on hold (an audio name, or 'off': silence), the announcement interval (0-3600 s,
    0: never) and what is announced (none, position, wait, both). Returns the queue's new row."""
    import re
    from media import builtin
    if music is not None and music != "off" and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", music):
        raise ProvisioningError("field 'music': an audio name (letters, digits, . _ -, at most 64) or 'off'")
    if interval is not None and not 0 <= interval <= 3600:
        raise ProvisioningError("field 'interval': must be between 0 and 3600 seconds (0: never)")
    if announce is not None and announce not in HOLD_ANNOUNCE:
        raise ProvisioningError(f"field 'announce': must be one of {', '.join(HOLD_ANNOUNCE)}")
    with conn.transaction():
        conn.execute(LOCK)
        if conn.execute("SELECT 1 FROM queue WHERE name = %s", (name,)).fetchone() is None:
            raise ProvisioningError(f"field 'queue': no queue named {name!r}")
        if music not in (None, "off") and music not in builtin.SPEECH and music not in builtin.tones() \
                and conn.execute("SELECT 1 FROM audio WHERE name = %s", (music,)).fetchone() is None:
            raise ProvisioningError(f"field 'music': no audio named {music!r} (kemictl audio add / list)")
        if music is not None:
            conn.execute("UPDATE queue SET hold_music = %s WHERE name = %s", (None if music == "off" else music, name))
        if interval is not None:
            conn.execute("UPDATE queue SET announce_interval = %s WHERE name = %s", (interval, name))
        if announce is not None:
            conn.execute("UPDATE queue SET announce = %s WHERE name = %s", (announce, name))
        return conn.execute("SELECT coalesce(hold_music, 'off'), announce_interval, announce FROM queue "
                            "WHERE name = %s", (name,)).fetchone()


# ------------------------------------------------------------------ supervisors

KINDS = {"hunt": "hunt_group", "ringall": "ringall_group", "queue": "queue"}


def add_supervisor(conn: psycopg.Connection, number: str, kind: str, name: str) -> None:
    """`number` may listen in (4#) on members/agents of that group or queue."""
    if kind not in KINDS:
        raise ProvisioningError(f"field 'kind': must be one of {', '.join(KINDS)}")
    with conn.transaction():
        if not conn.execute("SELECT 1 FROM subscriber WHERE number = %s", (number,)).fetchone():
            raise ProvisioningError(f"field 'number': {number} is not an existing SIP number")
        if not conn.execute(f"SELECT 1 FROM {KINDS[kind]} WHERE name = %s", (name,)).fetchone():
            raise ProvisioningError(f"field 'name': no {kind} named {name!r}")
        conn.execute("INSERT INTO supervisor (number, group_kind, group_name) VALUES (%s, %s, %s) "
                     "ON CONFLICT DO NOTHING", (number, kind, name))


def remove_supervisor(conn: psycopg.Connection, number: str, kind: str, name: str) -> None:
    with conn.transaction():
        if conn.execute("DELETE FROM supervisor WHERE number = %s AND group_kind = %s AND group_name = %s",
                        (number, kind, name)).rowcount == 0:
            raise ProvisioningError(f"field 'number': {number} does not supervise {kind} {name!r}")


def list_supervisors(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT number, group_kind, group_name FROM supervisor ORDER BY 1, 2, 3").fetchall()
