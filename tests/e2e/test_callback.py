"""The callback extension (seed 002, issue 14 section 3) end to end: a carrier on its own
loopback address is the trunk (tests/e2e/callback_peer.py); public callers ring a DID whose
target is a callback number; the media service releases them unanswered and calls back
through the proxy and the trunk; the prompts are short tones here, so what a caller hears
is checked by FFT (and the credit's digits by their tone sequence)."""
from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal

import numpy as np
import psycopg
import pytest

from media import audio
from tests.e2e.callback_peer import Carrier
from tests.e2e.media_helpers import add_audio, tone_share, wait_until_async
from tests.e2e.media_peer import Phone

_n = itertools.count(1)
_ips = itertools.count(71)

# What each prompt sounds like in these tests (Hz); cb-digit-N: 1200 + 100 N.
PROMPTS = {"cb-enter-password": 500, "cb-wrong-password": 560, "cb-menu": 650, "cb-credit-is": 750,
           "cb-dial": 850, "cb-timeout": 950, "cb-point": 2300, "cb-locked": 2600, "cb-goodbye": 2800,
           "t-cb-out": 3000, "cb-no-route": 3200, "cb-failed": 3400,
           **{f"cb-digit-{d}": 1200 + 100 * d for d in range(10)}}


@pytest.fixture(scope="module", autouse=True)
def prompts(proxy):
    for name, freq in PROMPTS.items():
        seconds = 0.3 if name.startswith("cb-digit") or name == "cb-point" else 0.5
        add_audio(proxy.settings.database_url, name, np.concatenate([audio.tone((freq,), seconds), audio.silence(0.1)]))


