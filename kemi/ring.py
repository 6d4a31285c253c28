"""Applies a RingPlan: rings members one after another (serial forking), every registered
device of a member at once. KSR adapter code; the decisions are in kemi.hunt.

A hunt keeps its state in transaction AVPs, because the failure route may run in another
worker process than the one that started the call:
  $avp(hunt_steps)  "number:seconds,number:seconds" of the registered members, in order
  $avp(hunt_i)      index of the step ringing now
  $avp(hunt_busy)   1 once any device answered busy (486/600), set by the reply route
"""
from __future__ import annotations

import KSR  # provided by app_python3

from kemi import hunt
from kemi.ksr import EXIT, log_info, pv

LOCATION = "location"
FAILURE_ROUTE = "ksr_failure_hunt"
REPLY_ROUTE = "ksr_reply_media"


def start(plan, domain: str, caller: str) -> int:
    steps = load_branches(plan.steps, domain)
    if not steps:
        log_info(f"call {caller} -> {plan.dialled}: no member registered")
        KSR.sl.sl_send_reply(480, "Temporarily Unavailable - not registered")
        return EXIT
    log_info(f"call {caller} -> {plan.dialled} ({plan.kind}): "
             + " > ".join(f"{s.number}/{s.ring_timeout}s" for s in steps))
    if KSR.tm.t_newtran() < 0:
        KSR.sl.sl_reply_error()
        return EXIT
    KSR.pv.sets("$avp(hunt_steps)", ",".join(f"{s.number}:{s.ring_timeout}" for s in steps))
    KSR.pv.seti("$avp(hunt_i)", 0)
    KSR.pv.seti("$avp(hunt_busy)", 0)
    # t_next_contacts() returns -2 when there was only one device (nothing loaded).
    if KSR.tm.t_load_contacts() < 0 or KSR.tm.t_next_contacts() == -1:
        KSR.tm.t_reply(500, "Server Internal Error - cannot load contacts")
        return EXIT
    if KSR.sdpops.sdp_content() > 0:
        KSR.rtpengine.rtpengine_manage0()
    return relay_step(steps[0].ring_timeout)


def load_branches(steps, domain: str) -> list[hunt.Step]:
    """Put every registered device of every step into the destination set, with q-values
    that fall step by step, so t_load_contacts() orders them for serial forking and a
    member's devices (same q) ring together.

    t_load_contacts() always ranks the Request-URI's own q (unset) below every set value,
    so the last step's devices get no q either and the R-URI becomes one of them. Returns
    the steps that have at least one device."""
    registered = []
    for step in steps:
        contacts = _contacts(step.number, domain)
        if contacts:
            registered.append((step, contacts))
    for index, (_step, contacts) in enumerate(registered):
        last_step = index == len(registered) - 1
        q = "" if last_step else f"{1.0 - index / 100:.2f}"
        for position, contact in enumerate(contacts):
            _set_target(*contact)
            if last_step and position == len(contacts) - 1:
                break  # stays in the R-URI
            KSR.corex.append_branch_uri_q("", q)
    return [step for step, _contacts in registered]


def _contacts(number: str, domain: str) -> list[tuple[str, str, str]]:
    """(uri, received, socket) of each registered device of a number."""
    if KSR.registrar.reg_fetch_contacts(LOCATION, f"sip:{number}@{domain}", "hc") < 0:
        return []
    try:
        count = int(pv("$ulc(hc=>count)") or 0)
        return [(pv(f"$(ulc(hc=>addr)[{i}])"), pv(f"$(ulc(hc=>received)[{i}])") or "",
                 pv(f"$(ulc(hc=>socket)[{i}])") or "") for i in range(count)]
    finally:
        KSR.registrar.reg_free_contacts("hc")


def _set_target(uri: str, received: str, sock: str) -> None:
    KSR.pv.sets("$ru", uri)
    if received:
        KSR.pv.sets("$du", received)
    else:
        KSR.resetdsturi()
    if sock:
        KSR.pv.sets("$fs", sock)


def relay_step(ring_timeout: int) -> int:
    ring_ms = ring_timeout * 1000
    # fr: no provisional reply at all (dead phone) ends the step early.
    KSR.tm.t_set_fr(ring_ms, min(ring_ms, 4000))
    KSR.tm.t_on_failure(FAILURE_ROUTE)
    KSR.tm.t_on_reply(REPLY_ROUTE)
    if KSR.tm.t_relay() < 0:
        KSR.tm.t_reply(500, "Server Internal Error - could not forward")
    return EXIT


def on_failure(hunt_on_decline: bool) -> int:
    if KSR.tm.t_is_canceled() > 0:
        KSR.rtpengine.rtpengine_delete0()
        return EXIT
    code = int(pv("$T_reply_code") or 0)
    steps = [s.split(":") for s in (pv("$avp(hunt_steps)") or "").split(",") if s]
    index = int(pv("$avp(hunt_i)") or 0)
    current = steps[index][0] if index < len(steps) else "?"

    if not hunt.hunt_on_after(code, hunt_on_decline):
        log_info(f"hunt {pv('$ci')}: {current} answered {code}, hunt ends")
        KSR.rtpengine.rtpengine_delete0()
        return EXIT

    if index + 1 < len(steps) and KSR.tm.t_next_contacts() > 0:
        log_info(f"hunt {pv('$ci')}: {current} answered {code}, next {steps[index + 1][0]}")
        KSR.pv.seti("$avp(hunt_i)", index + 1)
        return relay_step(int(steps[index + 1][1]))

    status, reason = hunt.exhausted_reply(pv("$avp(hunt_busy)") == "1")
    log_info(f"hunt {pv('$ci')}: {current} answered {code}, chain exhausted: {status}")
    KSR.rtpengine.rtpengine_delete0()
    KSR.tm.t_reply(status, reason)
    return EXIT
