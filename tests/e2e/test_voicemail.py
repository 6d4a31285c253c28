"""Voicemail through the proxy (issue 13, section 2; seed 001 both modes): leave a message
with a known tone and hear it played back, own box without PIN, box + PIN by DTMF, wrong-PIN
lock-out, a phone cannot pick a box by header, the no-answer rule, the service killed
mid-call (partial message kept, 503 within a second, other calls unaffected)."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import psycopg

from media import audio
from tests.e2e.helpers import wait_until
from tests.e2e.media_helpers import tone_share, wait_until_async
from tools.stack import sip_options
from tests.e2e.media_peer import Phone

TONE = 523.0   # what callers say in their messages


def run(coro, timeout: float = 90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def db(proxy, sql: str, params=()):
    with psycopg.connect(proxy.settings.database_url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def box(proxy, *args: str, pin: str = "2468") -> tuple[str, str]:
    number, password = proxy.subscriber()
    proxy.kemictl("voicemail", "box", "add", number, "--pin", pin, *args)
    return number, password


def uri(proxy, user: str) -> str:
    return f"sip:{user}@{proxy.address[0]}:{proxy.address[1]}"


async def leave_message(proxy, caller: str, password: str, callee: str, seconds: float = 2.0, hang_up: bool = False):
    phone = await Phone(caller, password).open()
    try:
        call = await phone.call(proxy.address, uri(proxy, callee), wait_for=(200,))
        assert call.final is not None and call.final.status == 200, [r.status for r in call.responses]
        # The greeting, then the beep (1000 Hz): the message starts after it.
        await wait_until_async(lambda: tone_share(call.received()[-1200:], 1000) > 0.6, timeout=30)
        await wait_until_async(lambda: tone_share(call.received()[-800:], 1000) < 0.2, timeout=5)
        await call.play(audio.tone((TONE,), seconds, 0.5))
        if hang_up:
            call.bye()
            return call
        call.dtmf("#")
        await call.wait_bye(20)   # goodbye, then the service hangs up
        return call
    finally:
        phone.close()


def messages(proxy, number: str):
    return db(proxy, "SELECT id, caller, duration_ms, state, complete, length(pcm) FROM voicemail_message "
                     "WHERE box = %s ORDER BY id", (number,))


def test_leave_a_message_then_the_owner_hears_it_without_pin(proxy):
    owner, owner_pw = box(proxy, "--always", "yes")
    caller, caller_pw = proxy.subscriber()
    run(leave_message(proxy, caller, caller_pw, owner))
    rows = messages(proxy, owner)
    assert len(rows) == 1, rows
    _id, who, duration, state, complete, size = rows[0]
    assert who == caller and state == "new" and complete and 1500 <= duration <= 6000, rows
    listed = proxy.kemictl("voicemail", "messages", owner).stdout
    assert caller in listed and "new" in listed

    async def listen():
        phone = await Phone(owner, owner_pw).open()
        try:
            call = await phone.call(proxy.address, uri(proxy, proxy.settings.voicemail_number), wait_for=(200,))
            assert call.final.status == 200
            # "You have 1 new ...", "message from <caller>", then the message itself.
            await wait_until_async(lambda: tone_share(call.received()[-4000:], TONE) > 0.7, timeout=60)
            call.bye()
            return call
        finally:
            phone.close()
    run(listen())
    # Played to the end (or at least heard): after the whole message it is saved.
    assert tone_share(audio.from_pcm_bytes(bytes(db(proxy, "SELECT pcm FROM voicemail_message WHERE box = %s",
                                                       (owner,))[0][0])), TONE) > 0.8, "stored audio is not the tone"


async def pin_login(proxy, who: str, password: str, number: str, pins: list[str]):
    phone = await Phone(who, password).open()
    try:
        call = await phone.call(proxy.address, uri(proxy, proxy.settings.voicemail_number), wait_for=(200,))
        assert call.final.status == 200
        await wait_until_async(lambda: len(call.received()) > 4000, timeout=10)   # "enter your mailbox"
        await call.dtmf_slow(number + "#")
        for p in pins:
            await call.dtmf_slow(p + "#")
            await asyncio.sleep(0.5)
        return call, phone
    except BaseException:
        phone.close()
        raise


def test_any_box_with_box_number_and_pin(proxy):
    owner, _ = box(proxy, "--always", "yes", pin="97531")
    caller, caller_pw = proxy.subscriber()
    run(leave_message(proxy, caller, caller_pw, owner))
    stranger, stranger_pw = proxy.subscriber()

    async def scenario():
        call, phone = await pin_login(proxy, stranger, stranger_pw, owner, ["97531"])
        try:
            await wait_until_async(lambda: tone_share(call.received()[-4000:], TONE) > 0.7, timeout=60)
            call.dtmf("3")   # delete
            await wait_until_async(lambda: not messages(proxy, owner), timeout=10)
            call.bye()
        finally:
            phone.close()
    run(scenario())


def test_wrong_pins_lock_the_box(proxy):
    owner, _ = box(proxy, pin="1357")
    stranger, stranger_pw = proxy.subscriber()

    async def scenario():
        call, phone = await pin_login(proxy, stranger, stranger_pw, owner, ["0000"])
        try:
            for guess in ("1111", "2222"):
                await call.dtmf_slow(owner + "#")
                await call.dtmf_slow(guess + "#")
            await call.wait_bye(40)   # locked: "try again later", goodbye
        finally:
            phone.close()
    run(scenario())
    (failed, locked), = db(proxy, "SELECT failed_pins, locked_until > now() FROM voicemail_box WHERE number = %s", (owner,))
    assert locked, "three wrong PINs must lock the box"
    assert "locked" in proxy.kemictl("voicemail", "box", "list").stdout

    async def right_pin_while_locked():
        call, phone = await pin_login(proxy, stranger, stranger_pw, owner, ["1357"])
        try:
            await call.wait_bye(30)
        finally:
            phone.close()
    run(right_pin_while_locked())
    log = proxy.stack.media.log.read_text()
    assert f"box {owner} opened with PIN" not in log and f"box {owner} is locked" in log
    proxy.kemictl("voicemail", "box", "pin", owner, "8642")   # an operator unlocks it
    assert db(proxy, "SELECT failed_pins, locked_until FROM voicemail_box WHERE number = %s", (owner,)) == [(0, None)]


def test_a_phone_cannot_choose_a_box_by_header(proxy):
    owner, _ = box(proxy, pin="1357")
    attacker, attacker_pw = proxy.subscriber()

    async def scenario():
        phone = await Phone(attacker, attacker_pw).open()
        try:
            call = await phone.call(proxy.address, uri(proxy, proxy.settings.voicemail_number),
                                    [("X-Kemi-App", f"vmaccess;box={owner}")], wait_for=(200,))
            assert call.final.status == 200
            await wait_until_async(lambda: len(call.received()) > 8000, timeout=10)
            call.bye()
        finally:
            phone.close()
    run(scenario())
    assert f"box {owner} opened without PIN" not in proxy.stack.media.log.read_text()


def test_no_answer_rule_rings_then_voicemail(proxy):
    owner, owner_pw = box(proxy, "--no-answer", "2", "--busy", "no")
    ringing = proxy.phone(owner, owner_pw, "noanswer")
    caller, caller_pw = proxy.subscriber()
    run(leave_message(proxy, caller, caller_pw, owner))
    assert ringing.invites(), "the owner's phone must ring first"
    rows = messages(proxy, owner)
    assert len(rows) == 1 and rows[0][4], rows


def test_service_killed_mid_message_keeps_the_partial_comes_back_and_503_while_down(proxy):
    owner, _ = box(proxy, "--always", "yes", "--max-seconds", "60")
    caller, caller_pw = proxy.subscriber()
    other, other_pw = proxy.subscriber()
    talker = proxy.phone(other, other_pw)   # a normal call elsewhere must not notice
    media = proxy.stack.media

    async def scenario():
        phone = await Phone(caller, caller_pw).open()
        try:
            call = await phone.call(proxy.address, uri(proxy, owner), wait_for=(200,))
            await wait_until_async(lambda: tone_share(call.received()[-1200:], 1000) > 0.6, timeout=30)
            call.play(audio.tone((TONE,), 30, 0.5))
            # at least two flushes of recorded audio reached the database
            await wait_until_async(lambda: (messages(proxy, owner) or [(0, 0, 0, 0, 0, 0)])[0][5] >= 2 * 8000 * 2,
                                   timeout=20)
            os.kill(media.proc.pid, signal.SIGKILL)
            media.proc.wait()
        finally:
            phone.close()
    try:
        run(scenario())
        (_id, who, duration, state, complete, size), = messages(proxy, owner)
        assert who == caller and not complete and size >= 32000 and duration >= 2000
        pcm = audio.from_pcm_bytes(bytes(db(proxy, "SELECT pcm FROM voicemail_message WHERE box = %s", (owner,))[0][0]))
        assert tone_share(pcm, TONE) > 0.8
        assert "partial" in proxy.kemictl("voicemail", "messages", owner).stdout
        # the launcher's supervisor brings the killed service back by itself
        host, _, port = proxy.settings.media_sip.rpartition(":")
        wait_until(lambda: sip_options(host, int(port)) == 200, timeout=30)
        assert media.proc.poll() is None

        media.stop()   # down on purpose now (the supervisor leaves a deliberate stop alone)

        async def while_down():
            phone = await Phone(caller, caller_pw).open()
            try:
                t0 = time.monotonic()
                call = await phone.call(proxy.address, uri(proxy, owner), wait_for=(200,))
                return call.final, time.monotonic() - t0
            finally:
                phone.close()
        final, elapsed = run(while_down())
        print(f"media service down: {final.status} after {elapsed * 1000:.0f} ms (INVITE, 407, INVITE)")
        assert final.status == 503 and "voicemail is not reachable" in final.reason, (final.status, final.reason)
        normal = proxy.call(caller, caller_pw, other)
        assert normal.proc.returncode == 0, "a call that does not need the media service must go on"
        assert talker.invites()
    finally:
        if media.proc is None or media.proc.poll() is not None:
            media.start()

    caller2, caller2_pw = proxy.subscriber()
    run(leave_message(proxy, caller2, caller2_pw, owner))
    assert len(messages(proxy, owner)) == 2


def test_a_g722_only_caller_is_transcoded_to_the_g711_service(proxy):
    owner, _ = box(proxy, "--always", "yes")
    caller, caller_pw = proxy.subscriber()

    async def scenario():
        phone = await Phone(caller, caller_pw).open()
        phone.offer_formats = "9 101"
        try:
            call = await phone.call(proxy.address, uri(proxy, owner), wait_for=(200,))
            final = call.final
            call.bye()
            return final
        finally:
            phone.close()
    final = run(scenario())
    assert final.status == 200, (final.status, final.reason)
    assert "RTP/AVP 9" in final.body and "G722" in final.body, final.body   # the caller keeps its codec