def run(coro, timeout: float = 90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def heard(pcm: np.ndarray, window: int = 400) -> list[str]:
    """The prompts in a recording, in order (runs of >= 2 windows of one prompt's tone)."""
    names = {f: n for n, f in PROMPTS.items()}
    labels: list[str | None] = []
    for start in range(0, len(pcm) - window, window):
        chunk = pcm[start:start + window].astype(np.float64)
        if np.sqrt(np.mean(chunk ** 2)) < 300:
            labels.append(None)
            continue
        freq = audio.dominant_frequency(pcm[start:start + window])
        near = min(names, key=lambda f: abs(f - freq))
        labels.append(names[near] if abs(near - freq) < 40 else None)
    out: list[str] = []
    run_label, length = None, 0
    for label in labels + [None]:
        if label == run_label:
            length += 1
            continue
        if run_label is not None and length >= 2:
            out.append(run_label)
        run_label, length = label, 1
    return out


class World:
    """One test's numbers: a trunk (the carrier), its prefix, a DID to the callback number."""

    def __init__(self, proxy, carrier: Carrier):
        n = next(_n)
        self.proxy, self.carrier = proxy, carrier
        self.prefix = f"8{n:03d}"
        self.caller = self.prefix + "1001"
        self.dest = self.prefix + "2002"
        self.number = f"71{n:04d}"
        self.did = f"72{n:04d}"
        self.trunk = f"cbt{n}"

    async def ctl(self, *args: str, check: bool = True):
        return await asyncio.to_thread(self.proxy.kemictl, *args, check=check)

    async def provision(self, *account: str, rate: str = "1.00", credit: str = "10") -> None:
        await self.ctl("trunk", "add", self.trunk, "--address", f"{self.carrier.address}:{self.carrier.port}")
        await self.ctl("route", "add", self.prefix, self.trunk)
        await self.ctl("callback", "add", self.number, "--trigger", "1", *account)
        await self.ctl("did", "add", self.did, self.trunk, self.number)
        await self.ctl("callback", "rate", "set", self.prefix, rate)
        await self.ctl("callback", "credit", self.number, "--set", credit)

    async def ring(self, caller: str | None = None, hidden: bool = False):
        call = await self.carrier.ring_in(self.proxy.address, self.did, caller or self.caller, hidden)
        if call.final is None:
            await call.wait_final(20)
        return call

    async def credit(self) -> Decimal:
        out = await self.ctl("callback", "credit", self.number)
        return Decimal(out.stdout.split()[-1])


async def world(proxy) -> World:
    carrier = await Carrier(f"127.0.0.{next(_ips)}").open()
    return World(proxy, carrier)


async def wait_heard(call, name: str, since: int = 0, timeout: float = 20) -> int:
    await wait_until_async(lambda: name in heard(call.received()[since:]), timeout)
    return len(call.received())


async def answered_leg_a(w: World, number: str | None = None):
    ring = await w.ring()
    assert ring.final.status == 480, ring.final
    leg_a = await w.carrier.next_call()
    assert leg_a.number == (number or w.caller)
    await leg_a.answer()
    return ring, leg_a


# ---------------------------------------------------------------- return calls

def test_authorised_caller_is_released_called_back_and_bridged(proxy):
    sub, _ = proxy.subscriber()
    proxy.kemictl("callerid", "policy", sub, "--default-caller-id", "4930100", "--public-name", "ACME Callback")

    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "authorized", "--caller-id-of", sub)
        await w.ctl("callback", "caller", w.number, "add", w.caller)
        started = time.monotonic()
        ring = await w.ring()
        released_after = time.monotonic() - started
        assert [r.status for r in ring.responses if r.status != 100][:2] == [180, 480], ring.responses
        assert "calling you back" in ring.final.reason
        leg_a = await w.carrier.next_call()
        assert leg_a.number == w.caller
        assert leg_a.from_user == "4930100", "the callback account's caller-ID policy"
        assert leg_a.invite.get("x-kemi-origin") is None, "the origin header never leaves the proxy"
        await leg_a.answer()
        await wait_heard(leg_a, "cb-dial")
        await leg_a.dtmf(w.dest + "#")
        leg_b = await w.carrier.next_call()
        assert leg_b.number == w.dest and leg_b.from_user == "4930100"
        await leg_b.answer()
        leg_a.play(audio.tone((600,), 10.0))
        leg_b.play(audio.tone((1000,), 10.0))
        mark_a, mark_b = len(leg_a.received()), len(leg_b.received())
        await wait_until_async(lambda: len(leg_b.received()) - mark_b > 16000, 10)
        await asyncio.sleep(0.5)
        a_heard, b_heard = leg_a.received()[-8000:], leg_b.received()[-8000:]
        leg_a.bye()
        await asyncio.wait_for(leg_b.ended.wait(), 10)
        await asyncio.sleep(1.0)
        return w, released_after, a_heard, b_heard, leg_a.invite.call_id, leg_b.invite.call_id, mark_a

    w, released_after, a_heard, b_heard, call_a, call_b, _ = run(scenario())
    assert released_after >= 1.0
    assert tone_share(a_heard, 1000) > 0.6, "leg A hears leg B"
    assert tone_share(b_heard, 600) > 0.6, "leg B hears leg A"
    assert tone_share(a_heard, 600) < 0.1, "no echo of leg A's own voice"
    credit = run(w.credit())
    assert Decimal("9.85") < credit < Decimal("10"), credit      # a few seconds at 1.00 a minute
    with psycopg.connect(proxy.settings.database_url) as conn:
        charge = conn.execute("SELECT dialled, seconds, cost FROM callback_charge WHERE account = %s AND kind = 'call'",
                              (w.number,)).fetchall()
        assert len(charge) == 1 and charge[0][0] == w.dest and charge[0][2] == Decimal(10) - credit
        deadline = time.monotonic() + 10
        while True:
            kinds = conn.execute("SELECT e.event, e.kind, e.dialled FROM journal_event e WHERE e.call_id IN (%s, %s) "
                                 "AND e.event IN ('call_started', 'answered', 'call_ended') ORDER BY ts, id",
                                 (call_a, call_b)).fetchall()
            if sum(1 for k in kinds if k[0] == "call_ended") >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert ("call_started", "callback", w.caller) in kinds and ("call_started", "callback", w.dest) in kinds, kinds
    assert sum(1 for k in kinds if k[0] == "answered") >= 2 and sum(1 for k in kinds if k[0] == "call_ended") >= 2


