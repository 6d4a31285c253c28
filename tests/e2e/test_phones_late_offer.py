"""Late offer (issue 12, item 1): SDP in the 200 OK and the ACK goes through rtpengine, so
both directions of the media are anchored, for the first INVITE and for a re-INVITE without
SDP. Counted where it matters: packets received by rtpengine on each leg (NG query)."""
from __future__ import annotations

import re

from rtpengine.ng import NgClient
from tests.e2e import sipp
from tests.e2e.helpers import explain, header, wait_until
from tools.ports import free_port


def late_offer_call(proxy, number: str, password: str, dial: str, hold_ms: int = 4000) -> sipp.Sipp:
    scenario = sipp.render("call_late_offer.xml", proxy.workdir, hold_ms=hold_ms, rtp=sipp.rtp_line(True))
    proc = sipp.Sipp(scenario, [f"{proxy.address[0]}:{proxy.address[1]}", "-p", str(free_port()),
                                "-mp", str(sipp.media_port()), "-s", number, "-au", number, "-ap", password,
                                "-key", "dial", dial, "-timeout", "30s", "-timeout_error"],
                     proxy.workdir, f"lateoffer-{number}-{dial}")
    return proc


def packets_per_leg(ng: NgClient, call_id: str) -> dict[str, int]:
    """Packets rtpengine received from each party (by tag), summed over its streams."""
    try:
        state = ng.query(call_id)
    except Exception:
        return {}
    out = {}
    for tag, info in state.get("tags", {}).items():
        out[tag] = sum(int(stream.get("stats", {}).get("packets", 0))
                       for media in info.get("medias", []) for stream in media.get("streams", []))
    return out


def audio_port(message: str) -> int:
    return int(re.search(r"^m=audio (\d+)", message, re.M).group(1))


def test_late_offer_call_is_anchored_both_ways_and_so_is_a_reinvite_without_sdp(proxy):
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    callee = proxy.phone(b, pb, "hold", rtp=True)
    ng = NgClient(proxy.settings.rtpengine_ng)
    call = late_offer_call(proxy, a, pa, b, hold_ms=6000)
    try:
        wait_until(lambda: callee.uas.received("ACK"), timeout=20)
        call_id = header(callee.invites()[0], "Call-ID")
        counts: dict[str, int] = {}

        def both_legs_flow() -> bool:
            counts.update(packets_per_leg(ng, call_id))
            return len(counts) == 2 and min(counts.values()) > 20

        wait_until(both_legs_flow, timeout=15)
    finally:
        rc = call.wait(40)
    assert rc == 0, explain(call, callee.uas, proxy.logs())
    low, high = proxy.settings.rtp_port_min, proxy.settings.rtp_port_max
    first_invite = callee.invites()[0]
    assert "m=audio" not in first_invite, "a late offer stays late: the callee makes the offer"
    # the caller's offer (in the 200) and the callee's answer (in the ACK) both name rtpengine
    offer = [m for m in call.received("SIP/2.0 200") if header(m, "CSeq") == "2 INVITE"][0]
    assert low <= audio_port(offer) <= high, offer
    acks = [m for m in callee.uas.received("ACK") if "m=audio" in m]
    assert len(acks) == 2, "both ACKs carry the caller's answer, rewritten by rtpengine"
    assert all(low <= audio_port(m) <= high for m in acks), acks
    reoffer = [m for m in call.received("SIP/2.0 200") if header(m, "CSeq") == "3 INVITE"][0]
    assert low <= audio_port(reoffer) <= high, reoffer


# ------------------------------------------------------------------ UPDATE and PRACK

def rawphones(proxy, media: tuple[int, int] = (4020, 4022)):
    from tests.e2e.rawphone import RawPhone
    (a, pa), (b, pb) = proxy.subscriber(), proxy.subscriber()
    caller = RawPhone(proxy.address, a, pa, media_port=media[0])
    callee = RawPhone(proxy.address, b, pb, media_port=media[1])
    proxy.phones.extend([caller, callee])
    assert callee.register().status == 200
    return caller, callee


def test_update_offer_and_answer_go_through_rtpengine(proxy):
    caller, callee = rawphones(proxy)
    answer = caller.call(callee.number)
    assert answer.status == 200, answer.text()
    caller.ack(answer)
    updated = caller.update(answer)
    assert updated.status == 200, updated.text()
    low, high = proxy.settings.rtp_port_min, proxy.settings.rtp_port_max
    offer = [m for m in callee.requests("UPDATE")][0]
    assert low <= audio_port(offer.body) <= high, "the UPDATE's offer names rtpengine"
    assert low <= audio_port(updated.body) <= high, "and so does its answer"
    assert caller.bye(answer).status == 200


def test_reliable_183_offer_answered_in_prack_goes_through_rtpengine(proxy):
    caller, callee = rawphones(proxy, (4024, 4026))
    callee.reliable_offer = True
    answer = caller.request("INVITE", f"sip:{callee.number}@{caller.domain}", headers="Supported: 100rel")
    assert answer.status == 200, answer.text()
    caller.ack(answer)
    low, high = proxy.settings.rtp_port_min, proxy.settings.rtp_port_max
    early = [m for m in caller.received if m.status == 183][0]
    assert low <= audio_port(early.body) <= high, "the 183's offer names rtpengine"
    prack = callee.requests("PRACK")
    assert prack and low <= audio_port(prack[0].body) <= high, "the PRACK's answer names rtpengine"
    assert not callee.requests("INVITE")[0].body.strip(), "a late offer stays late"
    assert caller.bye(answer).status == 200
