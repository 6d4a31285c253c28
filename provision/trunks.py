"""Provisioning of trunks, outbound routes, DIDs and caller IDs. One transaction each;
errors name the field and the rule."""
from __future__ import annotations

import ipaddress
import re

import psycopg

from kemi.store import load_directory
from provision.store import LOCK, NUMBER, ProvisioningError, check_number, check_text, number_owner

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def parse_address(text: str) -> tuple[str, int | None]:
    """IP or IP:PORT (IPv6 as [addr]:port)."""
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ProvisioningError(f"field 'address': {text!r} is not an IP address (IP or IP:PORT)") from None
    if port is not None:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ProvisioningError(f"field 'address': port in {text!r} must be 1-65535")
        port = int(port)
    return host, port


def _trunk_id(conn, name: str) -> int:
    row = conn.execute("SELECT id FROM trunk WHERE name = %s", (name,)).fetchone()
    if not row:
        raise ProvisioningError(f"field 'trunk': no trunk named {name!r}")
    return row[0]


def save_trunk(conn: psycopg.Connection, name: str, addresses: list[str] | None, transport: str | None,
               trusted: bool | None, send_pai: bool | None, default_caller_id: str | None,
               create: bool) -> None:
    if not NAME.match(name or ""):
        raise ProvisioningError(f"field 'name': {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
    if transport is not None and transport not in ("udp", "tcp"):
        raise ProvisioningError("field 'transport': must be udp or tcp")
    if default_caller_id:
        check_number("default-caller-id", default_caller_id)
    parsed = [parse_address(a) for a in addresses] if addresses is not None else None
    if create and not parsed:
        raise ProvisioningError("field 'address': a trunk needs at least one address")
    with conn.transaction():
        conn.execute(LOCK)
        exists = conn.execute("SELECT id FROM trunk WHERE name = %s", (name,)).fetchone()
        if create and exists:
            raise ProvisioningError(f"field 'name': trunk {name!r} already exists")
        if create:
            trunk_id = conn.execute(
                "INSERT INTO trunk (name, transport, trusted, send_pai, default_caller_id) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (name, transport or "udp", bool(trusted), bool(send_pai), default_caller_id or None)).fetchone()[0]
        else:
            trunk_id = _trunk_id(conn, name)
            for column, value in (("transport", transport), ("trusted", trusted), ("send_pai", send_pai),
                                  ("default_caller_id", default_caller_id)):
                if value is not None:
                    conn.execute(f"UPDATE trunk SET {column} = %s WHERE id = %s", (value or None, trunk_id))
        if parsed is not None:
            conn.execute("DELETE FROM trunk_address WHERE trunk_id = %s", (trunk_id,))
            for position, (host, port) in enumerate(parsed):
                taken = conn.execute(
                    "SELECT t.name FROM trunk_address a JOIN trunk t ON t.id = a.trunk_id "
                    "WHERE a.address = %s AND coalesce(a.port, 0) = coalesce(%s, 0)", (host, port)).fetchone()
                if taken:
                    raise ProvisioningError(f"field 'address': {host}{':' + str(port) if port else ''} "
                                            f"already belongs to trunk {taken[0]!r}")
                conn.execute("INSERT INTO trunk_address (trunk_id, address, port, position) VALUES (%s, %s, %s, %s)",
                             (trunk_id, host, port, position))


def remove_trunk(conn: psycopg.Connection, name: str) -> None:
    with conn.transaction():
        conn.execute(LOCK)
        if conn.execute("DELETE FROM trunk WHERE name = %s", (name,)).rowcount == 0:
            raise ProvisioningError(f"field 'trunk': no trunk named {name!r}")


def list_trunks(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT t.name, t.transport, t.trusted, t.send_pai, coalesce(t.default_caller_id, ''), "
        " coalesce((SELECT string_agg(host(a.address) || coalesce(':' || a.port, ''), ' ' ORDER BY a.position) "
        "           FROM trunk_address a WHERE a.trunk_id = t.id), '') "
        "FROM trunk t ORDER BY t.name").fetchall()


def add_route(conn: psycopg.Connection, prefix: str, trunk: str, priority: int) -> None:
    if not re.match(r"^[0-9]{0,32}$", prefix):
        raise ProvisioningError(f"field 'prefix': {prefix!r} must be digits (empty: every number)")
    with conn.transaction():
        trunk_id = _trunk_id(conn, trunk)
        conn.execute("INSERT INTO trunk_route (prefix, trunk_id, priority) VALUES (%s, %s, %s) "
                     "ON CONFLICT (prefix, trunk_id) DO UPDATE SET priority = EXCLUDED.priority",
                     (prefix, trunk_id, priority))


def remove_route(conn: psycopg.Connection, prefix: str, trunk: str) -> None:
    with conn.transaction():
        trunk_id = _trunk_id(conn, trunk)
        if conn.execute("DELETE FROM trunk_route WHERE prefix = %s AND trunk_id = %s",
                        (prefix, trunk_id)).rowcount == 0:
            raise ProvisioningError(f"field 'prefix': no route {prefix!r} via {trunk!r}")


def list_routes(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT r.prefix, t.name, r.priority FROM trunk_route r JOIN trunk t ON t.id = r.trunk_id "
                        "ORDER BY length(r.prefix) DESC, r.prefix, r.priority").fetchall()


def save_did(conn: psycopg.Connection, number: str, trunk: str, target: str, caller_prefix: str = "",
             caller_suffix: str = "", display_tag: str | None = None) -> None:
    check_number("number", number)
    if not re.match(r"^[0-9]{2,32}T?$", target or ""):
        raise ProvisioningError(f"field 'target': {target!r} must be a SIP, service or group number (T allowed)")
    if not re.match(r"^[0-9+*#]{0,16}$", caller_prefix):
        raise ProvisioningError("field 'caller-prefix': up to 16 of 0-9 + * #")
    if not re.match(r"^[0-9*#]{0,16}$", caller_suffix):
        raise ProvisioningError("field 'caller-suffix': up to 16 of 0-9 * #")
    check_text("display-tag", display_tag)
    with conn.transaction():
        conn.execute(LOCK)
        trunk_id = _trunk_id(conn, trunk)
        local = target.rstrip("T")
        if not load_directory(conn).is_local(local):
            raise ProvisioningError(f"field 'target': {local} is no SIP, service, group or queue number of this proxy")
        directory = load_directory(conn)
        owner = number_owner(directory, number)
        if owner and owner != "a trunk DID":
            raise ProvisioningError(f"field 'number': {number} is already {owner} of this proxy")
        conn.execute("INSERT INTO did (number, trunk_id, target, caller_prefix, caller_suffix, display_tag) "
                     "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (number) DO UPDATE SET trunk_id = EXCLUDED.trunk_id, "
                     "target = EXCLUDED.target, caller_prefix = EXCLUDED.caller_prefix, "
                     "caller_suffix = EXCLUDED.caller_suffix, display_tag = EXCLUDED.display_tag",
                     (number, trunk_id, target, caller_prefix, caller_suffix, display_tag or None))


def remove_did(conn: psycopg.Connection, number: str) -> None:
    with conn.transaction():
        if conn.execute("DELETE FROM did WHERE number = %s", (number,)).rowcount == 0:
            raise ProvisioningError(f"field 'number': no DID {number}")


def list_dids(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT d.number, t.name, d.target, d.caller_prefix, d.caller_suffix, "
                        "coalesce(d.display_tag, '') FROM did d JOIN trunk t ON t.id = d.trunk_id "
                        "ORDER BY d.number").fetchall()


def set_caller_ids(conn: psycopg.Connection, subscriber: str, numbers: list[str]) -> None:
    """Replace the ordered caller-ID list (c1, c2, ...) of a subscriber."""
    for n in numbers:
        if not NUMBER.match(n):
            raise ProvisioningError(f"field 'caller-id': {n!r} must be 2 to 32 digits")
    if len(set(numbers)) != len(numbers):
        raise ProvisioningError("field 'caller-id': a number is listed twice")
    if len(numbers) > 99:
        raise ProvisioningError("field 'caller-id': at most 99 caller IDs (c1..c99)")
    with conn.transaction():
        if not conn.execute("SELECT 1 FROM subscriber WHERE number = %s", (subscriber,)).fetchone():
            raise ProvisioningError(f"field 'subscriber': {subscriber} does not exist")
        conn.execute("DELETE FROM caller_id WHERE subscriber = %s", (subscriber,))
        for position, number in enumerate(numbers, start=1):
            conn.execute("INSERT INTO caller_id (subscriber, position, number) VALUES (%s, %s, %s)",
                         (subscriber, position, number))


def set_caller_policy(conn: psycopg.Connection, subscriber: str, public_name: str | None = None,
                      default_caller_id: str | None = None, hide_caller_id: bool | None = None,
                      send_pai: bool | None = None) -> None:
    if default_caller_id:
        check_number("default-caller-id", default_caller_id)
    check_text("public-name", public_name)
    with conn.transaction():
        if not conn.execute("SELECT 1 FROM subscriber WHERE number = %s", (subscriber,)).fetchone():
            raise ProvisioningError(f"field 'subscriber': {subscriber} does not exist")
        for column, value in (("public_name", public_name), ("default_caller_id", default_caller_id),
                              ("hide_caller_id", hide_caller_id), ("send_pai", send_pai)):
            if value is not None:
                conn.execute(f"UPDATE subscriber SET {column} = %s, updated_at = now() WHERE number = %s",
                             (value if isinstance(value, bool) else (value or None), subscriber))
