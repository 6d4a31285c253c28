"""The media service itself (issue 13, section 1 and 3): SIP health, the play and menu apps
of the contract with the audio checked by FFT, DTMF by RFC 4733 and SIP INFO, bad input and
untrusted sources refused."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from media import audio
from tests.e2e.media_helpers import DirectService, add_audio, tone_share, wait_until_async
from tests.e2e.media_peer import Phone
from tools.stack import sip_options


@pytest.fixture(scope="module")
def service(proxy):
    svc = DirectService(proxy.settings, proxy.workdir).start()
    yield svc
    svc.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def app_uri(svc, app: str) -> str:
    return f"sip:{app}@{svc.address[0]}:{svc.address[1]}"


def test_options_answered_by_the_stack_service(proxy):
    host, _, port = proxy.settings.media_sip.rpartition(":")
    assert sip_options(host, int(port)) == 200


def test_play_app_plays_the_stored_audio_on_early_media_then_done(proxy, service):
    add_audio(proxy.settings.database_url, "t-play-697", audio.tone((697,), 1.0))

    async def scenario():
        phone = await Phone().open()
        call = await phone.call(service.address, app_uri(service, "play"),
                                [("X-Kemi-App", "play;audio=t-play-697;loop=2")])
        assert call.answer is not None and call.answer.status == 183, call.responses
        final = await call.wait_final(15)
        await asyncio.sleep(0.1)   # the last packets in flight
        phone.close()
        return call, final

    call, final = run(scenario())
    assert final.status == 302 and final.get("x-kemi-outcome") == "done", final
    got = call.received()
    assert len(got) >= 8000 * 1.6, f"only {len(got) / 8000:.2f} s of audio received (2 loops of 1 s)"
    assert tone_share(got, 697) > 0.8, "the played file's 697 Hz tone is not what the caller heard"


def test_play_unknown_audio_ends_with_outcome_error(service):
    async def scenario():
        phone = await Phone().open()
        call = await phone.call(service.address, app_uri(service, "play"), [("X-Kemi-App", "play;audio=no-such-file")])
        final = await call.wait_final(10)
        phone.close()
        return final
    final = run(scenario())
    assert final.status == 302 and final.get("x-kemi-outcome") == "error"


@pytest.mark.parametrize("via", ["rfc4733", "info"])
def test_menu_collects_digits(proxy, service, via):
    add_audio(proxy.settings.database_url, "t-menu-prompt", audio.tone((1209,), 0.6))

    async def scenario():
        phone = await Phone().open()
        call = await phone.call(service.address, app_uri(service, "menu"), [
            ("X-Kemi-App", "menu;prompt=t-menu-prompt;invalid=beep;digits=1-4;valid=;timeout=3;retries=1")])
        await wait_until_async(lambda: len(call.received()) > 2000)   # the prompt is playing
        for d in "42#":
            if via == "info":
                call.info(d)
            else:
                call.dtmf(d)
            await asyncio.sleep(0.1)
        final = await call.wait_final(15)
        phone.close()
        return call, final

    call, final = run(scenario())
    assert final.status == 302, final
    assert final.get("x-kemi-outcome") == "digits" and final.get("x-kemi-digits") == "42", final.headers
    assert tone_share(call.received()[:4000], 1209) > 0.5, "the caller did not hear the prompt"


def test_menu_invalid_choice_replays_then_ends_invalid(proxy, service):
    add_audio(proxy.settings.database_url, "t-menu-prompt2", audio.tone((770,), 0.3))
    add_audio(proxy.settings.database_url, "t-menu-invalid", audio.tone((1477,), 0.5))

    async def scenario():
        phone = await Phone().open()
        call = await phone.call(service.address, app_uri(service, "menu"), [
            ("X-Kemi-App", "menu;prompt=t-menu-prompt2;invalid=t-menu-invalid;valid=1,2;timeout=2;retries=1")])
        await wait_until_async(lambda: len(call.received()) > 1000)
        call.dtmf("9")
        await wait_until_async(lambda: tone_share(call.received()[-1600:], 1477) > 0.5)   # invalid prompt heard
        mark = len(call.received())
        call.dtmf("8")
        final = await call.wait_final(15)
        phone.close()
        return call, final, mark

    call, final, _ = run(scenario())
    assert final.status == 302 and final.get("x-kemi-outcome") == "invalid"


def test_menu_timeout(proxy, service):
    async def scenario():
        phone = await Phone().open()
        call = await phone.call(service.address, app_uri(service, "menu"), [
            ("X-Kemi-App", "menu;prompt=beep;timeout=1;retries=0")])
        final = await call.wait_final(15)
        phone.close()
        return final
    final = run(scenario())
    assert final.status == 302 and final.get("x-kemi-outcome") == "timeout"


@pytest.mark.parametrize("header,status,phrase", [
    (None, 400, "X-Kemi-App header missing"),
    ("dance;x=1", 404, "no media app"),
    ("menu;prompt=../etc/passwd", 400, "not an audio name"),
    ("menu;prompt=beep;digits=9-2", 400, "menu digits"),
    ("play;audio=beep;loop=100000", 400, "loop must be"),
    ("voicemail", 400, "box is required"),
])
def test_bad_app_headers_get_a_reason(service, header, status, phrase):
    async def scenario():
        phone = await Phone().open()
        call = await phone.call(service.address, app_uri(service, "x"), [("X-Kemi-App", header)] if header else [])
        phone.close()
        return call.final
    final = run(scenario())
    assert final.status == status and phrase in final.reason, (final.status, final.reason)


def test_untrusted_source_is_refused_and_rate_limited(proxy):
    """The stack's service trusts only Kamailio: a phone sending straight to it gets 403,
    and a flood gets at most the bucket's worth of replies."""
    host, _, port = proxy.settings.media_sip.rpartition(":")

    async def scenario():
        phone = await Phone().open()
        call = await phone.call((host, int(port)), f"sip:play@{host}:{port}", [("X-Kemi-App", "play;audio=beep")])
        replies = []
        flood = [phone.call((host, int(port)), f"sip:play@{host}:{port}", [("X-Kemi-App", "play;audio=beep")])
                 for _ in range(40)]
        results = await asyncio.gather(*[asyncio.wait_for(f, 2) for f in flood], return_exceptions=True)
        replies = [r for r in results if not isinstance(r, Exception)]
        phone.close()
        return call.final, replies
    final, replies = run(scenario())
    assert final.status == 403 and "through the proxy" in final.reason
    assert len(replies) < 20, f"{len(replies)} of 40 flood INVITEs were answered"