def test_unauthorised_and_hidden_callers_are_not_called_back(proxy):
    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "authorized")
        await w.ctl("callback", "caller", w.number, "add", w.caller)
        stranger = await w.ring(w.prefix + "3003")
        hidden = await w.ring(hidden=True)
        await w.ctl("callback", "set", w.number, "--mode", "caller")
        hidden_any = await w.ring(hidden=True)
        with pytest.raises(asyncio.TimeoutError):
            await w.carrier.next_call(3)
        return stranger.final, hidden.final, hidden_any.final

    stranger, hidden, hidden_any = run(scenario())
    assert stranger.status == 403 and "not authorised" in stranger.reason
    assert hidden.status == 403 and "hidden" in hidden.reason
    assert hidden_any.status == 403 and "hidden" in hidden_any.reason


def test_any_caller_id_is_called_back_in_caller_mode_and_an_early_hang_up_is_not(proxy):
    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "caller")
        await w.ctl("callback", "set", w.number, "--trigger", "4")
        call = await w.carrier.ring_in(proxy.address, w.did, w.prefix + "4004")
        await asyncio.sleep(0.5)
        call.cancel()                                  # hangs up before 4 s of ringing
        await call.wait_final(10)
        with pytest.raises(asyncio.TimeoutError):
            await w.carrier.next_call(6)
        await w.ctl("callback", "set", w.number, "--trigger", "1")
        ring = await w.ring(w.prefix + "4004")
        leg_a = await w.carrier.next_call()
        return ring.final, leg_a.number, w

    final, number, w = run(scenario())
    assert final.status == 480 and number == w.prefix + "4004"


def test_fixed_number_is_called_even_for_a_hidden_caller(proxy):
    async def scenario():
        w = await world(proxy)
        fixed = w.prefix + "5005"
        await w.provision("--mode", "fixed", "--fixed-number", fixed)
        ring = await w.ring(hidden=True)
        leg_a = await w.carrier.next_call()
        return ring.final, leg_a.number, fixed

    final, number, fixed = run(scenario())
    assert final.status == 480 and number == fixed


# ---------------------------------------------------------------- security options

def test_password_on_callback(proxy):
    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "caller", "--password", "2468")
        _ring, leg_a = await answered_leg_a(w)
        mark = await wait_heard(leg_a, "cb-enter-password")
        await leg_a.dtmf("1111#")
        mark = await wait_heard(leg_a, "cb-wrong-password", mark)
        await leg_a.dtmf("2468#")
        await wait_heard(leg_a, "cb-dial", mark)
        return heard(leg_a.received())

    sequence = run(scenario())
    assert sequence.index("cb-wrong-password") < sequence.index("cb-dial")


def test_password_per_authorised_caller_id(proxy):
    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "authorized", "--per-id-password", "yes", "--password", "9999")
        await w.ctl("callback", "caller", w.number, "add", w.caller, "--password", "1357")
        _ring, leg_a = await answered_leg_a(w)
        mark = await wait_heard(leg_a, "cb-enter-password")
        await leg_a.dtmf("9999#")                       # the account's password is not this caller's
        mark = await wait_heard(leg_a, "cb-wrong-password", mark)
        await leg_a.dtmf("1357#")
        await wait_heard(leg_a, "cb-dial", mark)

    run(scenario())


def test_wrong_passwords_lock_the_account(proxy):
    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "caller", "--password", "2468")
        _ring, leg_a = await answered_leg_a(w)           # call 1: three wrong passwords, then goodbye
        mark = await wait_heard(leg_a, "cb-enter-password")
        for _ in range(3):
            await leg_a.dtmf("0000#")
            await asyncio.sleep(1.2)
        await asyncio.wait_for(leg_a.ended.wait(), 15)
        _ring, leg_a = await answered_leg_a(w)           # call 2: the 5th wrong one locks
        mark = await wait_heard(leg_a, "cb-enter-password")
        for _ in range(2):
            await leg_a.dtmf("0000#")
            await asyncio.sleep(1.2)
        await wait_heard(leg_a, "cb-locked", mark)
        await asyncio.wait_for(leg_a.ended.wait(), 15)
        locked = await w.ring()
        with pytest.raises(asyncio.TimeoutError):
            await w.carrier.next_call(3)
        shown = (await w.ctl("callback", "show", w.number)).stdout
        await w.ctl("callback", "unlock", w.number)
        unlocked = await w.ring()
        await w.carrier.next_call()
        return locked.final, unlocked.final, shown

    locked, unlocked, shown = run(scenario(), 120)
    assert locked.status == 403 and "locked" in locked.reason
    assert "locked: yes" in shown
    assert unlocked.status == 480


