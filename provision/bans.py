"""`kemictl ban`: the edge's bans and lock-outs (kemi/guard.py) live in Kamailio's shared
memory (htables ban, lockout, authfail); this reads and edits them over Kamailio's binrpc
control socket with kamcmd (htable.dump / htable.delete). Only who can open the socket
(var/run/kamailio-ctl.sock, mode of its directory) can use it.

The parsing and the checks are pure and unit-tested; `Rpc` is the one place that runs kamcmd."""
from __future__ import annotations

import ipaddress
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from provision.store import ProvisioningError

KAMCMD = "kamcmd"
NUMBER = re.compile(r"[0-9]{2,32}")


@dataclass(frozen=True)
class Entry:
    kind: str        # "address" (banned) or "number" (locked out)
    key: str
    reason: str
    seconds_left: int | None


def parse_dump(text: str) -> dict[str, str]:
    """kamcmd's htable.dump output -> {name: value}."""
    out: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("name:"):
            name = line[5:].strip()
        elif line.startswith("value:") and name is not None:
            out[name] = line[6:].strip()
            name = None
    return out


def entry(kind: str, key: str, value: str, now: float) -> Entry:
    reason, _, until = value.partition(":")
    try:
        left = max(0, int(until) - int(now))
    except ValueError:
        left = None
    return Entry(kind, key, reason or "?", left)


def target(text: str) -> tuple[str, str]:
    """What `ban remove` was given: ("address", normalised IP) or ("number", digits)."""
    value = text.strip()
    if NUMBER.fullmatch(value):
        return "number", value
    try:
        return "address", str(ipaddress.ip_address(value))
    except ValueError:
        raise ProvisioningError(f"field 'target': {text!r} must be an IP address or a SIP number "
                                "(2 to 32 digits)") from None


class Rpc:
    def __init__(self, socket_path: Path, timeout: float = 5):
        self.socket_path, self.timeout = socket_path, timeout

    def call(self, *args: str) -> str:
        if not self.socket_path.exists():
            raise ProvisioningError(f"Kamailio's control socket {self.socket_path} does not exist; "
                                    "is the proxy running (make run)?")
        try:
            out = subprocess.run([KAMCMD, "-s", f"unix:{self.socket_path}", *args], capture_output=True,
                                 text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise ProvisioningError(f"Kamailio did not answer on {self.socket_path} within {self.timeout}s") from None
        return out.stdout + out.stderr

    def dump(self, table: str) -> dict[str, str]:
        text = self.call("htable.dump", table)
        if text.lstrip().startswith("error:") and "404" not in text:
            raise ProvisioningError(f"Kamailio refused htable.dump {table}: {text.strip()}")
        return parse_dump(text)

    def delete(self, table: str, key: str) -> bool:
        # "s:" makes kamcmd send the key as a string (a number would go as an integer)
        return "error" not in self.call("htable.delete", table, f"s:{key}").lower()


def list_entries(rpc: Rpc, now: float | None = None) -> list[Entry]:
    now = time.time() if now is None else now
    rows = [entry("address", k, v, now) for k, v in rpc.dump("ban").items()]
    rows += [entry("number", k, v, now) for k, v in rpc.dump("lockout").items()]
    return sorted(rows, key=lambda e: (e.kind, e.key))


def remove(rpc: Rpc, text: str) -> str:
    kind, key = target(text)
    table, counter = ("ban", f"ip:{key}") if kind == "address" else ("lockout", f"n:{key}")
    removed = rpc.delete(table, key)
    rpc.delete("authfail", counter)        # start counting failures afresh
    if not removed:
        raise ProvisioningError(f"field 'target': {key} is not " +
                                ("banned" if kind == "address" else "locked out"))
    return f"{'unbanned' if kind == 'address' else 'unlocked'} {key}"
