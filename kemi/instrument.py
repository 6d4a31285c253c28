"""Reads the SIP facts that metrics need (KSR adapter) and hands them to kemi.metrics.

A call's metric state lives in transaction AVPs, because its reply and failure routes may
run in other worker processes than the one that received the INVITE:
  $avp(kemi_t0)    time.monotonic() when the INVITE reached the routing code (CLOCK_MONOTONIC
                   is one clock for every process on the host)
  $avp(kemi_t18)   time of the first provisional reply (ringing) received
  $avp(kemi_kind)  $avp(kemi_name)  the call's label: kind and group / queue / trunk name
  $avp(kemi_done)  set once the call's outcome is counted (answers and failures count once)
AVPs set before t_newtran() move into the transaction with the request.

In-dialog requests carry the label in a Record-Route parameter (;kl=<kind letter><name>),
so the BYE that ends the call can label the MOS, jitter and loss rtpengine reports.

Every function here swallows its own errors: metrics must never break a call.
"""
from __future__ import annotations

import re
import time

import KSR  # provided by app_python3

from kemi import metrics

AVP_T0 = "$avp(kemi_t0)"
AVP_T18 = "$avp(kemi_t18)"
AVP_KIND = "$avp(kemi_kind)"
AVP_NAME = "$avp(kemi_name)"
AVP_DONE = "$avp(kemi_done)"
# Filled by Kamailio's rtpengine module after rtpengine_delete() (modparams in kamailio.cfg).
MOS_PVS = ("$avp(mos_average)", "$avp(mos_average_jitter)", "$avp(mos_average_packetloss)",
           "$avp(mos_average_roundtrip)")
# Step counters of kemi.ring / kemi.outbound (index of the step in progress).
STEP_AVPS = ("$avp(hunt_i)", "$avp(trunk_i)")
RR_PARAM = "kl"
KIND_LETTERS = {"direct": "d", "hunt": "h", "ringall": "r", "queue": "q", "trunk": "t", "other": "o"}
LETTER_KINDS = {v: k for k, v in KIND_LETTERS.items()}
_RR_RE = re.compile(r";kl=([a-z])([A-Za-z0-9_.-]{0,64})")


def _get(name: str):
    return KSR.pv.get(name)


def _num(value) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _failed(where: str, err: Exception) -> None:
    metrics._swallow(where, err)


def invite_received() -> None:
    """Start of a new INVITE's routing: the setup-latency clock starts."""
    try:
        KSR.pv.sets(AVP_T0, f"{time.monotonic():.6f}")
    except Exception as err:
        _failed("invite_received", err)


def call_started(plan, directory, fresh: bool = True) -> None:
    """The call was routed to a destination: count the seizure and label the call.
    `fresh`: from the request route (the Record-Route header is still being built)."""
    try:
        kind, name = metrics.call_label(plan, directory)
        KSR.pv.sets(AVP_KIND, kind)
        KSR.pv.sets(AVP_NAME, name)
        if fresh:
            KSR.rr.add_rr_param(f";{RR_PARAM}={KIND_LETTERS.get(kind, 'o')}{'' if name == 'none' else name}")
        metrics.call_seized(kind, name)
    except Exception as err:
        _failed("call_started", err)


def on_reply() -> None:
    """Every reply of an INVITE branch (onreply route): ringing starts, or the call is answered."""
    try:
        t0 = _get(AVP_T0)
        if t0 is None:
            return                      # not an initial INVITE we route (re-INVITE, ...)
        code = int(_get("$rs") or 0)
        if 100 < code < 200:
            if _get(AVP_T18) is None:
                KSR.pv.sets(AVP_T18, f"{time.monotonic():.6f}")
        elif 200 <= code < 300:
            call_ended(code)
    except Exception as err:
        _failed("on_reply", err)


def call_ended(code: int) -> None:
    """The caller gets this final reply (2xx, or a failure from a route). Counted once per call."""
    try:
        t0 = _num(_get(AVP_T0))
        if t0 is None or _get(AVP_DONE) is not None:
            return
        KSR.pv.seti(AVP_DONE, 1)
        now = time.monotonic()
        t18 = _num(_get(AVP_T18))
        kind = str(_get(AVP_KIND) or "none")
        steps = None
        if kind != "none":
            index = next((v for v in (_num(_get(avp)) for avp in STEP_AVPS) if v is not None), 0)
            steps = int(index) + 1
        metrics.call_finished(kind, str(_get(AVP_NAME) or "none"), int(code), now - t0,
                              None if t18 is None else now - t18, steps)
    except Exception as err:
        _failed("call_ended", err)


def dialog_label() -> tuple[str, str]:
    """(kind, name) of an in-dialog request, from our Record-Route parameter."""
    route = str(_get("$route_uri") or "")
    match = _RR_RE.search(route)
    if match is None:
        return "none", "none"
    return LETTER_KINDS.get(match.group(1), "other"), match.group(2) or "none"


def call_quality() -> None:
    """After rtpengine_delete() on a BYE: rtpengine's MOS, jitter, loss and round trip."""
    try:
        mos, jitter, loss, rtt = (_num(_get(pv)) for pv in MOS_PVS)
        kind, name = dialog_label()
        metrics.quality_report(kind, name, mos is not None and mos > 0)   # phones: MOS coverage
        if mos is None or mos <= 0:
            return
        metrics.call_quality(kind, name, mos, jitter, loss, rtt)
    except Exception as err:
        _failed("call_quality", err)


def handler_error(where: str, replied: bool = True) -> None:
    """An exception reached a route boundary. `replied`: the route answered 500, which ends
    a new INVITE (a branch or reply route goes on)."""
    try:
        metrics.handler_error(where)
        if replied and _get("$rm") == "INVITE" and KSR.siputils.has_totag() < 0:
            call_ended(500)
    except Exception as err:
        _failed("handler_error", err)


def registration(accepted: bool) -> None:
    metrics.registration(accepted)


def auth_failure(reason: str) -> None:
    try:
        metrics.auth_failure(_get("$rm"), reason)
    except Exception as err:
        _failed("auth_failure", err)


metrics.set_error_log(lambda msg: KSR.err(f"kemi: {msg}\n"))
metrics.prime()