# ---------------------------------------------------------------- credit and timing

def test_credit_is_announced_then_the_user_chooses_to_call(proxy):
    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "caller", "--credit-query", "yes", credit="3.25")
        _ring, leg_a = await answered_leg_a(w)
        mark = await wait_heard(leg_a, "cb-menu")
        await leg_a.dtmf("1")
        mark2 = await wait_heard(leg_a, "cb-menu", mark)
        said = heard(leg_a.received()[mark:mark2 + 1])
        await leg_a.dtmf("2")
        await wait_heard(leg_a, "cb-dial", mark2)
        return said

    said = run(scenario())
    assert said == ["cb-credit-is", "cb-digit-3", "cb-point", "cb-digit-2", "cb-digit-5", "cb-menu"], said


def test_credit_running_out_plays_the_sound_then_disconnects(proxy):
    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "caller", "--out-sound", "t-cb-out", rate="1.20", credit="0.08")  # 4 s
        _ring, leg_a = await answered_leg_a(w)
        await wait_heard(leg_a, "cb-dial")
        await leg_a.dtmf(w.dest + "#")
        leg_b = await w.carrier.next_call()
        await leg_b.answer()
        bridged = time.monotonic()
        leg_b.play(audio.tone((1000,), 30.0))
        await asyncio.wait_for(leg_b.ended.wait(), 20)
        b_ended = time.monotonic() - bridged
        await asyncio.wait_for(leg_a.ended.wait(), 10)
        return w, heard(leg_a.received()), tone_share(leg_a.received()[-16000:], 1000), b_ended

    w, sequence, _, b_ended = run(scenario())
    assert 3.0 < b_ended < 12, b_ended
    assert sequence[-1] == "t-cb-out", sequence
    credit = run(w.credit())
    assert Decimal(0) <= credit < Decimal("0.02"), credit


def test_no_credit_plays_the_sound_without_calling(proxy):
    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "caller", "--out-sound", "t-cb-out", credit="0")
        _ring, leg_a = await answered_leg_a(w)
        await wait_heard(leg_a, "cb-dial")
        await leg_a.dtmf(w.dest + "#")
        await asyncio.wait_for(leg_a.ended.wait(), 15)
        with pytest.raises(asyncio.TimeoutError):
            await w.carrier.next_call(2)
        return heard(leg_a.received())

    assert run(scenario())[-1] == "t-cb-out"


def test_dial_timeout_ends_the_request(proxy):
    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "caller", "--dial-timeout", "3")
        _ring, leg_a = await answered_leg_a(w)
        mark = await wait_heard(leg_a, "cb-dial")
        t0 = time.monotonic()
        await asyncio.wait_for(leg_a.ended.wait(), 15)
        return heard(leg_a.received()[mark - 4000:]), time.monotonic() - t0

    sequence, waited = run(scenario())
    assert sequence[-1] == "cb-timeout", sequence
    assert 2.0 < waited < 10, waited


def test_destination_without_a_rate_is_refused(proxy):
    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "caller")
        _ring, leg_a = await answered_leg_a(w)
        await wait_heard(leg_a, "cb-dial")
        await leg_a.dtmf("9912345#")
        await asyncio.wait_for(leg_a.ended.wait(), 15)
        return heard(leg_a.received())

    assert run(scenario())[-1] == "cb-no-route"


# ---------------------------------------------------------------- attacks and bad input

