"""Busy lamp fields: who may subscribe to what, and whose state a call publishes. Pure: no KSR.

Desk phones' BLF keys SUBSCRIBE to the `dialog` event package (RFC 4235) of a colleague's SIP
number; Kamailio's presence modules do the protocol (NOTIFY with dialog-info XML:
trying / early / confirmed / terminated). This module decides:
- `check_subscribe`: only the dialog package, only existing subscribers as targets, at most
  `limit` SUBSCRIBEs per subscriber and minute (a phone refreshes each key every few minutes);
- `publish_targets`: the presentities a new call updates: the calling subscriber, and the
  members it rings (all of them for a ring-all group or a direct call; the first member of
  a hunt, whose later steps are not published in this version).
"""
from __future__ import annotations

from dataclasses import dataclass

EVENT = "dialog"
SUBSCRIBES_PER_MINUTE = 60


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    result: str          # metric label
    headers: str = ""


def check_subscribe(event: str | None, target: str | None, target_exists: bool, count_this_minute: int,
                    limit: int = SUBSCRIBES_PER_MINUTE) -> Refusal | None:
    if count_this_minute > limit:
        return Refusal(503, f"Service Unavailable - more than {limit} SUBSCRIBEs a minute", "rate_limited",
                       "Retry-After: 60\r\n")
    if (event or "").split(";")[0].strip().lower() != EVENT:
        return Refusal(489, "Bad Event - only the dialog event package (BLF) is served", "bad_event",
                       f"Allow-Events: {EVENT}, message-summary\r\n")
    if not target or not target_exists:
        return Refusal(404, "Not Found - no such SIP number to watch", "unknown_target")
    return None


def publish_targets(plan, caller: str | None) -> tuple[list[str], list[str]]:
    """(caller numbers, callee numbers) whose BLF keys this call lights."""
    callers = [caller] if caller else []
    steps = getattr(plan, "steps", ())
    numbers = [s.number for s in steps if hasattr(s, "number")]
    if not numbers:
        return callers, []
    callees = numbers if getattr(plan, "parallel", False) or getattr(plan, "kind", "") == "direct" else numbers[:1]
    return callers, [n for n in dict.fromkeys(callees) if n != caller]


DEFAULT_EXPIRES = 3600     # presence's max_expires: a SUBSCRIBE without Expires gets at most this


def watch_until(now: float, expires: str | None) -> int:
    """Until when a SUBSCRIBE with this Expires header keeps its target watched (Expires 0
    or garbage: no longer than now; missing: the maximum)."""
    raw = (expires or "").strip()
    if not raw:
        seconds = DEFAULT_EXPIRES
    elif raw.isdigit():
        seconds = min(int(raw), DEFAULT_EXPIRES)
    else:
        seconds = 0
    return int(now) + seconds


def presentity_uri(number: str, host: str, port: int) -> str:
    """Where pua sends the PUBLISH: this proxy, so presence stores it as number@host."""
    return f"sip:{number}@{host}:{port}"
