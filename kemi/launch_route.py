"""The proxy's side of the conference launcher (seed 003): the media service's launch calls.

The launcher (media/launcher.py) calls contacts' work/home/mobile numbers through the proxy
with `X-Kemi-Origin: launch;id=<launch id>;contact=<n>`. Like the callback legs
(kemi/callback_route.py, the same trust rule and the same code path), the header is honoured
only on an INVITE from the media service's own SIP address and port (KEMI_MEDIA_SIP); from
anywhere else it is removed before routing (logged, counted as an auth failure
`forged_origin`) and the request is routed as what it really is. A trusted launch call needs
no digest and is routed like a subscriber's call: local numbers ring their phones, public
numbers leave through the trunks with the trunks' default caller ID.

Pure part: `parse`, `plan_out`; the adapter below `# ---- KSR`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kemi import routing
from kemi.directory import Directory, Subscriber

NUMBER = re.compile(r"[0-9]{2,32}")
LAUNCH_ID = re.compile(r"[0-9]{1,18}")
CALLER = "conference"       # the From user of launch calls without a room number


@dataclass(frozen=True)
class LaunchOrigin:
    launch_id: str


def parse(header: str | None) -> LaunchOrigin | None:
    """A `launch;id=N[;contact=M]` origin header, or None if it is not one (or malformed)."""
    if not header:
        return None
    name, _, rest = header.strip().partition(";")
    if name.strip() != "launch":
        return None
    params = dict(p.strip().partition("=")[::2] for p in rest.split(";") if p.strip())
    launch_id = params.get("id", "")
    return LaunchOrigin(launch_id) if LAUNCH_ID.fullmatch(launch_id) else None


def plan_out(directory: Directory, dialled: str, from_user: str, default_timeout: int):
    """Where a launch call goes: any number a subscriber could call (phones, trunks)."""
    if not NUMBER.fullmatch(dialled or ""):
        return routing.Reject(484, "Address Incomplete - a launch call dials 2-32 digits")
    room = from_user if NUMBER.fullmatch(from_user or "") else CALLER
    return routing.plan_call(dialled, directory, default_timeout, caller=Subscriber(room, "", default_caller_id=None))


# ---- KSR adapter ------------------------------------------------------------------------

def route_out(handler, directory: Directory, origin: LaunchOrigin) -> int:
    from kemi.ksr import EXIT, log_info, pv, strip_identity_headers
    strip_identity_headers()
    plan = plan_out(directory, pv("$rU") or "", pv("$fU") or "", handler.settings.ring_timeout)
    log_info(f"launch {origin.launch_id}: media service call to {pv('$rU')}: {type(plan).__name__}")
    if isinstance(plan, routing.Reject):
        import KSR
        KSR.sl.sl_send_reply(plan.status, plan.reason)
        return EXIT
    return handler._start(plan, pv("$fU") or CALLER)
