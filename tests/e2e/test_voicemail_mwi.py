"""Message waiting (issue 13, section 2; RFC 3842): a phone subscribed to its box's
message-summary gets NOTIFYs through the proxy: lamp off, on after a new message, off
again once it was listened to. Bad subscriptions get a reason."""
from __future__ import annotations


import pytest

from tests.e2e.media_helpers import tone_share, wait_until_async
from tests.e2e.media_peer import Phone, notifies, subscribe
from tests.e2e.test_voicemail import TONE, box, leave_message, run, uri


def waiting(msg) -> str:
    return msg.body.split("Messages-Waiting:", 1)[1].split("\r\n", 1)[0].strip()


def test_lamp_goes_on_with_a_new_message_and_off_after_listening(proxy):
    owner, owner_pw = box(proxy, "--always", "yes")
    caller, caller_pw = proxy.subscriber()

    async def scenario():
        lamp = await Phone(owner, owner_pw).open()
        try:
            final, call_id = await subscribe(lamp, proxy.address, uri(proxy, owner))
            assert final.status == 200, (final.status, final.reason)
            await wait_until_async(lambda: notifies(lamp, call_id))
            first = notifies(lamp, call_id)[0]
            assert first.get("event") == "message-summary" and waiting(first) == "no"
            assert first.get("subscription-state").startswith("active")
            await leave_message(proxy, caller, caller_pw, owner)
            await wait_until_async(lambda: any(waiting(n) == "yes" for n in notifies(lamp, call_id)), timeout=15)
            on = [n for n in notifies(lamp, call_id) if waiting(n) == "yes"][0]
            assert "Voice-Message: 1/0" in on.body
            count = len(notifies(lamp, call_id))

            listener = await Phone(owner, owner_pw).open()
            try:
                call = await listener.call(proxy.address, uri(proxy, proxy.settings.voicemail_number), wait_for=(200,))
                await wait_until_async(lambda: tone_share(call.received()[-4000:], TONE) > 0.7, timeout=60)
                await wait_until_async(lambda: len(notifies(lamp, call_id)) > count and
                                       waiting(notifies(lamp, call_id)[-1]) == "no", timeout=30)
                call.bye()
            finally:
                listener.close()
            assert "Voice-Message: 0/1" in notifies(lamp, call_id)[-1].body
        finally:
            lamp.close()
    run(scenario(), timeout=150)


@pytest.mark.parametrize("event,target,status", [
    ("presence", "own", 489),   # message-summary goes to the media service, dialog to presence (BLF), others 489
    ("message-summary", "other", 403),
])
def test_bad_subscriptions_are_refused(proxy, event, target, status):
    owner, owner_pw = box(proxy)
    other, _ = proxy.subscriber()

    async def scenario():
        phone = await Phone(owner, owner_pw).open()
        try:
            final, _ = await subscribe(phone, proxy.address, uri(proxy, owner if target == "own" else other), event=event)
            return final
        finally:
            phone.close()
    final = run(scenario())
    assert final.status == status and final.reason


def test_subscriber_without_a_box_gets_404(proxy):
    number, password = proxy.subscriber()

    async def scenario():
        phone = await Phone(number, password).open()
        try:
            final, _ = await subscribe(phone, proxy.address, uri(proxy, number))
            return final
        finally:
            phone.close()
    final = run(scenario())
    assert final.status == 404 and "no voicemail box" in final.reason


def test_unsolicited_notify_to_a_registered_phone_configured_so(proxy):
    from tests.e2e.media_peer import register
    owner, owner_pw = box(proxy, "--always", "yes", "--mwi-notify", "yes")
    quiet, quiet_pw = box(proxy, "--always", "yes")           # not configured: no NOTIFY
    caller, caller_pw = proxy.subscriber()

    async def scenario():
        lamp = await Phone(owner, owner_pw).open()
        other = await Phone(quiet, quiet_pw).open()
        try:
            assert (await register(lamp, proxy.address)).status == 200
            assert (await register(other, proxy.address)).status == 200
            await leave_message(proxy, caller, caller_pw, owner)
            await wait_until_async(lambda: notifies(lamp, None), timeout=15)
            await leave_message(proxy, caller, caller_pw, quiet)
            return notifies(lamp, None), notifies(other, None)
        finally:
            lamp.close()
            other.close()
    got, none = run(scenario(), timeout=120)
    assert waiting(got[-1]) == "yes" and got[-1].get("event") == "message-summary"
    assert none == [], "a box without --mwi-notify must not send unsolicited NOTIFYs"
