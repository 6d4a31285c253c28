"""The media service's pure core: G.711, RTP/RFC 4733, SIP and SDP codecs, the contract's
X-Kemi-App header, menu and voicemail key decisions, PINs, audio conversion, and the
proxy's voicemail rules. Table-driven."""
from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from kemi import voicemail_route as vr
from kemi.hunt import Step
from kemi.routing import RingPlan
from media import apps, audio, g711, menu, pin, rtp, sdp, sip, vmkeys


# ---------------------------------------------------------------- G.711
@pytest.mark.parametrize("pt", [g711.PCMU, g711.PCMA])
def test_g711_round_trip_keeps_a_tone(pt):
    x = audio.tone((440,), 0.5, 0.5)
    y = g711.decode(g711.encode(x, pt), pt)
    assert len(y) == len(x)
    snr = 10 * np.log10(np.sum(x.astype(float) ** 2) / np.sum((x.astype(float) - y) ** 2))
    assert snr > 30, snr   # G.711 gives about 38 dB


@pytest.mark.parametrize("pt,silence_byte", [(g711.PCMU, 0xFF), (g711.PCMA, 0xD5)])
def test_g711_known_codes(pt, silence_byte):
    assert g711.encode(np.zeros(1, dtype=np.int16), pt) == bytes([silence_byte])
    assert abs(int(g711.decode(bytes([silence_byte]), pt)[0])) <= 8


def test_g711_extremes_do_not_overflow():
    x = np.array([-32768, 32767, -1, 1], dtype=np.int16)
    for pt in (g711.PCMU, g711.PCMA):
        y = g711.decode(g711.encode(x, pt), pt)
        assert y[0] < -30000 and y[1] > 30000


# ---------------------------------------------------------------- RTP
def test_rtp_round_trip_and_event():
    data = rtp.pack(101, 65535, 2**32 - 1, 1234, rtp.pack_event("#", True, 800), marker=True)
    pkt = rtp.unpack(data)
    assert (pkt.payload_type, pkt.seq, pkt.timestamp, pkt.ssrc, pkt.marker) == (101, 65535, 2**32 - 1, 1234, True)
    ev = rtp.parse_event(pkt.payload)
    assert (ev.digit, ev.end, ev.duration) == ("#", True, 800)


@pytest.mark.parametrize("data", [b"", b"\x80" * 5, b"\x40" + b"\x00" * 15, b"\x8f" + b"\x00" * 15,
                                  b"\x90" + b"\x00" * 11])
def test_rtp_rejects_bad_packets(data):
    with pytest.raises(rtp.RtpError):
        rtp.unpack(data)


def test_rtp_event_out_of_range():
    with pytest.raises(rtp.RtpError):
        rtp.parse_event(bytes([16, 0x80, 0, 160]))


# ---------------------------------------------------------------- SIP
INVITE = ("INVITE sip:play@127.0.0.1:5080 SIP/2.0\r\n"
          "v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
          "Record-Route: <sip:127.0.0.1;lr>\r\nf: <sip:100@x>;tag=1\r\nt: <sip:play@x>\r\ni: cid-1\r\n"
          "CSeq: 7 INVITE\r\nX-Kemi-App: play;audio=beep\r\nContent-Length: 4\r\n\r\nabcdEXTRA")


def test_sip_parse_compact_and_multi_via():
    m = sip.parse(INVITE.encode())
    assert m.method == "INVITE" and m.call_id == "cid-1" and m.cseq == (7, "INVITE")
    assert m.branch == "z9hG4bKabc" and len(m.all("via")) == 2 and m.body == "abcd"
    r = sip.response(m, 183, "Session Progress", to_tag="t1").decode()
    assert "To: <sip:play@x>;tag=t1" in r and r.count("Via:") == 1 and "Record-Route: <sip:127.0.0.1;lr>" in r


@pytest.mark.parametrize("data", [b"hello", b"INVITE sip:x SIP/2.0\r\n\r\n", b"A" * 9000,
                                  b"INVITE sip:x SIP/2.0\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: x\r\n\r\n"])
def test_sip_rejects_garbage(data):
    with pytest.raises(sip.SipError):
        sip.parse(data)


@pytest.mark.parametrize("ctype,body,digit", [
    ("application/dtmf-relay", "Signal=5\r\nDuration=160", "5"),
    ("application/dtmf-relay", "Signal= #\r\n", "#"),
    ("application/dtmf", "*", "*"),
    ("application/dtmf-relay", "Signal=X", None),
    ("text/plain", "5", None),
])
def test_info_digits(ctype, body, digit):
    m = sip.Message("INFO", "sip:x", None, None, [("content-type", ctype)], body)
    assert sip.info_digit(m) == digit


