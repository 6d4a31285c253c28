"""Applies a RingPlan: rings members one after another (serial forking, hunt groups), or all
at once (ring-all groups, queue offers); every registered device of a member rings at once.
KSR adapter code; the decisions are in kemi.hunt.

Transaction AVPs (failure and reply routes may run in other worker processes; names and
encodings in kemi/names.py, the order of the hunt's rules in kemi/core/ringing.py):
  $avp(hunt_steps)     "number:seconds,..." registered members in order ("*:seconds" for ring-all)
  $avp(hunt_i)         index of the step ringing now
  $avp(hunt_busy)      1 once any device answered busy (486/600), set by the reply route
  $avp(hunt_fallback)  dial string to route to when nobody answered (timeout destination)
  $avp(branch_members) "ip:port=number,..." which member each device belongs to, so the
                       reply route knows who answered (replies come from the device address)
"""
from __future__ import annotations

import KSR  # provided by app_python3

from kemi import hunt, instrument, journal, long_calls, names, nat
from kemi.core import ringing as _hunt_machine
from kemi.ksr import EXIT, log_info, new_transaction, pv

LOCATION = "location"
FAILURE_ROUTE = "ksr_failure_hunt"
REPLY_ROUTE = "ksr_reply_media"
DEAD_DEVICE_MS = 4000   # no provisional reply at all: the device is gone, move on
# media: set by the handler; may send an unanswered call to voicemail instead of a failure
# reply: UNANSWERED(event, fresh) with event busy / no_answer / unregistered -> EXIT or None
UNANSWERED = None


def start(plan, domain: str, caller: str, fresh: bool = True) -> int | None:
    """Start ringing. `fresh`: called from the request route (no transaction yet).
    Returns None when nobody can be rung and the plan has a fallback to route to."""
    steps = load_branches(plan.steps, domain, plan.parallel)
    call_id = pv("$ci")
    for skipped in sorted({s.number for s in plan.steps} - {s.number for s in steps}):
        journal.leg_ended(call_id, skipped, "not_registered")
    for step in (steps if plan.parallel else steps[:1]):
        journal.offered(call_id, step.number)
    if not steps:
        if plan.fallback:
            log_info(f"call {caller} -> {plan.dialled}: nobody available, overflow to {plan.fallback}")
            return None
        if UNANSWERED is not None and (diverted := UNANSWERED("unregistered", fresh)) is not None:   # media
            return diverted
        log_info(f"call {caller} -> {plan.dialled}: no member registered")
        reply(480, "Temporarily Unavailable - not registered", fresh)
        journal.call_ended(call_id, 480, "not registered")
        return EXIT
    log_info(f"call {caller} -> {plan.dialled} ({plan.kind}): "
             + (" + " if plan.parallel else " > ").join(f"{s.number}/{s.ring_timeout}s" for s in steps))
    if fresh and not new_transaction():
        return EXIT
    long_calls.set_invite_lifetime(steps[:1] if plan.parallel else steps)   # phones: the flow's ring time
    hunt_steps = ((_hunt_machine.HuntStep("*", steps[0].ring_timeout),) if plan.parallel
                  else tuple(_hunt_machine.HuntStep(s.number, s.ring_timeout) for s in steps))
    KSR.pv.sets(names.HUNT_STEPS, names.encode_hunt_steps(hunt_steps))
    KSR.pv.seti(names.HUNT_I, 0)
    KSR.pv.seti(names.HUNT_BUSY, 0)
    KSR.pv.sets(names.HUNT_FALLBACK, plan.fallback or "")
    if not next_contacts(first=True):
        return EXIT
    if fresh and KSR.sdpops.sdp_content() > 0:
        nat.media_request("INVITE")   # phones: SIP-source-address for NATed callers
    return relay_step(steps[0].ring_timeout)


def reply(code: int, reason: str, fresh: bool) -> None:
    instrument.call_ended(code)
    if fresh:
        KSR.sl.sl_send_reply(code, reason)
    else:
        KSR.tm.t_reply(code, reason)


def next_contacts(first: bool) -> bool:
    # t_next_contacts() returns -2 when there was only one device (nothing was loaded).
    if (first and KSR.tm.t_load_contacts() < 0) or KSR.tm.t_next_contacts() == -1:
        KSR.tm.t_reply(500, "Server Internal Error - cannot load contacts")
        instrument.call_ended(500)
        return False
    return True


def load_branches(steps, domain: str, parallel: bool = False) -> list[hunt.Step]:
    """Put every registered device of every step into the destination set, with q-values
    that fall step by step, so t_load_contacts() orders them for serial forking and a
    member's devices (same q) ring together; `parallel` puts everyone in one step.

    t_load_contacts() always ranks the Request-URI's own q (unset) below every set value,
    so the last step's devices get no q either and the R-URI becomes one of them. Returns
    the steps that have at least one device."""
    registered = []
    for step in steps:
        contacts = _contacts(step.number, domain)
        if contacts:
            registered.append((step, contacts))
    devices = []
    for index, (step, contacts) in enumerate(registered):
        last_step = parallel or index == len(registered) - 1
        q = "" if last_step else f"{1.0 - index / 100:.2f}"
        for position, (uri, received, sock) in enumerate(contacts):
            devices.append(f"{_hostport(received or uri)}={step.number}")
            _set_target(uri, received, sock)
            if index == len(registered) - 1 and position == len(contacts) - 1:
                break  # stays in the R-URI
            KSR.corex.append_branch_uri_q("", q)
    KSR.pv.sets("$avp(branch_members)", ",".join(devices))
    return [step for step, _contacts in registered]


