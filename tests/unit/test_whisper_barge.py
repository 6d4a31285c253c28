"""Whisper, barge and listen on supervised calls (issue 14 section 2): the pure parts."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from kemi import supervise_route as sr
from media import apps, g711
from media.supervise_core import AGENT, CUSTOMER, Supervisor, hearing, on_key

S1, S2 = "s1", "s2"


@pytest.mark.parametrize("mode,agent_hears_sup,customer_hears_sup", [
    ("listen", False, False), ("whisper", True, False), ("barge", True, True)])
def test_who_hears_the_supervisor(mode, agent_hears_sup, customer_hears_sup):
    h = hearing((Supervisor(S1, mode),))
    assert (S1 in h[AGENT]) is agent_hears_sup
    assert (S1 in h[CUSTOMER]) is customer_hears_sup
    assert h[S1] == {AGENT, CUSTOMER}                  # the supervisor always hears both
    assert CUSTOMER in h[AGENT] and AGENT in h[CUSTOMER]  # the call itself goes on
    assert all(k not in v for k, v in h.items())       # nobody hears themselves


def test_two_supervisors_in_their_own_modes_do_not_hear_each_other():
    h = hearing((Supervisor(S1, "whisper"), Supervisor(S2, "barge")))
    assert h[AGENT] == {CUSTOMER, S1, S2}
    assert h[CUSTOMER] == {AGENT, S2}
    assert h[S1] == h[S2] == {AGENT, CUSTOMER}


def test_no_supervisor_is_a_plain_two_leg_bridge():
    assert hearing(()) == {AGENT: {CUSTOMER}, CUSTOMER: {AGENT}}


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        hearing((Supervisor(S1, "shout"),))


@pytest.mark.parametrize("mode,digit,after", [
    ("listen", "5", "whisper"), ("listen", "6", "barge"), ("barge", "4", "listen"),
    ("whisper", "6", "barge"), ("whisper", "1", "whisper"), ("barge", "#", "barge"), ("listen", "*", "listen")])
def test_keys_switch_the_mode(mode, digit, after):
    assert on_key(mode, digit) == after


@pytest.mark.parametrize("agent_call,bridged,mode,expected", [
    (None, False, "whisper", (480, "has no current call")),
    (None, True, "listen", (480, "has no current call")),
    ("c1@x", False, "listen", "listen"),
    ("c1@x", False, "whisper", (501, "supervision on")),
    ("c1@x", False, "barge", (501, "barge (6#)")),
    ("c1@x", True, "listen", "spy;call=c1@x;mode=listen"),
    ("c1@x", True, "whisper", "spy;call=c1@x;mode=whisper"),
    ("c1@x", True, "barge", "spy;call=c1@x;mode=barge"),
])
def test_spy_decision(agent_call, bridged, mode, expected):
    d = sr.spy_decision("2001", mode, agent_call, bridged)
    if expected == "listen":
        assert isinstance(d, sr.Listen)
    elif isinstance(expected, tuple):
        assert isinstance(d, sr.Refuse) and d.status == expected[0] and expected[1] in d.reason
    else:
        assert isinstance(d, sr.ToMedia) and d.header == expected


@pytest.mark.parametrize("header,agent", [
    ("supervise;agent=2001", "2001"), (" supervise ; agent=2001 ", "2001"),
    ("supervise;agent=20a1", None), ("supervise", None), ("callback;number=7000", None),
    ("supervise;agent=" + "1" * 33, None), (None, None), ("", None)])
def test_parse_origin(header, agent):
    assert sr.parse_origin(header) == agent


def test_supervised_header_round_trips_through_the_media_app_parser():
    app = apps.parse(sr.supervised_header("2001", "4930111", 20))
    assert app == apps.Supervised("2001", "4930111", 20)
    assert apps.parse(sr.supervised_header("2001", "anonymous", 20)).caller == ""
    spy = apps.parse(sr.spy_header("abc.def@kemi-media", "barge"))
    assert spy == apps.Spy("abc.def@kemi-media", "barge")


@pytest.mark.parametrize("header,status", [
    ("supervised", 400), ("supervised;agent=x1", 400), ("supervised;agent=1;ring=0", 400),
    ("supervised;agent=1;caller=abc", 400), ("spy", 400), ("spy;call=a%20b", 400),
    ("spy;call=abc;mode=shout", 400), ("spy;call=" + "a" * 129, 400)])
def test_bad_app_headers_are_refused(header, status):
    with pytest.raises(apps.AppError) as err:
        apps.parse(header)
    assert err.value.status == status


class FakeLeg:
    def __init__(self, pt=0):
        self.payload_type = pt
        self.recording = None
        self.player = None

    def stop_playing(self):
        self.player = None


def _tone(freq, n=160):
    return (8000 * np.sin(2 * np.pi * freq * np.arange(n) / 8000)).astype(np.int16)


def test_bridge_membership_and_modes():
    from media.supervise import SupervisedBridge

    async def go():
        cust, agent, sup = FakeLeg(), FakeLeg(8), FakeLeg()
        b = SupervisedBridge(cust, agent)
        b.start()
        b.add("s", sup, "whisper")

        def tick(i):
            for leg, f in ((cust, 500), (agent, 700), (sup, 1100)):
                if leg.recording is not None:
                    leg.recording.append(_tone(f))
            return {name: g711.decode(b.frame_for(leg, i), leg.payload_type)
                    for name, leg in (("c", cust), ("a", agent), ("s", sup)) if leg in b.legs}

        def energy(pcm, f):
            spec = np.abs(np.fft.rfft(pcm.astype(float)))
            return spec[int(f * len(pcm) / 8000)]

        out = tick(0)
        assert energy(out["a"], 1100) > 1e5 and energy(out["c"], 1100) < 1e4    # whisper
        assert energy(out["s"], 500) > 1e5 and energy(out["s"], 700) > 1e5
        b.set_mode("s", "barge")
        out = tick(1)
        assert energy(out["c"], 1100) > 1e5 and energy(out["a"], 1100) > 1e5
        b.set_mode("s", "listen")
        out = tick(2)
        assert energy(out["c"], 1100) < 1e4 and energy(out["a"], 1100) < 1e4
        b.remove("s")
        assert sup.recording is None and len(b.legs) == 2
        out = tick(3)
        assert energy(out["c"], 700) > 1e5

    asyncio.run(go())