def test_garbage_does_not_stop_the_service(service):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"\x00" * 50, b"INVITE sip:x SIP/2.0\r\n\r\n", b"A" * 9000, "ÿ".encode() * 100):
            s.sendto(junk, service.address)
    assert sip_options(*service.address) == 200


def test_kemictl_audio_upload_is_converted_and_played(proxy, service, tmp_path):
    import wave
    rate = 44100
    t = np.arange(rate) / rate
    tone = (np.sin(2 * np.pi * 880 * t) * 10000).astype("<i2")
    path = tmp_path / "upload.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(tone, 2).tobytes())
    out = proxy.kemictl("audio", "add", "t-upload-880", str(path))
    assert "1.0 s, 8 kHz mono" in out.stdout
    assert "t-upload-880" in proxy.kemictl("audio", "list").stdout
    again = proxy.kemictl("audio", "add", "t-upload-880", str(path), check=False)
    assert again.returncode == 2 and "exists" in again.stderr

    async def scenario():
        phone = await Phone().open()
        call = await phone.call(service.address, app_uri(service, "play"), [("X-Kemi-App", "play;audio=t-upload-880")])
        await call.wait_final(15)
        await asyncio.sleep(0.1)
        phone.close()
        return call
    call = run(scenario())
    assert tone_share(call.received(), 880) > 0.8
    proxy.kemictl("audio", "remove", "t-upload-880")
    assert "t-upload-880" not in proxy.kemictl("audio", "list").stdout