# ---------------------------------------------------------------- SDP
OFFER = ("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
         "m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


def test_sdp_prefers_the_callers_codec_and_finds_events():
    o = sdp.parse_offer(OFFER)
    assert (o.address, o.port, o.payload_type, o.event_type) == ("10.0.0.1", 4000, 8, 101)
    ans = sdp.answer(o, "127.0.0.1", 5000, 1)
    assert "m=audio 5000 RTP/AVP 8 101" in ans and "a=rtpmap:8 PCMA/8000" in ans


@pytest.mark.parametrize("body,status", [
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 18\r\n", 488),
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 4000 RTP/AVP 96\r\n", 488),
    ("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", 400),
    ("", 488),
])
def test_sdp_refusals(body, status):
    with pytest.raises(sdp.SdpError) as err:
        sdp.parse_offer(body)
    assert err.value.status == status


# ---------------------------------------------------------------- the contract's header
@pytest.mark.parametrize("header,expected", [
    ("voicemail;box=77721401", apps.Voicemail("77721401")),
    ("vmaccess", apps.VmAccess(None)),
    ("vmaccess;box=5", apps.VmAccess("5")),
    ("play;audio=welcome;loop=3", apps.Play("welcome", 3)),
    ("play;audio=w%2Dx", apps.Play("w-x", 1)),
    ("menu;prompt=p;invalid=i;digits=1-4;valid=1,2,33;timeout=7;retries=3",
     apps.Menu("p", "i", 1, 4, ("1", "2", "33"), 7.0, 3)),
    ("menu;prompt=p;invalid=;digits=2-2;valid=;timeout=5;retries=0", apps.Menu("p", None, 2, 2, (), 5.0, 0)),
    ("hold;music=music-hold;interval=45;position=7", apps.Hold("music-hold", 45, 7)),
    ("hold;music=m", apps.Hold("m", 30, 0)),
    ("mwi;box=42", apps.Mwi("42")),
])
def test_app_header_parses(header, expected):
    assert apps.parse(header) == expected


@pytest.mark.parametrize("header,status", [
    (None, 400), ("", 400), ("voicemail", 400), ("voicemail;box=12a", 400), ("conference;room=1", 400), ("karaoke;room=1", 404),
    ("play", 400), ("play;audio=../x", 400), ("play;audio=a;loop=0", 400), ("menu;prompt=p;digits=0-3", 400),
    ("menu;prompt=p;valid=1,x", 400), ("menu;prompt=p;timeout=-1", 400), ("play;audio", 400),
    ("hold", 400), ("hold;music=m;interval=99999", 400), ("mwi", 400),
])
def test_app_header_refusals(header, status):
    with pytest.raises(apps.AppError) as err:
        apps.parse(header)
    assert err.value.status == status and err.value.reason


# ---------------------------------------------------------------- menu decisions
M = apps.Menu("p", "i", 1, 2, ("1", "2", "42"), 5.0, 1)


@pytest.mark.parametrize("entered,attempt,expected", [
    ("1", 0, menu.Outcome("digits", "1")),
    ("42", 0, menu.Outcome("digits", "42")),
    ("", 0, menu.Retry(False)),
    ("", 1, menu.Outcome("timeout")),
    ("9", 0, menu.Retry(True)),
    ("9", 1, menu.Outcome("invalid")),
    ("123", 0, menu.Retry(True)),
])
def test_menu_judge(entered, attempt, expected):
    assert menu.judge(M, entered, attempt) == expected


def test_menu_any_input_and_terminator():
    any_menu = apps.Menu("p", None, 2, 4, (), 5.0, 0)
    assert menu.judge(any_menu, "1234", 0) == menu.Outcome("digits", "1234")
    assert menu.judge(any_menu, "1", 0) == menu.Outcome("invalid")
    assert menu.input_complete(any_menu, "12", "#") == ("12", True)
    assert menu.input_complete(any_menu, "123", "4") == ("1234", True)
    assert menu.input_complete(any_menu, "", "5") == ("5", False)


# ---------------------------------------------------------------- voicemail keys
L = vmkeys.Listing((10, 11, 12), 1)


@pytest.mark.parametrize("key,action,index,message", [
    ("1", "play", 1, 11), ("2", "save", 2, 11), ("3", "delete", 2, 11), ("6", "save", 2, 11),
    ("4", "play", 0, None), ("7", "greeting", 1, None), ("8", "pin", 1, None), ("9", "goodbye", 1, None),
    ("*", "goodbye", 1, None), ("5", "name", 1, None), ("0", "ignore", 1, None),
])
def test_vm_keys(key, action, index, message):
    step = vmkeys.on_key(L, key)
    assert (step.action, step.listing.index, step.message) == (action, index, message)


def test_vm_keys_past_the_end():
    end = vmkeys.Listing((1,), 1)
    assert vmkeys.on_key(end, "3").action == "end"
    assert vmkeys.on_key(end, "1").listing.index == 0


# ---------------------------------------------------------------- PINs
def test_pin_hash_and_verify():
    stored = pin.hash_pin("2468")
    assert "2468" not in stored and pin.verify("2468", stored) and not pin.verify("2469", stored)
    assert not pin.verify("2468", "plain") and not pin.verify("2468", "md5$00$00")


@pytest.mark.parametrize("bad", ["", "123", "123456789", "12a4", "１２３４"])
def test_pin_rule(bad):
    with pytest.raises(pin.PinError):
        pin.hash_pin(bad)


@pytest.mark.parametrize("before,after", [(0, (1, False)), (1, (2, False)), (2, (0, True))])
def test_pin_lockout(before, after):
    assert pin.after_failure(before) == after


# ---------------------------------------------------------------- audio conversion
def wav(samples: np.ndarray, rate: int, width: int, channels: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 1:
            data = (samples.astype(np.int32) // 256 + 128).astype(np.uint8)
        elif width == 2:
            data = samples.astype("<i2")
        elif width == 3:
            v = samples.astype(np.int32) << 8
            data = np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=1).astype(np.uint8)
        else:
            data = samples.astype(np.int32) << 16
        if channels == 2:
            data = np.repeat(data.reshape(len(samples), -1), 2, axis=0) if width == 3 else np.repeat(data, 2)
        w.writeframes(np.ascontiguousarray(data).tobytes())
    return out.getvalue()


@pytest.mark.parametrize("rate,width,channels", [(8000, 2, 1), (44100, 2, 2), (48000, 3, 1), (16000, 1, 1),
                                                 (22050, 4, 2), (11025, 2, 1)])
def test_wav_conversion_keeps_the_tone(rate, width, channels):
    t = np.arange(rate) / rate
    x = (np.sin(2 * np.pi * 700 * t) * 12000).astype(np.int16)
    pcm = audio.from_wav(wav(x, rate, width, channels))
    assert abs(len(pcm) - 8000) <= 2
    assert abs(audio.dominant_frequency(pcm) - 700) < 5


def test_downsampling_removes_what_8khz_cannot_carry():
    rate = 48000
    t = np.arange(rate) / rate
    x = (np.sin(2 * np.pi * 6000 * t) * 12000).astype(np.int16)   # would alias to 2 kHz
    pcm = audio.from_wav(wav(x, rate, 2, 1))
    assert np.sqrt(np.mean(pcm.astype(float) ** 2)) < 12000 * 0.707 * 0.1


@pytest.mark.parametrize("data,phrase", [
    (b"ID3\x03\x00" + b"\x00" * 100, "MP3 is not supported"),
    (b"\xff\xfb\x90" + b"\x00" * 100, "MP3 is not supported"),
    (b"RIFF\x00\x00\x00\x00WAVEjunk", "unreadable WAV"),
    (b"hello world", "not a WAV file"),
    (wav(np.zeros(0, dtype=np.int16), 8000, 2, 1), "no audio"),
])
def test_bad_uploads_are_refused_with_the_reason(data, phrase):
    with pytest.raises(audio.AudioError, match=phrase):
        audio.from_wav(data)


# ---------------------------------------------------------------- proxy rules
@pytest.mark.parametrize("rule,event,expected", [
    (None, "busy", False),
    (vr.BoxRule("1", always=True), "call", True),
    (vr.BoxRule("1"), "call", False),
    (vr.BoxRule("1", on_busy=True), "busy", True),
    (vr.BoxRule("1", on_busy=False), "busy", False),
    (vr.BoxRule("1", on_busy=False, no_answer_seconds=5), "no_answer", True),
    (vr.BoxRule("1", on_busy=True, no_answer_seconds=None), "no_answer", False),
    (vr.BoxRule("1", on_busy=False, no_answer_seconds=None), "unregistered", False),
    (vr.BoxRule("1", on_busy=True), "unregistered", True),
])
def test_divert_on(rule, event, expected):
    assert vr.divert_on(rule, event) is expected


def test_no_answer_sets_the_ring_timeout_of_direct_calls_only():
    plan = RingPlan("100", "direct", (Step("100", 15),))
    rules = {"100": vr.BoxRule("100", no_answer_seconds=4)}
    assert vr.ring_timeout_for(plan, rules).steps[0].ring_timeout == 4
    hunt = RingPlan("100", "hunt", (Step("100", 15),))
    assert vr.ring_timeout_for(hunt, rules) is hunt
    assert vr.ring_timeout_for(plan, {}) is plan


def test_app_header_is_percent_encoded_and_round_trips():
    h = vr.app_header("vmaccess", box="123")
    assert h == "vmaccess;box=123" and apps.parse(h) == apps.VmAccess("123")
    assert vr.app_header("vmaccess", box=None) == "vmaccess"
    assert vr.app_header("play", audio="a;b") == "play;audio=a%3Bb"


# ---------------------------------------------------------------- message waiting
@pytest.mark.parametrize("requested,granted", [(None, 3600), ("0", 0), ("-5", 0), ("10", 60), ("600", 600),
                                               ("999999", 3600), ("abc", 3600)])
def test_mwi_expires(requested, granted):
    from media import mwi
    assert mwi.expires(requested) == granted


def test_mwi_summary():
    from media import mwi
    assert mwi.summary("sip:1@x", 2, 3).startswith("Messages-Waiting: yes\r\nMessage-Account: sip:1@x\r\n")
    assert "Voice-Message: 2/3" in mwi.summary("sip:1@x", 2, 3)
    assert mwi.summary("sip:1@x", 0, 3).startswith("Messages-Waiting: no")
