"""SIP trunks: who a request comes from, where an external call goes, and what an inbound
DID does to the caller's number. Pure: no I/O, no KSR."""
from __future__ import annotations

from dataclasses import dataclass

from kemi.directory import Did, Directory, Trunk

DEFAULT_PORT = 5060


@dataclass(frozen=True)
class TrunkStep:
    """One attempt of an outbound call: a trunk at one of its addresses."""
    trunk_id: int
    uri: str


def trunk_for_source(directory: Directory, ip: str, port: int) -> Trunk | None:
    """The active trunk a request comes from, matched by source address (and port if set)."""
    for wanted, trunk in directory.trunk_sources.get(ip, ()):   # indexed once per snapshot
        if wanted is None or wanted == port:
            return trunk
    return None


def outbound_trunks(directory: Directory, number: str) -> list[Trunk]:
    """Trunks for an external number: longest matching prefix first, then by priority."""
    out: list[Trunk] = []
    for route in directory.routes_for(number):   # indexed by prefix once per snapshot
        trunk = directory.trunks.get(route.trunk_id)
        if trunk is not None and trunk.active and trunk not in out:
            out.append(trunk)
    return out


def outbound_steps(directory: Directory, number: str) -> list[TrunkStep]:
    """Every address of every matching trunk, in failover order."""
    steps = []
    for trunk in outbound_trunks(directory, number):
        for address, port in trunk.addresses:
            host = f"[{address}]" if ":" in address else address
            uri = f"sip:{number}@{host}:{port or DEFAULT_PORT}"
            if trunk.transport != "udp":
                uri += f";transport={trunk.transport}"
            steps.append(TrunkStep(trunk.id, uri))
    return steps


def fails_over(code: int) -> bool:
    """An outbound attempt that ended with this code is retried on the next trunk:
    server errors, a timeout or no response at all. Anything else is the callee's answer."""
    return code == 408 or 500 <= code <= 599


def failed_all_reply(last_code: int) -> tuple[int, str]:
    return 503, f"Service Unavailable - every trunk failed (last answer {last_code})"


def trunk_dids(directory: Directory, trunk_id: int) -> frozenset[str]:
    return frozenset(d.number for d in directory.dids.values() if d.trunk_id == trunk_id)


def inbound_caller(did: Did, number: str, display: str | None) -> tuple[str, str | None]:
    """The caller as agents see it: DID prefix/suffix around the number, tag in the display."""
    shown = f"{did.caller_prefix}{number}{did.caller_suffix}"
    if did.display_tag:
        display = f"{did.display_tag} {display}" if display else did.display_tag
    return shown, display
