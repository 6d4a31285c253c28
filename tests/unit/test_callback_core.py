"""The callback extension's pure parts: who is called back, the session machine, money,
the proxy's origin header and plan, the app header, the bridge's frames."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import numpy as np
import pytest

from kemi import callback_route
from kemi.core import callback as cb
from kemi.directory import Did, Directory, Subscriber, Trunk, TrunkRoute
from kemi.routing import Reject, TrunkPlan
from media import apps, g711
from media.bridge import FRAME, Bridge

AUTH = cb.Policy("7000", "authorized", ("4930111", "4930222"))
CALLER = cb.Policy("7001", "caller")
FIXED = cb.Policy("7002", "fixed", fixed_number="4930999")


@pytest.mark.parametrize("policy,caller,hidden,expected", [
    (AUTH, "4930111", False, cb.Return("4930111", "4930111")),
    (AUTH, "4930333", False, cb.Refuse("caller ID 4930333 not authorised")),
    (AUTH, None, True, cb.Refuse("caller ID hidden")),
    (AUTH, "4930111", True, cb.Refuse("caller ID hidden")),        # hidden beats an authorised number
    (CALLER, "4930333", False, cb.Return("4930333", "4930333")),
    (CALLER, None, True, cb.Refuse("caller ID hidden")),
    (FIXED, None, True, cb.Return("4930999", None)),
    (FIXED, "4930333", False, cb.Return("4930999", "4930333")),
    (cb.Policy("7003", "fixed"), "4930333", False, cb.Refuse("no fixed number set")),
    (cb.Policy("7004", "caller", locked=True), "4930333", False, cb.Refuse("account locked after wrong passwords")),
])
def test_return_target(policy, caller, hidden, expected):
    assert cb.return_target(policy, caller, hidden) == expected


@pytest.mark.parametrize("number,privacy,hidden", [
    ("4930111", None, False), ("anonymous", None, True), ("", None, True), ("4930111", "id", True),
    ("4930111", "none", False), ("4930111", "header; id", True), ("+4930111", None, True),
])
def test_hidden(number, privacy, hidden):
    assert cb.is_hidden(number, privacy) is hidden


def test_money():
    rates = {"49": Decimal("0.10"), "4930": Decimal("0.05"), "1": Decimal("0")}
    assert cb.rate_for(rates, "4930123") == Decimal("0.05")
    assert cb.rate_for(rates, "4940123") == Decimal("0.10")
    assert cb.rate_for(rates, "3312345") is None
    assert cb.max_seconds(Decimal("1.00"), Decimal("0.05")) == 1200
    assert cb.max_seconds(Decimal("0.01"), Decimal("1.20")) == 0
    assert cb.max_seconds(Decimal("0.03"), Decimal("1.20")) == 1
    assert cb.max_seconds(Decimal("0"), Decimal("0")) == 0
    assert cb.max_seconds(Decimal("5"), Decimal("0")) == cb.MAX_CALL_SECONDS
    assert cb.cost(60, Decimal("0.05")) == Decimal("0.0500")
    assert cb.cost(1.5, Decimal("1.00")) == Decimal("0.0250")
    assert cb.cost(0.001, Decimal("1.00")) == Decimal("0.0001")      # rounded up, never free
    assert cb.cost(0, Decimal("1.00")) == 0
    assert cb.credit_digits(Decimal("12.5")) == ("1", "2", "point", "5", "0")
    assert cb.credit_digits(Decimal("-3")) == ("0", "point", "0", "0")


FULL = cb.Policy("7000", "authorized", ("4930111",), password=True, credit_query=True, dial_seconds=15,
                 out_sound="empty")
S = cb.Session


@pytest.mark.parametrize("policy,state,event,expected_state,expected_action", [
    (AUTH, S(), cb.Answered(), S("dial"), cb.Ask(("cb-dial",), 24, 20)),
    (FULL, S(), cb.Answered(), S("auth"), cb.ASK_PASSWORD),
    (cb.Policy("1", per_id_password=True), S(), cb.Answered(), S("auth"), cb.ASK_PASSWORD),
    (FULL, S("auth"), cb.Entered("1234"), S("auth"), cb.CheckPassword("1234")),
    (FULL, S("auth"), cb.PasswordChecked(True), S("menu"), cb.ASK_MENU),
    (FULL, S("auth"), cb.PasswordChecked(False), S("auth", 1),
     cb.Ask(("cb-wrong-password", "cb-enter-password"), 12, cb.PROMPT_SECONDS)),
    (FULL, S("auth", 2), cb.PasswordChecked(False), S("done", 3), cb.PlayAndEnd("cb-goodbye", "no valid password")),
    (FULL, S("auth"), cb.TimedOut(), S("done", 1), cb.PlayAndEnd("cb-goodbye", "no valid password")),
    (FULL, S("menu"), cb.Entered("1"), S("menu"), cb.Ask(("cb-credit-is", "credit", "cb-menu"), 1, cb.PROMPT_SECONDS)),
    (FULL, S("menu"), cb.Entered("2"), S("dial"), cb.Ask(("cb-dial",), 24, 15)),
    (FULL, S("menu"), cb.Entered("7"), S("menu", 1), cb.Ask(("invalid", "cb-menu"), 1, cb.PROMPT_SECONDS)),
    (FULL, S("menu", 2), cb.TimedOut(), S("done", 3), cb.PlayAndEnd("cb-goodbye", "no menu choice")),
    (FULL, S("dial"), cb.TimedOut(), S("done"), cb.PlayAndEnd("cb-timeout", "no number dialled in time")),
    (FULL, S("dial"), cb.Entered("4930555"), S("quoting", number="4930555"), cb.Quote("4930555")),
    (FULL, S("dial"), cb.Entered("1"), S("dial", 1), cb.Ask(("invalid", "cb-dial"), 24, 15)),
    (FULL, S("dial"), cb.Entered("49*1"), S("dial", 1), cb.Ask(("invalid", "cb-dial"), 24, 15)),
    (FULL, S("quoting", number="49"), cb.Rated(None), S("done", number="49"),
     cb.PlayAndEnd("cb-no-route", "destination not allowed")),
    (FULL, S("quoting", number="49"), cb.Rated(0), S("done", number="49"), cb.PlayAndEnd("empty", "no credit")),
    (FULL, S("quoting", number="49"), cb.Rated(90), S("calling", number="49", seconds=90), cb.Dial("49", 90)),
    (FULL, S("calling", number="49", seconds=90), cb.CalleeAnswered(), S("talking", number="49", seconds=90),
     cb.Bridge(90)),
    (FULL, S("calling", number="49"), cb.CalleeFailed(486), S("done", number="49"),
     cb.PlayAndEnd("cb-failed", "callee failed (486)")),
    (FULL, S("talking"), cb.CreditExhausted(), S("done"), cb.PlayAndEnd("empty", "credit exhausted")),
    (FULL, S("talking"), cb.HungUp(), S("done"), cb.End("hung up")),
    (FULL, S("auth"), cb.HungUp(), S("done"), cb.End("hung up")),
    (FULL, S("talking"), cb.Entered("5"), S("done"), cb.End("unexpected Entered in talking")),
])
def test_session_step(policy, state, event, expected_state, expected_action):
    assert cb.step(policy, state, event) == (expected_state, expected_action)


def test_session_is_total():
    """Any event in any phase gives a next state and an action (never an exception)."""
    events = [cb.Answered(), cb.Entered(""), cb.Entered("12"), cb.TimedOut(), cb.PasswordChecked(True),
              cb.PasswordChecked(False), cb.Rated(None), cb.Rated(0), cb.Rated(5), cb.CalleeAnswered(),
              cb.CalleeFailed(503), cb.CreditExhausted(), cb.HungUp()]
    for phase in ("answered", "auth", "menu", "dial", "quoting", "calling", "talking", "done"):
        for event in events:
            state, action = cb.step(FULL, S(phase), event)
            assert isinstance(action, (cb.Ask, cb.CheckPassword, cb.Quote, cb.Dial, cb.Bridge, cb.PlayAndEnd, cb.End))


# ---------------------------------------------------------------- proxy side

SUB = Subscriber("1001", "ha1", public_name="ACME", default_caller_id="4930100")
TRUNK = Trunk(1, "carrier", addresses=(("127.0.0.2", 5070),))
DIRECTORY = Directory(subscribers={"1001": SUB}, trunks={1: TRUNK}, routes=(TrunkRoute("49", 1),),
                      dids={"4930700": Did("4930700", 1, "7000")}, callbacks={"7000": "1001", "7005": None})


@pytest.mark.parametrize("header,expected", [
    ("callback;number=7000;leg=a", "7000"), ("callback;number=7000", "7000"), (" callback ; number=7000", "7000"),
    ("callback;number=70x0", None), ("callback", None), ("voicemail;number=7000", None), ("", None), (None, None),
    ("callback;number=7000\r\nVia: x", None),
])
def test_parse_origin(header, expected):
    assert callback_route.parse_origin(header) == expected


def test_plan_out_uses_the_account_subscribers_caller_id_policy():
    plan = callback_route.plan_out(DIRECTORY, "4930555", "7000", 15)
    assert isinstance(plan, TrunkPlan)
    assert plan.steps[0].uri == "sip:4930555@127.0.0.2:5070"
    assert plan.identities[1].number == "4930100" and plan.identities[1].display == "ACME"
    plan = callback_route.plan_out(DIRECTORY, "4930555", "7005", 15)     # no subscriber: the callback number
    assert isinstance(plan, TrunkPlan) and plan.identities[1].number == "7005"


@pytest.mark.parametrize("dialled,number,status", [
    ("4930555", "7999", 403),     # not a callback account
    ("1001", "7000", 403),        # local numbers are not for callback legs
    ("7000", "7000", 403),
    ("49h", "7000", 484),
    ("3312345", "7000", 404),     # no route
])
def test_plan_out_refusals(dialled, number, status):
    plan = callback_route.plan_out(DIRECTORY, dialled, number, 15)
    assert isinstance(plan, Reject) and plan.status == status


def test_app_header_round_trip():
    header = callback_route.app_header("7000", "4930111", False)
    assert apps.parse(header) == apps.Callback("7000", "4930111", False)
    assert apps.parse(callback_route.app_header("7000", "", True)) == apps.Callback("7000", "", True)
    with pytest.raises(apps.AppError):
        apps.parse("callback;number=7000;caller=12ab")
    with pytest.raises(apps.AppError):
        apps.parse("callback;caller=123")
    with pytest.raises(apps.AppError):
        apps.parse("callback;number=7000;hidden=2")


# ---------------------------------------------------------------- the bridge

class FakeLeg:
    def __init__(self, payload_type=g711.PCMU):
        self.payload_type = payload_type
        self.recording = None
        self.player = None

    def stop_playing(self):
        self.player = None

    def __hash__(self):
        return id(self)


def test_bridge_crosses_audio_and_bounds_delay():
    async def run():
        a, b = FakeLeg(g711.PCMU), FakeLeg(g711.PCMA)
        bridge = Bridge([a, b])
        bridge.start()
        tone_a = np.full(FRAME, 8000, dtype=np.int16)
        tone_b = np.full(FRAME, -4000, dtype=np.int16)
        a.recording.append(tone_a)
        b.recording.append(tone_b)
        to_a = g711.decode(a.player.next_frame(), g711.PCMU)
        to_b = g711.decode(b.player.next_frame(), g711.PCMA)
        assert abs(int(to_a.mean()) + 4000) < 200, "a hears b"
        assert abs(int(to_b.mean()) - 8000) < 400, "b hears a"
        assert not np.any(g711.decode(a.player.next_frame(), g711.PCMU)), "nothing received: silence"
        b.player.next_frame()
        for _ in range(20):                 # a burst: at most MAX_BUFFERED frames are kept
            b.recording.append(tone_b)
        a.player.next_frame()
        assert len(bridge.buffers[b]) <= 6 * FRAME and bridge.dropped > 0
        bridge.stop()
        assert a.player is None and a.recording is None
    asyncio.run(run())


def test_bridge_matrix_is_the_mixer_hook():
    async def run():
        a, b, c = FakeLeg(), FakeLeg(), FakeLeg()
        bridge = Bridge([a, b, c], hears={a: {b, c}, b: {a}, c: set()})   # c listens to nobody
        bridge.start()
        for leg, value in ((a, 1000), (b, 2000), (c, 4000)):
            leg.recording.append(np.full(FRAME, value, dtype=np.int16))
        heard = {leg: int(g711.decode(leg.player.next_frame(), g711.PCMU).mean()) for leg in (a, b, c)}
        assert abs(heard[a] - 6000) < 300 and abs(heard[b] - 1000) < 100 and heard[c] == 0
    asyncio.run(run())