def _hostport(uri: str) -> str:
    """'sip:user@1.2.3.4:5060;transport=udp' -> '1.2.3.4:5060' (port 5060 if absent)."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.split("@", 1)[-1].split(";", 1)[0].split(">", 1)[0]
    return rest if ":" in rest.rsplit("]", 1)[-1] else f"{rest}:5060"


def ringing_members() -> list[str]:
    """The members whose devices are in the step ringing now."""
    members = []
    for item in (pv("$avp(branch_members)") or "").split(","):
        number = item.partition("=")[2]
        if number and number not in members:
            members.append(number)
    return members


def member_of_reply() -> str | None:
    """The member whose device sent the reply being processed."""
    source = f"{pv('$si')}:{pv('$sp')}"
    for item in (pv("$avp(branch_members)") or "").split(","):
        device, _, number = item.partition("=")
        if device == source:
            return number
    return None


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


def relay_step(ring_timeout: int, failure_route: str = FAILURE_ROUTE) -> int:
    ring_ms = ring_timeout * 1000
    return relay(ring_ms, min(ring_ms, DEAD_DEVICE_MS), failure_route)


def relay(ring_ms: int, no_response_ms: int, failure_route: str, branch_route: str | None = None) -> int:
    """Send the branches of this step: `ring_ms` after a provisional reply, `no_response_ms`
    without any reply, then the failure route decides what comes next."""
    KSR.tm.t_set_fr(ring_ms, no_response_ms)
    if branch_route:
        KSR.tm.t_on_branch(branch_route)
    KSR.tm.t_on_failure(failure_route)
    KSR.tm.t_on_reply(REPLY_ROUTE)
    if KSR.tm.t_relay() < 0:
        KSR.tm.t_reply(500, "Server Internal Error - could not forward")
        instrument.call_ended(500)
    return EXIT


def on_failure(hunt_on_decline: bool) -> int | str:
    """The step ringing now ended without an answer. Returns EXIT, or the fallback dial
    string when nobody answered and the group overflows somewhere. The order of the rules
    is the pure hunt state machine's (kemi.core.ringing); this applies its action."""
    state = names.decode_hunt(pv(names.HUNT_STEPS), pv(names.HUNT_I), pv(names.HUNT_BUSY), pv(names.HUNT_FALLBACK))
    current = state.current
    call_id = pv("$ci")
    ringing = ringing_members() if current == "*" else [current]
    canceled = KSR.tm.t_is_canceled() > 0
    code = 487 if canceled else int(pv("$T_reply_code") or 0)
    for member in ringing:
        journal.leg_ended(call_id, member, "cancelled" if canceled else hunt.leg_outcome(code), code)
    state, action = _hunt_machine.hunt_on_failure(state, _hunt_machine.StepFailed(code, canceled), hunt_on_decline)
    if isinstance(action, _hunt_machine.RingNext):
        if KSR.tm.t_next_contacts() > 0:
            log_info(f"hunt {call_id}: {current} answered {code}, next {action.step.number}")
            journal.offered(call_id, action.step.number)
            KSR.pv.seti(names.HUNT_I, state.index)
            return relay_step(action.step.ring_timeout)
        action = _hunt_machine.hunt_exhausted(state)        # the next step's devices are gone
    if isinstance(action, _hunt_machine.Cancelled):
        KSR.rtpengine.rtpengine_delete0()
        instrument.call_ended(487)
        journal.call_ended(call_id, 487, "caller hung up")
        return EXIT
    if isinstance(action, _hunt_machine.PassOn):
        log_info(f"hunt {call_id}: {current} answered {code}, hunt ends")
        KSR.rtpengine.rtpengine_delete0()
        instrument.call_ended(code)
        journal.call_ended(call_id, code)
        return EXIT
    if isinstance(action, _hunt_machine.Overflow):
        log_info(f"hunt {call_id}: {current} answered {code}, nobody answered: overflow to {action.target}")
        return action.target
    if UNANSWERED is not None:   # media: the box's rule may take the call to voicemail
        diverted = UNANSWERED("busy" if action.code in hunt.BUSY_CODES else "no_answer", False)
        if diverted is not None:
            return diverted
    log_info(f"hunt {call_id}: {current} answered {code}, chain exhausted: {action.code}")
    KSR.rtpengine.rtpengine_delete0()
    KSR.tm.t_reply(action.code, action.reason)
    instrument.call_ended(action.code)
    journal.call_ended(call_id, action.code, action.reason)
    return EXIT
