"""Applies a TrunkPlan: an external call goes to one trunk address after another until one
does not fail (5xx, 408, no response). KSR adapter code; decisions are in kemi.trunks and
kemi.identity.

Transaction AVPs (the failure and branch routes may run in other workers):
  $avp(trunk_steps)   "trunk_id uri,trunk_id uri,..." in failover order
  $avp(trunk_i)       index of the attempt in progress
  $avp(cid<trunk_id>) the caller identity to present on that trunk (ksr.encode_identity)
"""
from __future__ import annotations

import KSR  # provided by app_python3

from kemi import instrument, nat, ring, trunks
from kemi.ksr import EXIT, apply_identity, decode_identity, encode_identity, log_info, new_transaction, pv

BRANCH_ROUTE = "ksr_branch_trunk"
FAILURE_ROUTE = "ksr_failure_trunk"
NO_RESPONSE_MS = 4000   # no reply at all from a trunk: fail over after this
RING_MS = 120000        # a far end that rings is given two minutes


def start(plan, caller: str) -> int:
    log_info(f"call {caller} -> {plan.dialled} (trunk): " + " > ".join(s.uri for s in plan.steps))
    if not new_transaction():
        return EXIT
    KSR.pv.sets("$avp(trunk_steps)", ",".join(f"{s.trunk_id} {s.uri}" for s in plan.steps))
    for trunk_id, who in plan.identities.items():
        KSR.pv.sets(f"$avp(cid{trunk_id})", encode_identity(who))
    if KSR.sdpops.sdp_content() > 0:
        nat.media_request("INVITE")   # phones: SIP-source-address for NATed callers
    return _attempt(0, plan.steps[0].uri)


def _steps() -> list[tuple[int, str]]:
    out = []
    for item in (pv("$avp(trunk_steps)") or "").split(","):
        trunk_id, _, uri = item.partition(" ")
        out.append((int(trunk_id), uri))
    return out


def _attempt(index: int, uri: str) -> int:
    KSR.pv.seti("$avp(trunk_i)", index)
    KSR.pv.sets("$ru", uri)
    KSR.resetdsturi()
    return ring.relay(RING_MS, NO_RESPONSE_MS, FAILURE_ROUTE, BRANCH_ROUTE)


def on_branch(domain: str) -> int:
    """Per attempt: present the identity chosen for this trunk (seed 002 rule: the caller
    ID of the trunk that routes the call)."""
    trunk_id = _steps()[int(pv("$avp(trunk_i)") or 0)][0]
    encoded = pv(f"$avp(cid{trunk_id})")
    if encoded:
        apply_identity(decode_identity(encoded), domain)
    return 1


def on_failure() -> int:
    if KSR.tm.t_is_canceled() > 0:
        KSR.rtpengine.rtpengine_delete0()
        instrument.call_ended(487)
        return EXIT
    code = int(pv("$T_reply_code") or 0)
    steps = _steps()
    index = int(pv("$avp(trunk_i)") or 0)
    if not trunks.fails_over(code):
        KSR.rtpengine.rtpengine_delete0()
        instrument.call_ended(code)
        return EXIT   # the far end's answer (busy, not found, ...) goes to the caller
    if index + 1 < len(steps):
        log_info(f"trunk call {pv('$ci')}: {steps[index][1]} failed with {code}, trying {steps[index + 1][1]}")
        return _attempt(index + 1, steps[index + 1][1])
    status, reason = trunks.failed_all_reply(code)
    log_info(f"trunk call {pv('$ci')}: {steps[index][1]} failed with {code}, no trunk left: {status}")
    KSR.rtpengine.rtpengine_delete0()
    KSR.tm.t_reply(status, reason)
    instrument.call_ended(status)
    return EXIT
