"""A real SIP client from Debian's archive (baresip) through the proxy (issue 12, item 8):
it registers with digest auth, calls a colleague, audio flows both ways through rtpengine
(packets counted on both legs), and a BLF key subscribed to baresip's number sees the call."""
from __future__ import annotations

from tests.e2e.baresip import Baresip
from tests.e2e.helpers import explain, header, wait_until
from tests.e2e.rawphone import RawPhone
from tests.e2e.test_phones_late_offer import packets_per_leg
from tests.e2e.test_presence import BLF_HEADERS, states
from rtpengine.ng import NgClient


def registered(proxy, phone: Baresip) -> bool:
    """baresip saw its 200 OK, and the proxy's location table has the contact."""
    return "200 OK" in phone.output() and f"127.0.0.1:{phone.sip_port}" in proxy.stack.kamailio.rpc("ul.dump")


def test_baresip_registers_calls_with_audio_both_ways_and_lights_a_blf_key(proxy):
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    phone = Baresip(proxy.address, a, pa, proxy.workdir)
    proxy.phones.append(phone)
    callee = proxy.phone(b, pb, "answer", rtp=True)
    lamp_number, lpw = proxy.subscriber()
    lamp = RawPhone(proxy.address, lamp_number, lpw)
    proxy.phones.append(lamp)
    try:
        wait_until(lambda: registered(proxy, phone), timeout=15)
        reply = lamp.request("SUBSCRIBE", f"sip:{a}@{proxy.address[0]}", headers=BLF_HEADERS)
        assert reply.status in (200, 202), reply.text()
        assert phone.command("dial", f"sip:{b}@{proxy.address[0]}:{proxy.address[1]}").get("ok")
        wait_until(lambda: callee.uas.received("ACK"), timeout=15)
        call_id = header(callee.invites()[0], "Call-ID")
        ng = NgClient(proxy.settings.rtpengine_ng)
        counts: dict[str, int] = {}

        def both_ways() -> bool:
            counts.update(packets_per_leg(ng, call_id))
            return len(counts) == 2 and min(counts.values()) > 50

        wait_until(both_ways, timeout=15)
        phone.command("hangup")
        wait_until(lambda: callee.uas.received("BYE"), timeout=10)
        wait_until(lambda: "terminated" in states(lamp)[1:], timeout=10)
        seen = states(lamp)
        assert "confirmed" in seen and seen.index("confirmed") < len(seen) - 1, seen
    except AssertionError:
        print(explain(phone.output()[-5000:], callee.uas, proxy.logs()))
        raise
