"""NAT traversal (issue 12, item 2) without private addresses on the wire: the phone sends
from 127.0.0.1:PORT but writes 127.0.0.99:5999 (where nothing listens) in its Via, Contact
and SDP, as a phone behind a NAT router would. It must still get its replies, the calls, the
in-dialog requests (ACK, re-INVITE, BYE), the media, and keepalives for its binding."""
from __future__ import annotations


from tests.e2e.helpers import explain, header, wait_until
from tests.e2e.rawphone import RawPhone
from tests.e2e.test_listen import RtpCounter

PRIVATE = ("127.0.0.99", 5999)


def nated_phone(proxy, media_port: int) -> RawPhone:
    number, password = proxy.subscriber()
    phone = RawPhone(proxy.address, number, password, advertise=PRIVATE, media_port=media_port)
    reg = phone.register()
    assert reg.status == 200, f"the REGISTER's reply must reach the NATed phone: {reg.text()}"
    return phone


def test_nated_callee_gets_the_call_the_in_dialog_requests_the_media_and_keepalives(proxy):
    media = RtpCounter()
    phone = nated_phone(proxy, media.port)
    caller, cpw = proxy.subscriber()
    try:
        call = proxy.call(caller, cpw, phone.number, hold=True, hold_ms=3000, rtp=True, timeout=30)
        assert call.proc.returncode == 0, explain(call, proxy.logs())
        invites = phone.requests("INVITE")
        assert len(invites) == 2, "the call and the caller's hold re-INVITE reach the NATed phone"
        assert len(phone.requests("ACK")) == 2 and len(phone.requests("BYE")) == 1
        # the caller's in-dialog requests were addressed to the alias of the private Contact
        contact = [m for m in call.received("SIP/2.0 200")][0]
        assert "alias=127.0.0.1~" in contact, contact
        # media: rtpengine sent the caller's RTP to the phone's public address, not 127.0.0.99
        assert sum(media.sources.values()) > 20, media.sources
        assert "127.0.0.99" not in invites[0].body, "the phone gets rtpengine's SDP"
        assert "c=IN IP4 127.0.0.99" not in call.received("SIP/2.0 200")[0], "nor does the caller"
        # keepalive: nathelper pings the NATed contact at its public address
        wait_until(lambda: phone.requests("OPTIONS"), timeout=45)
        assert "keepalive" in phone.requests("OPTIONS")[0].get("From")
    finally:
        phone.stop()
        media.stop()


def test_nated_caller_gets_replies_media_and_can_hang_up(proxy):
    media = RtpCounter()
    phone = nated_phone(proxy, media.port)
    callee_number, callee_pw = proxy.subscriber()
    callee = proxy.phone(callee_number, callee_pw, "answer", rtp=True)
    try:
        answer = phone.call(callee_number)
        assert answer.status == 200, answer.text()
        phone.ack(answer)
        wait_until(lambda: callee.uas.received("ACK"))
        invite = callee.invites()[0]
        assert "c=IN IP4 127.0.0.99" not in invite, "the callee gets rtpengine's media address: " + invite
        assert "alias=127.0.0.1~" in header(invite, "Contact"), "the callee's BYE would reach the NAT"
        wait_until(lambda: sum(media.sources.values()) > 20, timeout=15)
        bye = phone.bye(answer)
        assert bye.status == 200, bye.text()
        wait_until(lambda: callee.uas.received("BYE"))
    finally:
        phone.stop()
        media.stop()
