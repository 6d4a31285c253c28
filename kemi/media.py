"""Adapter: refuse an offer whose SDP rtpengine could not take (kemi/sdp.py decides)."""
from __future__ import annotations

import KSR  # provided by app_python3

from kemi import instrument, sdp
from kemi.ksr import log_info, pv


def refuse_malformed_sdp() -> bool:
    """True when the INVITE was answered 488 here (stateless): that caller alone is refused,
    rtpengine never sees the SDP and stays in use for every other call."""
    if KSR.sdpops.sdp_content() <= 0 and "sdp" not in (pv("$hdr(Content-Type)") or "").lower():
        return False
    why = sdp.problem(pv("$rb"))
    if why is None:
        return False
    log_info(f"refused INVITE {pv('$ci')} from {pv('$si')}:{pv('$sp')}: {why}")
    instrument.call_ended(488)
    KSR.sl.sl_send_reply(488, f"Not Acceptable Here - {why}")
    return True