def test_forged_origin_header_from_a_phone_is_stripped(proxy):
    sub, password = proxy.subscriber()
    owner, _ = proxy.subscriber()
    proxy.kemictl("callerid", "policy", owner, "--default-caller-id", "4930777")
    proxy.kemictl("callerid", "policy", sub, "--default-caller-id", "4930555")

    async def scenario():
        w = await world(proxy)
        await w.provision("--mode", "caller", "--caller-id-of", owner)
        forged = [("X-Kemi-Origin", f"callback;number={w.number};leg=b")]
        stranger = await Phone("anybody", None).open()        # no credentials: challenged, not routed
        unauth = await stranger.call(proxy.address, f"sip:{w.dest}@{proxy.address[0]}", forged, wait_for=())
        phone = await Phone(sub, password).open()              # authenticated: routed as itself
        placing = asyncio.ensure_future(phone.call(proxy.address, f"sip:{w.dest}@{proxy.address[0]}", forged,
                                                   wait_for=(180,)))
        arrived = await w.carrier.next_call()
        await arrived.answer()
        call = await placing
        await call.wait_final(10)
        call.bye()
        from_trunk = await w.carrier.call(proxy.address, f"sip:{w.dest}@{proxy.address[0]}", forged, wait_for=())
        return unauth.final, arrived, from_trunk.final

    unauth, arrived, from_trunk = run(scenario())
    assert unauth.status == 407
    assert arrived.invite.get("x-kemi-origin") is None
    assert arrived.from_user == "4930555", "the phone's own caller ID, not the callback account's"
    assert from_trunk.status == 404, "a trunk cannot relay to a trunk by claiming the origin"


@pytest.mark.parametrize("args,message", [
    (["callback", "add", "12a"], "field 'number'"),
    (["callback", "add", "7999001", "--mode", "everyone"], "field 'mode'"),
    (["callback", "add", "7999002", "--mode", "fixed"], "field 'fixed-number': mode fixed needs"),
    (["callback", "add", "7999003", "--trigger", "0"], "field 'trigger'"),
    (["callback", "add", "7999004", "--dial-timeout", "999"], "field 'dial-timeout'"),
    (["callback", "add", "7999005", "--password", "12"], "field 'password'"),
    (["callback", "add", "7999006", "--password", "abcd1234"], "field 'password'"),
    (["callback", "add", "7999007", "--out-sound", "../x"], "field 'out-sound'"),
    (["callback", "add", "7999008", "--caller-id-of", "99999999"], "field 'caller-id-of'"),
    (["callback", "add", "7999009", "--credit-query", "maybe"], "field 'credit-query'"),
    (["callback", "rate", "set", "49x", "0.1"], "field 'prefix'"),
    (["callback", "rate", "set", "49", "1e9"], "field 'per_minute'"),
    (["callback", "rate", "set", "49", "0.00001"], "field 'per_minute'"),
    (["callback", "rate", "set", "49", "NaN"], "field 'per_minute'"),
    (["callback", "credit", "7999010", "--add", "5"], "field 'number': no callback account"),
])
def test_bad_settings_are_refused_naming_the_field(proxy, args, message):
    out = proxy.kemictl(*args, check=False)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert proxy.kemictl("callback", "list").stdout.count("7999") == 0, "nothing written"


def test_callback_number_cannot_take_a_used_number(proxy):
    sub, _ = proxy.subscriber()
    out = proxy.kemictl("callback", "add", sub, check=False)
    assert out.returncode == 2 and "already a SIP number" in out.stderr
    proxy.kemictl("callback", "add", "7998001")
    out = proxy.kemictl("callback", "add", "7998001", check=False)
    assert out.returncode == 2 and "already a callback number" in out.stderr
    proxy.kemictl("callback", "caller", "7998001", "add", "4930123", "--password", "4321")
    proxy.kemictl("callback", "credit", "7998001", "--add", "2.5")
    shown = proxy.kemictl("callback", "show", "7998001").stdout
    assert "4930123 (password)" in shown and "credit: 2.5" in shown and "4321" not in shown
    with psycopg.connect(proxy.settings.database_url) as conn:
        stored = conn.execute("SELECT password_hash FROM callback_caller WHERE account = '7998001'").fetchone()[0]
    assert stored.startswith("scrypt$") and "4321" not in stored
    proxy.kemictl("callback", "remove", "7998001")
