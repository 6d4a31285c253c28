"""Which rtpengine operation a message's SDP needs, for every offer/answer order. Pure: no KSR.

RFC 3264 offers and answers travel in different messages depending on the phone:

    early offer          INVITE (offer)          -> 18x/2xx (answer)
    late offer           INVITE (no SDP)         -> 2xx (offer)        -> ACK (answer)
    re-INVITE, no SDP    re-INVITE (no SDP)      -> 2xx (offer)        -> ACK (answer)
    reliable 18x         INVITE (no SDP)         -> 18x (offer)        -> PRACK (answer)
    UPDATE               UPDATE (offer)          -> 2xx (answer)

Kamailio's `rtpengine_manage()` tells offers from answers for INVITE/ACK/UPDATE by itself (a
2xx to an INVITE that carried no SDP is an offer, an ACK with SDP an answer); a PRACK with SDP
is always an answer (to the 18x's offer) and has to be named. `action()` is the whole table.
"""
from __future__ import annotations

MANAGE = "manage"      # rtpengine_manage(): offer or answer as the module decides
ANSWER = "answer"      # rtpengine_answer()
DELETE = "delete"      # rtpengine_delete()

# SIP-source-address: take the media address from where the signalling came from (the NAT's
# public side), keeping the SDP's port; rtpengine also learns the real port from the first
# packet (symmetric RTP). Phones that are not behind NAT keep their SDP address as sent.
NAT_FLAGS = "SIP-source-address"
PLAIN_FLAGS = ""   # rtpengine_manage() without flags: the SDP address as sent


def action(is_request: bool, method: str, has_sdp: bool, status: int = 0) -> str | None:
    """`method` is the request's method, or for a reply the method of its CSeq."""
    if is_request:
        if method in ("BYE", "CANCEL"):
            return DELETE
        if not has_sdp:
            return None
        if method in ("INVITE", "ACK", "UPDATE"):
            return MANAGE
        if method == "PRACK":
            return ANSWER
        return None
    if status >= 300 or not has_sdp:
        return None   # failures: the failure routes decide whether the call is over
    if method == "INVITE" and 100 < status < 300:
        return MANAGE
    if method == "UPDATE" and 200 <= status < 300:
        return MANAGE
    return None


def flags(nated: bool) -> str:
    return NAT_FLAGS if nated else PLAIN_FLAGS
