"""Provisioning writes. Every operation is one transaction: it validates against the state it
locked and either writes everything or nothing."""
from __future__ import annotations

import hashlib
import re

import psycopg

from kemi import hunt
from kemi.store import load_directory
from provision import hunt_table, text, validate

NUMBER = re.compile(r"^[0-9]{2,32}$")
# Serialises provisioning writers, so validation always sees the state it writes against.
LOCK = "LOCK TABLE subscriber, hunt_group, hunt_member, service_number IN SHARE ROW EXCLUSIVE MODE"


class ProvisioningError(ValueError):
    pass


def ha1(number: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{number}:{realm}:{password}".encode()).hexdigest()


def check_number(field: str, value: str) -> None:
    if not NUMBER.match(value or ""):
        raise ProvisioningError(f"field '{field}': {value!r} must be 2 to 32 digits")


def check_password(password: str, number: str) -> None:
    problem = text.password_problem(password, number)
    if problem:
        raise ProvisioningError(problem)


def check_text(field: str, value: str | None) -> None:
    """Text that can reach a SIP header (provision/text.py); None and '' mean unset."""
    problem = text.text_problem(field, value) if value else None
    if problem:
        raise ProvisioningError(problem)


def number_owner(directory, number: str) -> str | None:
    """What already answers on `number`, if anything (one number, one meaning)."""
    if number in directory.subscribers:
        return "a SIP number"
    if number in directory.services:
        group = directory.groups[directory.services[number].group_id].name
        return f"a service number of hunt group '{group}'"
    if number in directory.dids:
        return "a trunk DID"
    if number in directory.ringall:
        return f"the number of ring-all group '{directory.ringall[number].name}'"
    if number in directory.queues:
        return f"the number of queue '{directory.queues[number].name}'"
    if number in directory.flows:   # flows: a number of its own that starts a call flow
        return "a call flow number"
    if number in getattr(directory, "conferences", {}):   # conference rooms
        return "a conference room number"
    if number in getattr(directory, "callbacks", {}):   # callback
        return "a callback number"
    return None



# ------------------------------------------------------------------ subscribers

def add_subscriber(conn: psycopg.Connection, number: str, password: str, realm: str,
                   display_name: str | None = None, active: bool = True) -> None:
    check_number("number", number)
    check_password(password, number)
    check_text("name", display_name)
    with conn.transaction():
        conn.execute(LOCK)
        if conn.execute("SELECT 1 FROM subscriber WHERE number = %s", (number,)).fetchone():
            raise ProvisioningError(f"field 'number': {number} already exists (use 'kemictl subscriber change')")
        owner = number_owner(load_directory(conn), number)
        if owner:
            raise ProvisioningError(f"field 'number': {number} is {owner}; a SIP number must differ from every "
                                    "service number, DID, group and queue number")
        conn.execute("INSERT INTO subscriber (number, ha1, display_name, active) VALUES (%s, %s, %s, %s)",
                     (number, ha1(number, realm, password), display_name, active))


def change_subscriber(conn: psycopg.Connection, number: str, realm: str, password: str | None = None,
                      display_name: str | None = None, active: bool | None = None) -> None:
    if password is not None:
        check_password(password, number)
    check_text("name", display_name)
    with conn.transaction():
        conn.execute(LOCK)
        if not conn.execute("SELECT 1 FROM subscriber WHERE number = %s", (number,)).fetchone():
            raise ProvisioningError(f"field 'number': {number} does not exist")
        if active is False:
            directory = load_directory(conn)
            starts = sorted(s.number for s in directory.services.values() if s.start_number == number)
            if starts:
                raise ProvisioningError(f"field 'active': {number} is the start number of service number(s) "
                                        f"{', '.join(starts)}; a start number must be an active member")
        if password is not None:
            conn.execute("UPDATE subscriber SET ha1 = %s, updated_at = now() WHERE number = %s",
                         (ha1(number, realm, password), number))
        if display_name is not None:
            conn.execute("UPDATE subscriber SET display_name = %s, updated_at = now() WHERE number = %s",
                         (display_name or None, number))
        if active is not None:
            conn.execute("UPDATE subscriber SET active = %s, updated_at = now() WHERE number = %s", (active, number))


def remove_subscriber(conn: psycopg.Connection, number: str) -> None:
    with conn.transaction():
        conn.execute(LOCK)
        member = conn.execute("SELECT g.name FROM hunt_member m JOIN hunt_group g ON g.id = m.group_id "
                              "WHERE m.number = %s", (number,)).fetchone()
        if member:
            raise ProvisioningError(f"field 'number': {number} is a member of hunt group '{member[0]}'; remove it from the group first")
        pointing = [r[0] for r in conn.execute("SELECT number FROM hunt_member WHERE next_number = %s", (number,))]
        if pointing:
            raise ProvisioningError(f"field 'number': {number} is the next number of {', '.join(sorted(pointing))}; change those first")
        if conn.execute("DELETE FROM subscriber WHERE number = %s", (number,)).rowcount == 0:
            raise ProvisioningError(f"field 'number': {number} does not exist")
        conn.execute("DELETE FROM location WHERE username = %s", (number,))


def list_subscribers(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT s.number, s.active, coalesce(s.display_name, ''), "
        " (SELECT count(*) FROM location l WHERE l.username = s.number AND l.expires > localtimestamp) "
        "FROM subscriber s ORDER BY s.number").fetchall()


# ------------------------------------------------------------------ hunt groups

def import_group(conn: psycopg.Connection, name: str, text: str, ring_timeout: int | None = None) -> int:
    """Replace hunt group `name` with the table in `text`. Returns the number of members."""
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", name or ""):
        raise ProvisioningError(f"field 'group': {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
    if ring_timeout is not None and not 1 <= ring_timeout <= 600:
        raise ProvisioningError("field 'ring-timeout': must be between 1 and 600 seconds")
    try:
        rows = hunt_table.parse(text)
    except hunt_table.TableError as err:
        raise ProvisioningError(str(err)) from None
    with conn.transaction():
        conn.execute(LOCK)
        found = conn.execute("SELECT id FROM hunt_group WHERE name = %s", (name,)).fetchone()
        group_id = found[0] if found else -1
        errors = validate.validate_group(rows, group_id, load_directory(conn))
        if errors:
            raise ProvisioningError("nothing was written:\n  " + "\n  ".join(errors))
        if found:
            conn.execute("DELETE FROM service_number WHERE group_id = %s", (group_id,))
            conn.execute("DELETE FROM hunt_member WHERE group_id = %s", (group_id,))
            if ring_timeout is not None:
                conn.execute("UPDATE hunt_group SET ring_timeout = %s WHERE id = %s", (ring_timeout, group_id))
        else:
            group_id = conn.execute("INSERT INTO hunt_group (name, ring_timeout) VALUES (%s, %s) RETURNING id",
                                    (name, ring_timeout)).fetchone()[0]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO hunt_member (number, group_id, next_number, position) VALUES (%s, %s, %s, %s)",
                            [(r.sip_number, group_id, r.next_number, i) for i, r in enumerate(rows)])
            cur.executemany("INSERT INTO service_number (number, group_id, start_number, position) VALUES (%s, %s, %s, %s)",
                            [(r.service_number, group_id, r.start_number, i) for i, r in enumerate(rows) if r.service_number])
    return len(rows)


def export_group(conn: psycopg.Connection, name: str, sep: str = "\t") -> str:
    found = conn.execute("SELECT id FROM hunt_group WHERE name = %s", (name,)).fetchone()
    if not found:
        raise ProvisioningError(f"field 'group': no hunt group named {name!r}")
    members = conn.execute("SELECT number, next_number, position FROM hunt_member WHERE group_id = %s "
                           "ORDER BY position", found).fetchall()
    # a service number is written on the row it was imported on (same position)
    services = {pos: (number, start) for number, start, pos in conn.execute(
        "SELECT number, start_number, position FROM service_number WHERE group_id = %s", found)}
    rows = [(number, nxt, *services.get(pos, (None, None))) for number, nxt, pos in members]
    return hunt_table.format_rows(rows, sep)


def remove_group(conn: psycopg.Connection, name: str) -> None:
    with conn.transaction():
        conn.execute(LOCK)
        if conn.execute("DELETE FROM hunt_group WHERE name = %s", (name,)).rowcount == 0:
            raise ProvisioningError(f"field 'group': no hunt group named {name!r}")


def set_ring_timeout(conn: psycopg.Connection, target: str, seconds: int | None) -> None:
    """`target` is a group name or a member's SIP number; None restores the default."""
    if seconds is not None and not 1 <= seconds <= 600:
        raise ProvisioningError("field 'seconds': must be between 1 and 600")
    with conn.transaction():
        if conn.execute("UPDATE hunt_member SET ring_timeout = %s WHERE number = %s", (seconds, target)).rowcount:
            return
        if conn.execute("UPDATE hunt_group SET ring_timeout = %s WHERE name = %s", (seconds, target)).rowcount:
            return
        raise ProvisioningError(f"field 'target': {target!r} is neither a hunt group nor a member's SIP number")


def list_groups(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT g.name, coalesce(g.ring_timeout::text, 'default'), "
        " (SELECT count(*) FROM hunt_member m WHERE m.group_id = g.id), "
        " (SELECT string_agg(s.number, ' ' ORDER BY s.position) FROM service_number s WHERE s.group_id = g.id) "
        "FROM hunt_group g ORDER BY g.name").fetchall()


def show_chain(conn: psycopg.Connection, number: str, default_timeout: int) -> list[tuple[str, int, str]]:
    """The members a call to `number` rings, in order: (number, ring seconds, state)."""
    directory = load_directory(conn)
    service = directory.services.get(number)
    if service is None and number not in directory.members:
        raise ProvisioningError(f"field 'number': {number} is neither a service number nor a hunt group member")
    start = service.start_number if service else number
    registered = {r[0]: r[1] for r in conn.execute(
        "SELECT username, count(*) FROM location WHERE expires > localtimestamp GROUP BY username")}
    out = []
    for n in hunt.chain_numbers(directory, start)[0][:hunt.MAX_STEPS]:
        if directory.active_subscriber(n) is None:
            state = "disabled, skipped"
        elif registered.get(n):
            state = f"registered ({registered[n]} device{'s' if registered[n] > 1 else ''})"
        else:
            state = "not registered, skipped"
        out.append((n, hunt.ring_timeout(directory, n, default_timeout), state))
    return out
