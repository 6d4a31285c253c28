"""Voicemail says when and from whom each message came ("Message received today at <time>
from <number>", espeak-ng prompts, checked by correlation with the stored prompts), and the
owner's recorded name (key 5) is said in the default greeting (issue 13, section 2)."""
from __future__ import annotations

from datetime import datetime

from media import audio, spoken
from tests.e2e.media_helpers import tone_share, wait_until_async
from tests.e2e.media_peer import Phone
from tests.e2e.test_queue_music import ncc_peak, stored_audio
from tests.e2e.test_voicemail import TONE, box, db, leave_message, run, uri

NAME_HZ = 1800.0


def test_message_date_time_and_caller_are_said(proxy):
    owner, owner_pw = box(proxy, "--always", "yes")
    caller, caller_pw = proxy.subscriber()
    run(leave_message(proxy, caller, caller_pw, owner, seconds=1.5))
    created = db(proxy, "SELECT created_at FROM voicemail_message WHERE box = %s", (owner,))[0][0].astimezone()
    expected = spoken.received(created, datetime.now(created.tzinfo), caller)
    assert expected[:2] == ["vm-received", "day-today"]

    async def listen():
        phone = await Phone(owner, owner_pw).open()
        try:
            call = await phone.call(proxy.address, uri(proxy, proxy.settings.voicemail_number), wait_for=(200,))
            await wait_until_async(lambda: tone_share(call.received()[-4000:], TONE) > 0.7, timeout=90)
            call.bye()
            return call.received()
        finally:
            phone.close()

    heard = run(listen(), timeout=120)
    # the announcement's parts, in order, before the message itself
    # (a fine step: the message may be barely longer than one window when the phone hangs up)
    message_at = next((i for i in range(0, len(heard) - 4000 + 1, 80) if tone_share(heard[i:i + 4000], TONE) > 0.6),
                      None)
    assert message_at is not None, "the message's tone was not found in what the owner heard"
    before = heard[:message_at + 4000]
    for name in ("vm-received", "day-today", expected[expected.index("word-at") + 1], expected[-len(caller) - 2]):
        assert ncc_peak(before, stored_audio(proxy, name)) > 0.6, f"{name} not heard"


def test_recorded_name_is_said_in_the_default_greeting(proxy):
    owner, owner_pw = box(proxy, "--always", "yes")

    async def record_name():
        phone = await Phone(owner, owner_pw).open()
        try:
            call = await phone.call(proxy.address, uri(proxy, proxy.settings.voicemail_number), wait_for=(200,))
            await wait_until_async(lambda: len(call.received()) > 8000, timeout=20)   # "you have 0 new..."
            call.dtmf("5")
            # "Say your name after the tone", the beep (1000 Hz), then the name
            await wait_until_async(lambda: tone_share(call.received()[-1200:], 1000) > 0.6, timeout=30)
            await wait_until_async(lambda: tone_share(call.received()[-800:], 1000) < 0.2, timeout=5)
            await call.play(audio.tone((NAME_HZ,), 1.0, 0.5))
            call.dtmf("#")
            await wait_until_async(lambda: db(proxy, "SELECT name_pcm IS NOT NULL FROM voicemail_box WHERE number = %s",
                                              (owner,))[0][0], timeout=20)
            call.bye()
        finally:
            phone.close()

    run(record_name())
    caller, caller_pw = proxy.subscriber()

    async def call_box():
        phone = await Phone(caller, caller_pw).open()
        try:
            call = await phone.call(proxy.address, uri(proxy, owner), wait_for=(200,))
            await wait_until_async(lambda: tone_share(call.received()[-1200:], 1000) > 0.6, timeout=40)   # the beep
            call.bye()
            return call.received()
        finally:
            phone.close()

    greeting = run(call_box())
    assert max(tone_share(greeting[i:i + 4000], NAME_HZ) for i in range(0, max(1, len(greeting) - 4000), 800)) > 0.7, \
        "the recorded name is not in the greeting"
    assert ncc_peak(greeting, stored_audio(proxy, "vm-greeting-name")) > 0.6
