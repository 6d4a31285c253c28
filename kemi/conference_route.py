"""Routing calls to conference rooms (issue 14, section 1).

Pure part (no KSR): which media node a room's number goes to (`node_for`) and the contract's
header (`conference;room=N`). A room lives on one media service node, stored with the room
(`conference_room.node`, NULL = this proxy's KEMI_MEDIA_SIP); the directory snapshot carries
number -> node, so the per-call path makes no query and a proxy anywhere sends every
participant of a room to the same node.
Adapter part (below `# ---- KSR`): relay the call there with rtpengine in front, like
voicemail; a node that does not answer within MEDIA_NO_RESPONSE_MS gets the caller
`503 Service Unavailable - conference service is not reachable`.
"""
from __future__ import annotations

from kemi.voicemail_route import APP_HEADER, MEDIA_NO_RESPONSE_MS, TRANSCODE_FLAGS, app_header

FAILURE_ROUTE = "ksr_failure_conference"


def node_for(rooms: dict[str, str], number: str, default_node: str) -> str | None:
    """The media node serving `number`, or None when it is not a conference number."""
    if number not in rooms:
        return None
    return rooms[number] or default_node


def header(number: str) -> str:
    return app_header("conference", room=number)


def load_rooms(conn) -> dict[str, str]:
    with conn.cursor() as cur:
        cur.execute("SELECT number, coalesce(node, '') FROM conference_room")
        return {r[0]: r[1] for r in cur}


# ---- KSR adapter ------------------------------------------------------------------------

def route(directory, number: str, default_node: str) -> int | None:
    """A call to a conference number goes to its room's node; None: not a conference number."""
    node = node_for(getattr(directory, "conferences", {}) or {}, number, default_node)
    if node is None:
        return None
    return relay(node, number)


def relay(node: str, number: str) -> int:
    import KSR
    from kemi import instrument
    from kemi.ksr import EXIT, log_info, new_transaction, pv
    log_info(f"call {pv('$ci')}: to conference room {number} on {node}")
    KSR.rr.record_route()
    if not new_transaction():
        return EXIT
    if KSR.sdpops.sdp_content() > 0:
        KSR.rtpengine.rtpengine_manage(TRANSCODE_FLAGS)
    KSR.hdr.append(f"{APP_HEADER}: {header(number)}\r\n")
    KSR.pv.sets("$ru", f"sip:conference@{node}")
    KSR.pv.sets("$du", f"sip:{node}")
    KSR.tm.t_set_fr(120000, MEDIA_NO_RESPONSE_MS)
    KSR.tm.t_on_failure(FAILURE_ROUTE)
    KSR.tm.t_on_reply("ksr_reply_media")
    if KSR.tm.t_relay() < 0:
        KSR.tm.t_reply(503, "Service Unavailable - conference service unreachable")
        instrument.call_ended(503)
    return EXIT


def on_failure() -> int:
    """The room's node refused or did not answer: a clear answer to the caller."""
    import KSR
    from kemi import instrument
    from kemi.ksr import EXIT, log_info, pv
    KSR.rtpengine.rtpengine_delete0()
    if KSR.tm.t_is_canceled() > 0:
        return EXIT
    code = int(pv("$T_reply_code") or 0)
    if code in (0, 408) or (code >= 500 and code != 503):
        log_info(f"call {pv('$ci')}: conference service did not answer ({code}): 503")
        KSR.tm.t_reply(503, "Service Unavailable - conference service is not reachable")
        instrument.call_ended(503)
        return EXIT
    reason = pv("$T_reply_reason") or "Conference service refused"
    KSR.tm.t_reply(code, reason)   # 404 no room, 503 room full, 400 ...
    instrument.call_ended(code)
    return EXIT
