"""BLF (issue 12, item 4): a desk phone's busy lamp key subscribes to a colleague's dialog
state and sees it ring (early), talk (confirmed) and hang up (terminated); only subscribers may
subscribe, only to the dialog package, only to existing numbers, and not without limit."""
from __future__ import annotations

import re
import threading

import pytest

from tests.e2e.helpers import explain, wait_until
from tests.e2e.rawphone import RawPhone

BLF_HEADERS = "Event: dialog\nAccept: application/dialog-info+xml\nExpires: 600"


def states(phone: RawPhone) -> list[str]:
    """The dialog states of every NOTIFY the watcher received, in order."""
    out = []
    for notify in phone.requests("NOTIFY"):
        found = re.findall(r"<state[^>]*>\s*(\w+)\s*</state>", notify.body)
        out.append(found[0] if found else "idle")
    return out


def watcher(proxy):
    number, password = proxy.subscriber()
    phone = RawPhone(proxy.address, number, password)
    proxy.phones.append(phone)        # stopped after the test
    return phone


def test_blf_key_sees_ringing_talking_and_idle(proxy):
    colleague, cpw = proxy.subscriber()
    lamp = watcher(proxy)
    reply = lamp.request("SUBSCRIBE", f"sip:{colleague}@{proxy.address[0]}", headers=BLF_HEADERS)
    assert reply.status in (200, 202), reply.text()
    wait_until(lambda: lamp.requests("NOTIFY"))            # the initial state: idle
    assert states(lamp)[0] in ("idle", "terminated"), states(lamp)

    phone = proxy.phone(colleague, cpw, "answer", ring_ms=1500)
    caller, pw = proxy.subscriber()
    call = proxy.call(caller, pw, colleague, hold_ms=1500)
    assert call.proc.returncode == 0, explain(call, phone.uas, proxy.logs())
    wait_until(lambda: "terminated" in states(lamp)[1:], timeout=10)
    seen = states(lamp)
    assert "early" in seen and "confirmed" in seen, seen
    assert seen.index("early") < seen.index("confirmed") < len(seen) - 1 - seen[::-1].index("terminated"), seen
    notify = [n for n in lamp.requests("NOTIFY") if "confirmed" in n.body][0]
    assert notify.get("Event").startswith("dialog") and "application/dialog-info+xml" in notify.get("Content-Type")
    assert f"sip:{colleague}@" in notify.body, "the lamp shows the colleague's dialog"


def test_subscribe_refusals(proxy):
    colleague, _ = proxy.subscriber()
    lamp = watcher(proxy)
    domain = proxy.address[0]
    wrong_event = lamp.request("SUBSCRIBE", f"sip:{colleague}@{domain}",
                               headers="Event: presence\nExpires: 600")
    assert wrong_event.status == 489 and "dialog" in wrong_event.get("Allow-Events"), wrong_event.text()
    unknown = lamp.request("SUBSCRIBE", f"sip:999999999@{domain}", headers=BLF_HEADERS)
    assert unknown.status == 404, unknown.text()

    stranger = RawPhone(proxy.address, colleague, "wrong-password")
    proxy.phones.append(stranger)
    refused = stranger.request("SUBSCRIBE", f"sip:{colleague}@{domain}", headers=BLF_HEADERS)
    assert refused.status in (401, 407), "wrong credentials never get a subscription"

    forged = lamp.request("PUBLISH", f"sip:{colleague}@{domain}", headers="Event: dialog\nExpires: 60",
                          body="<dialog-info/>")
    assert forged.status == 403 and "presence agent" in forged.reason, forged.text()


def test_subscribe_rate_limit(proxy):
    colleague, _ = proxy.subscriber()
    lamp = watcher(proxy)
    statuses = []
    for _ in range(130):           # two one-minute windows at most: one of them goes past 60
        reply = lamp.request("SUBSCRIBE", f"sip:{colleague}@{proxy.address[0]}",
                             headers="Event: dialog\nExpires: 0")
        statuses.append(reply.status)
        if reply.status == 503:
            break
    assert statuses[-1] == 503 and "SUBSCRIBEs a minute" in reply.reason, statuses[-5:]
    assert reply.get("Retry-After") == "60"


