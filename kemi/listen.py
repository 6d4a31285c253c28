"""Supervisor listen-in (4# + agent, seed 001). KSR adapter code; who may listen is decided
in kemi.routing.

The proxy answers the supervisor's INVITE itself. rtpengine's `subscribe request` gives a
send-only offer with one m-line per side of the agent's call (10.5 cannot mix), so the
supervisor's INVITE must come without SDP (late offer): the offer goes in our 200 OK, the
supervisor's answer comes in the ACK and is handed to `subscribe answer`. Neither side of
the call hears the supervisor; the supervisor's BYE ends only the subscription.

Shared memory (htables):
  calls  "<number>" -> call-id of that subscriber's current call (caller or answering member);
         "cid:<call-id>" -> the numbers on that call, so a BYE can forget them
  spy    "<supervisor call-id>" -> "<agent call-id>|<subscription to-tag>"
"""
from __future__ import annotations

import KSR  # provided by app_python3

from kemi.ksr import EXIT, log_error, log_info, new_transaction, pv
from rtpengine.ng import NgClient, NgError


def _get(table: str, key: str) -> str | None:
    value = KSR.htable.sht_get(table, key)
    return None if value is None else str(value)


# ------------------------------------------------------------------ who is on which call

def track_answered(numbers: list[str]) -> None:
    """2xx to an initial INVITE: these subscribers are now on this call."""
    numbers = [n for n in numbers if n]
    if not numbers:
        return
    call_id = pv("$ci")
    for number in numbers:
        KSR.htable.sht_sets("calls", number, call_id)
    KSR.htable.sht_sets("calls", f"cid:{call_id}", ",".join(numbers))


def forget_call() -> None:
    """BYE: the call is over for everyone on it."""
    call_id = pv("$ci")
    for number in (_get("calls", f"cid:{call_id}") or "").split(","):
        if number and _get("calls", number) == call_id:
            KSR.htable.sht_rm("calls", number)
    KSR.htable.sht_rm("calls", f"cid:{call_id}")
    KSR.htable.sht_rm("calls", f"sup:{call_id}")   # whisper and barge: a bridged leg's mark


# ------------------------------------------------------------------ the supervisor's call

def start(plan, ng: NgClient) -> int:
    agent_call = _get("calls", plan.agent)
    if agent_call is None:
        KSR.sl.sl_send_reply(480, f"Temporarily Unavailable - {plan.agent} has no current call")
        return EXIT
    if KSR.sdpops.sdp_content() > 0:
        KSR.sl.sl_send_reply(488, "Not Acceptable Here - listen-in needs an INVITE without SDP "
                                  "(two send-only streams are offered in the answer)")
        return EXIT
    try:
        sub = ng.subscribe_request(agent_call)
    except (NgError, OSError) as err:
        log_error(f"listen-in on {plan.agent}: {err}")
        KSR.sl.sl_send_reply(503, "Service Unavailable - media server did not accept the listen-in")
        return EXIT
    if not new_transaction():
        return EXIT
    KSR.htable.sht_sets("spy", pv("$ci"), f"{agent_call}|{sub['to-tag']}")
    transport = pv("$pr") or "udp"
    KSR.hdr.append_to_reply(f"Contact: <sip:listen@{pv('$Ri')}:{pv('$Rp')};transport={transport}>\r\n")
    KSR.textops.set_reply_body(sub["sdp"], "application/sdp")
    KSR.tm.t_reply(200, "OK")
    log_info(f"listen-in: {pv('$fU')} listens to {plan.agent} (call {agent_call})")
    return EXIT


def in_dialog(method: str, ng: NgClient) -> int | None:
    """ACK and BYE of a supervisor's listen-in; None when this is no listen-in dialog."""
    entry = _get("spy", pv("$ci"))
    if entry is None:
        return None
    agent_call, to_tag = entry.split("|", 1)
    try:
        if method == "ACK" and KSR.sdpops.sdp_content() > 0:
            ng.subscribe_answer(agent_call, to_tag, pv("$rb") or "")
        elif method == "BYE":
            KSR.htable.sht_rm("spy", pv("$ci"))
            ng.unsubscribe(agent_call, to_tag)
    except (NgError, OSError) as err:
        log_error(f"listen-in {method} on {agent_call}: {err}")
    if method == "BYE":
        KSR.sl.sl_send_reply(200, "OK")
    elif method != "ACK":
        KSR.sl.sl_send_reply(488, "Not Acceptable Here - a listen-in cannot be changed")
    return EXIT
