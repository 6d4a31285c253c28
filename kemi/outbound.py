"""Applies a TrunkPlan: an external call goes to one trunk address after another until one
does not fail (5xx, 408, no response). KSR adapter code; decisions are in kemi.trunks and
kemi.identity.

Transaction AVPs (the failure and branch routes may run in other workers; names and
encodings in kemi/names.py, the failover order in kemi/core/ringing.py):
  $avp(trunk_steps)   "trunk_id uri,trunk_id uri,..." in failover order
  $avp(trunk_i)       index of the attempt in progress
  $avp(cid<trunk_id>) the caller identity to present on that trunk (ksr.encode_identity)
"""
from __future__ import annotations

import KSR  # provided by app_python3

from kemi import instrument, names, nat, ring
from kemi.core.ringing import Cancelled, Overflow, PassOn, StepFailed, TrunkAttempt, TryNext, trunk_on_failure
from kemi.ksr import EXIT, apply_identity, decode_identity, encode_identity, log_info, new_transaction, pv

BRANCH_ROUTE = "ksr_branch_trunk"
FAILURE_ROUTE = "ksr_failure_trunk"
NO_RESPONSE_MS = 4000   # no reply at all from a trunk: fail over after this
RING_MS = 120000        # a far end that rings is given two minutes


def start(plan, caller: str) -> int:
    log_info(f"call {caller} -> {plan.dialled} (trunk): " + " > ".join(s.uri for s in plan.steps))
    if not new_transaction():
        return EXIT
    attempts = tuple(TrunkAttempt(s.trunk_id, s.uri) for s in plan.steps)
    KSR.pv.sets(names.TRUNK_STEPS, names.encode_trunk_attempts(attempts))
    for trunk_id, who in plan.identities.items():
        KSR.pv.sets(f"$avp(cid{trunk_id})", encode_identity(who))
    if KSR.sdpops.sdp_content() > 0:
        nat.media_request("INVITE")   # phones: SIP-source-address for NATed callers
    return _attempt(0, plan.steps[0].uri)


def _state():
    return names.decode_trunk(pv(names.TRUNK_STEPS), pv(names.TRUNK_I), pv(names.TRUNK_OVERFLOW))


def _attempt(index: int, uri: str) -> int:
    KSR.pv.seti(names.TRUNK_I, index)
    KSR.pv.sets("$ru", uri)
    KSR.resetdsturi()
    return ring.relay(RING_MS, NO_RESPONSE_MS, FAILURE_ROUTE, BRANCH_ROUTE)


def on_branch(domain: str) -> int:
    """Per attempt: present the identity chosen for this trunk (seed 002 rule: the caller
    ID of the trunk that routes the call)."""
    state = _state()
    encoded = pv(f"$avp(cid{state.attempts[state.index].trunk_id})")
    if encoded:
        apply_identity(decode_identity(encoded), domain)
    return 1


def on_failure() -> int | str:
    """An attempt failed: the pure failover machine (kemi.core.ringing) says what next.
    Returns EXIT, or a flow's "flow:failed" when every trunk failed."""
    state = _state()
    canceled = KSR.tm.t_is_canceled() > 0
    code = 487 if canceled else int(pv("$T_reply_code") or 0)
    failed = state.attempts[state.index].uri
    state, action = trunk_on_failure(state, StepFailed(code, canceled))
    if isinstance(action, TryNext):
        log_info(f"trunk call {pv('$ci')}: {failed} failed with {code}, trying {action.attempt.uri}")
        return _attempt(state.index, action.attempt.uri)
    if isinstance(action, Overflow):   # flows: every trunk failed, the flow goes on
        return action.target
    KSR.rtpengine.rtpengine_delete0()
    if isinstance(action, Cancelled):
        instrument.call_ended(487)
        return EXIT
    if isinstance(action, PassOn):
        instrument.call_ended(code)
        return EXIT   # the far end's answer (busy, not found, ...) goes to the caller
    log_info(f"trunk call {pv('$ci')}: {failed} failed with {code}, no trunk left: {action.code}")
    KSR.tm.t_reply(action.code, action.reason)
    instrument.call_ended(action.code)
    return EXIT