# ------------------------------------------------------------------ call pickup

def ringing_call(proxy, caller: RawPhone, dial: str, results: dict) -> threading.Thread:
    """The caller dials in the background; returns once its call rings (180 seen)."""
    thread = threading.Thread(target=lambda: results.setdefault("final", caller.call(dial, timeout=40)))
    thread.start()
    wait_until(lambda: any(m.status == 180 for m in caller.received), timeout=10)
    return thread


def pickup_group(proxy):
    from tests.e2e.phones_groups import ringall
    (ringing, rpw), (picker, ppw) = proxy.subscriber(), proxy.subscriber()
    _name, number = ringall(proxy, [ringing, picker])
    phone = proxy.phone(ringing, rpw, "noanswer")
    caller_number, cpw = proxy.subscriber()
    caller = RawPhone(proxy.address, caller_number, cpw, media_port=4002)
    proxy.phones.append(caller)
    picker_phone = RawPhone(proxy.address, picker, ppw, media_port=4000)   # not registered: never rung
    proxy.phones.append(picker_phone)
    return number, phone, caller, picker_phone


@pytest.mark.parametrize("how", ["directed", "group"])
def test_pickup_code_takes_the_ringing_call(proxy, how):
    group_number, phone, caller, picker = pickup_group(proxy)
    results = {}
    thread = ringing_call(proxy, caller, phone.number if how == "directed" else group_number, results)
    code = f"*8{phone.number}" if how == "directed" else "*8"
    answer = picker.request("INVITE", f"sip:{code}@{proxy.address[0]}", body=picker.sdp())
    thread.join(45)
    assert answer.status == 200, explain(answer.text(), proxy.logs())
    picker.ack(answer)
    replacing = caller.requests("INVITE")
    assert replacing and "early-only" in replacing[0].get("Replaces"), "the caller got the picker's INVITE"
    assert replacing[0].get("Replaces").split(";")[0] == results["final"].get("Call-ID")
    assert results["final"].status == 487, "the caller cancelled its first INVITE"
    wait_until(lambda: phone.uas.received("CANCEL"))
    low, high = proxy.settings.rtp_port_min, proxy.settings.rtp_port_max
    assert low <= int(re.search(r"m=audio (\d+)", answer.body).group(1)) <= high, "media anchored"
    assert picker.bye(answer).status == 200


def test_pickup_refusals(proxy):
    group_number, phone, caller, picker = pickup_group(proxy)
    nothing = picker.request("INVITE", f"sip:*8{phone.number}@{proxy.address[0]}", body=picker.sdp())
    assert nothing.status == 480 and "no call ringing" in nothing.reason, nothing.text()
    bad = picker.request("INVITE", f"sip:*8{phone.number}x@{proxy.address[0]}", body=picker.sdp())
    assert bad.status == 484 and "digits only" in bad.reason, bad.text()
    stranger_number, spw = proxy.subscriber()
    stranger = RawPhone(proxy.address, stranger_number, spw)
    proxy.phones.append(stranger)
    results = {}
    thread = ringing_call(proxy, caller, phone.number, results)
    try:
        refused = stranger.request("INVITE", f"sip:*8{phone.number}@{proxy.address[0]}", body=stranger.sdp())
        assert refused.status == 403 and "no group of yours" in refused.reason, refused.text()
        forged = stranger.request("INVITE", f"sip:{phone.number}@{proxy.address[0]}", body=stranger.sdp(),
                                  headers=f"Replaces: {caller.pending and list(caller.pending)[-1]};to-tag=x;from-tag=y")
        assert forged.status == 403, forged.text()
    finally:
        caller.cancel(list(caller.pending)[-1])
        thread.join(45)