@pytest.mark.parametrize("content,phrase", [
    (b"ID3\x04\x00\x00" + b"\x00" * 200, "MP3 is not supported"),
    (b"just some text", "not a WAV file"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt \x00", "unreadable WAV"),
])
def test_kemictl_refuses_bad_uploads_with_the_reason(proxy, tmp_path, content, phrase):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    out = proxy.kemictl("audio", "add", "t-bad", str(path), check=False)
    assert out.returncode == 2 and phrase in out.stderr, out.stderr
    assert "t-bad" not in proxy.kemictl("audio", "list").stdout


@pytest.mark.parametrize("args,phrase", [
    (("audio", "add", "../x", "/etc/hostname"), "name '../x'"),
    (("audio", "add", "ok", "/nonexistent.wav"), "does not exist"),
    (("audio", "remove", "beep"), "built-in prompt"),
    (("voicemail", "box", "add", "000000", "--pin", "1234"), "existing SIP number"),
    (("voicemail", "box", "pin", "000000", "1234"), "does not exist"),
])
def test_kemictl_media_errors_name_the_field(proxy, args, phrase):
    out = proxy.kemictl(*args, check=False)
    assert out.returncode == 2 and phrase in out.stderr, out.stderr


def test_kemictl_box_pin_rule(proxy):
    number, _ = proxy.subscriber()
    out = proxy.kemictl("voicemail", "box", "add", number, "--pin", "12", check=False)
    assert out.returncode == 2 and "4 to 8 digits" in out.stderr
    proxy.kemictl("voicemail", "box", "add", number, "--pin", "1234", "--no-answer", "20")
    listed = proxy.kemictl("voicemail", "box", "list").stdout
    assert number in listed and "no answer 20s" in listed
    proxy.kemictl("voicemail", "box", "rule", number, "--always", "yes")
    assert "always" in [line for line in proxy.kemictl("voicemail", "box", "list").stdout.splitlines() if number in line][0]


def test_hold_plays_music_and_announces_the_position_until_cancelled(proxy, service):
    add_audio(proxy.settings.database_url, "t-hold-music", audio.tone((330,), 3.0))

    async def scenario():
        phone = await Phone().open()
        call = await phone.call(service.address, app_uri(service, "hold"),
                                [("X-Kemi-App", "hold;music=t-hold-music;interval=2;position=3")])
        assert call.answer is not None and call.answer.status == 183
        await wait_until_async(lambda: len(call.received()) > 8000 * 1.5)
        music = call.received()[:8000]
        # the announcement ("you are caller number three") interrupts the music
        await wait_until_async(lambda: len(call.received()) > 8000 * 5, timeout=20)
        window = call.received()[int(8000 * 2.2):int(8000 * 3.2)]
        # the position changes: the proxy says so with an INFO
        dialog = call.answer
        call.cseq += 1
        call._in_dialog("INFO", dialog, call.cseq, "1", "application/x-kemi-position")
        call.cancel()
        final = await call.wait_final(10)
        phone.close()
        return music, window, final

    music, window, final = run(scenario())
    assert tone_share(music, 330) > 0.8, "no music while waiting"
    assert tone_share(window, 330) < 0.5, "the position announcement must interrupt the music"
    assert final.status == 487


def test_a_digit_flood_is_bounded_and_the_menu_still_answers(service):
    async def scenario():
        phone = await Phone().open()
        call = await phone.call(service.address, app_uri(service, "menu"), [
            ("X-Kemi-App", "menu;prompt=beep;digits=1-20;timeout=2;retries=0")])
        for i in range(500):   # 500 INFO digits in a burst
            call.info("7")
        final = await call.wait_final(15)
        phone.close()
        return final
    final = run(scenario())
    assert final.status == 302 and final.get("x-kemi-outcome") == "digits"
    assert final.get("x-kemi-digits") == "7" * 20
    assert sip_options(*service.address) == 200


def test_capacity_limit_answers_503_and_ended_calls_free_their_place(proxy):
    small = DirectService(proxy.settings, proxy.workdir, media_max_legs=2).start()
    try:
        async def scenario():
            phone = await Phone().open()
            hold = [("X-Kemi-App", "hold;music=beep;interval=0")]
            uri = app_uri(small, "hold")
            first = await phone.call(small.address, uri, hold)
            second = await phone.call(small.address, uri, hold)
            third = await phone.call(small.address, uri, hold)
            first.cancel()
            await first.wait_final(10)
            fourth = await phone.call(small.address, uri, hold)
            for c in (second, fourth):
                c.cancel()
            phone.close()
            return first, second, third, fourth
        first, second, third, fourth = run(scenario())
        assert first.answer.status == 183 and second.answer.status == 183
        assert third.final.status == 503 and "capacity" in third.final.reason
        assert fourth.answer is not None and fourth.answer.status == 183, "an ended call must free its place"
    finally:
        small.stop()
