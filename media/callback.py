"""The callback app (seed 002): `X-Kemi-App: callback;number=N;caller=C;hidden=0|1`.

Inbound (`CallbackRunner.check`): the account's policy says whether and where to call
back (kemi/core/callback.py `return_target`); a refused caller gets 403 at once with the
reason. Otherwise the call rings (180) for the account's trigger seconds and is released
unanswered (480: never answered, so never charged); a caller who hangs up before that is
not called back. Then a `Session` runs on its own:

  leg A: the service calls the return number through the proxy (media/uac.py, with
  `X-Kemi-Origin: callback;number=N`), and on answer walks the pure session machine
  (`kemi.core.callback.step`): password (the account's, or the authorised caller ID's
  own), credit menu (1: hear the credit, 2: call), dialling within the dial timeout, the
  rate of the longest prefix and the credit give the call's maximum length; leg B: the
  dialled number through the proxy; both legs bridged (media/bridge.py) until one hangs up
  or the credit runs out (then the account's sound is played to A and both are hung up).
  The talk time is charged per second at the per-minute rate; both legs go to the journal.
"""
from __future__ import annotations

import asyncio
from decimal import Decimal

import numpy as np

from kemi import journal
from kemi.core import callback as core
from media import apps, callback_store as cbstore, pin
from media.bridge import Bridge
from media.runner import Runner
from media.uac import OutgoingCall

RING_A_SECONDS = 45       # how long leg A (the caller's phone) may ring
RING_B_SECONDS = 60
DIGIT_GAP = 4.0           # a number is complete after this long without a digit
RINGBACK = None           # built lazily: 425 Hz, 1 s on / 4 s off while leg B rings


def runner_for(service, call):
    """The service's runner factory: callback calls get theirs, the rest the standard one."""
    if isinstance(call.app, apps.Callback):
        return CallbackRunner(service, call)
    return Runner(service, call)


class CallbackRunner(Runner):
    async def check(self):
        app = self.app
        call_id = self.call.invite.call_id
        account = await cbstore.account(self.store, app.number)
        if account is None:
            return 404, f"Not Found - no callback account {app.number}"
        decision = core.return_target(account.policy, app.caller or None, app.hidden)
        journal.call_started(call_id, app.caller or "anonymous", app.number, "callback", "inbound")
        if isinstance(decision, core.Refuse):
            self.service.count("callback_refused")
            self.log(f"callback {app.number}: no callback for {app.caller or 'hidden caller'}: {decision.reason}")
            journal.call_ended(call_id, 403, f"callback refused: {decision.reason}")
            return 403, f"Forbidden - no callback: {decision.reason}"
        self.call.last = self.service.reply(self.call.invite, self.call.source, 180, "Ringing", self.call)
        await asyncio.sleep(account.policy.trigger_seconds)    # a CANCEL before this: no callback
        self.log(f"callback {app.number}: released after {account.policy.trigger_seconds} s, "
                 f"calling back {decision.number}")
        journal.call_ended(call_id, 480, f"released; calling back {decision.number}")
        session = Session(self.service, account, decision)
        sessions = self.service.__dict__.setdefault("callback_sessions", set())
        task = asyncio.get_running_loop().create_task(session.run())
        sessions.add(task)
        task.add_done_callback(sessions.discard)
        self.service.count("callbacks")
        return 480, "Temporarily Unavailable - released, calling you back"


class Session:
    """One callback: leg A, the dialogue, leg B, the bridge, the charge."""

    def __init__(self, service, account: cbstore.Account, target: core.Return):
        self.service = service
        self.store = service.store
        self.account = account
        self.policy = account.policy
        self.target = target
        self.a: OutgoingCall | None = None
        self.b: OutgoingCall | None = None
        self.rate = Decimal(0)

    def log(self, text: str) -> None:
        self.service.log(f"callback {self.policy.number}: {text}")

    def origin(self, leg: str) -> list[tuple[str, str]]:
        return [("X-Kemi-Origin", f"callback;number={self.policy.number};leg={leg}")]

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.service.count("errors")
            self.log(f"session failed: {err!r}")
        finally:
            for leg in (self.b, self.a):
                if leg is not None and not leg.ended.is_set():
                    leg.bye()

    async def _run(self) -> None:
        a = self.a = OutgoingCall(self.service, self.target.number, self.policy.number, self.origin("a"))
        journal.call_started(a.call_id, self.policy.number, self.target.number, "callback", "leg A")
        status = await a.start(RING_A_SECONDS)
        if status != 200:
            self.log(f"leg A to {self.target.number} not answered: {status}")
            journal.call_ended(a.call_id, status, "callback leg A not answered")
            return
        journal.answered(a.call_id, self.target.number)
        state, action = core.step(self.policy, core.Session(), core.Answered())
        while True:
            self.log(f"{state.phase}: {type(action).__name__}")
            if isinstance(action, core.End):
                journal.call_ended(a.call_id, 200, action.reason)
                return
            if isinstance(action, core.PlayAndEnd):
                await self.play_and_end(action)
                return
            event = await self.perform(action)
            if a.ended.is_set():
                event = core.HungUp()
            state, action = core.step(self.policy, state, event)

    async def perform(self, action) -> core.Event:
        if isinstance(action, core.Ask):
            return await self.ask(action)
        if isinstance(action, core.CheckPassword):
            return core.PasswordChecked(await self.check_password(action.digits))
        if isinstance(action, core.Quote):
            return core.Rated(await self.quote(action.number))
        if isinstance(action, core.Dial):
            return await self.dial(action)
        if isinstance(action, core.Bridge):
            return await self.bridge(action)
        raise ValueError(f"unknown action {action!r}")

    # ------------------------------------------------------------ leg A's dialogue
    async def audio(self, name: str) -> np.ndarray:
        pcm = await self.store.audio(name)
        if pcm is None and name.startswith("cb-digit-"):
            pcm = await self.store.audio(name[3:])     # cb-digit-5 -> the built-in digit-5
        if pcm is None:
            self.log(f"no audio {name!r}: a short silence instead")
            return np.zeros(1600, dtype=np.int16)
        return pcm

    async def say(self, names, interrupt: bool = True) -> None:
        leg = self.a.leg
        for name in names:
            if name == "credit":
                credit = await cbstore.credit(self.store, self.policy.number)
                await self.say([f"cb-digit-{d}" if d.isdigit() else "cb-point" for d in core.credit_digits(credit)],
                               interrupt=False)
                continue
            done = leg.play(await self.audio(name))
            while not done.done() and not self.a.ended.is_set():
                if interrupt and not leg.digits.empty():
                    leg.stop_playing()
                    return
                await asyncio.wait([done], timeout=0.02)
            if self.a.ended.is_set():
                return

    async def ask(self, action: core.Ask) -> core.Event:
        leg = self.a.leg
        while not leg.digits.empty():
            leg.digits.get_nowait()
        await self.say(action.prompts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + action.seconds
        entered, last = "", 0.0
        while len(entered) < action.max_digits and not self.a.ended.is_set():
            now = loop.time()
            if now >= deadline or (entered and now - last >= DIGIT_GAP):
                break
            try:
                d = await asyncio.wait_for(leg.digits.get(), 0.25)
            except asyncio.TimeoutError:
                continue
            if d == "#":
                if entered:
                    break
                continue
            if d in "0123456789*":
                entered, last = entered + d, loop.time()
        if self.a.ended.is_set():
            return core.HungUp()
        return core.Entered(entered) if entered else core.TimedOut()

    async def check_password(self, digits: str) -> bool:
        stored = self.account.password_hash
        if self.policy.per_id_password:
            stored = self.account.caller_hashes.get(self.target.caller or "") if self.target.caller else None
        ok = bool(stored) and await asyncio.get_running_loop().run_in_executor(None, pin.verify, digits, stored)
        if ok:
            await cbstore.password_ok(self.store, self.policy.number)
            return True
        self.service.count("callback_wrong_password")
        locked = await cbstore.password_failed(self.store, self.policy.number)
        self.log(f"wrong password from {self.target.number}" + ("; account locked" if locked else ""))
        if locked:
            await self.say(["cb-locked"], interrupt=False)
            self.a.bye()
        return False

    async def quote(self, number: str) -> int | None:
        rate = core.rate_for(await cbstore.rates(self.store), number)
        if rate is None:
            self.log(f"no rate for {number}: not allowed")
            return None
        self.rate = rate
        credit = await cbstore.credit(self.store, self.policy.number)
        seconds = core.max_seconds(credit, rate)
        self.log(f"{number}: rate {rate}/min, credit {credit}: at most {seconds} s")
        return seconds

    # ------------------------------------------------------------ leg B and the bridge
    async def dial(self, action: core.Dial) -> core.Event:
        b = self.b = OutgoingCall(self.service, action.number, self.policy.number, self.origin("b"))
        caller = self.target.caller or self.target.number
        journal.call_started(b.call_id, caller, action.number, "callback", f"leg B of {self.a.call_id}")
        ringback = self.a.leg.play(_ringback(), 1000)
        dialling = asyncio.ensure_future(b.start(RING_B_SECONDS))
        hung_up = asyncio.ensure_future(self.a.ended.wait())
        await asyncio.wait([dialling, hung_up], return_when=asyncio.FIRST_COMPLETED)
        self.a.leg.stop_playing()
        del ringback
        if not dialling.done():     # the caller hung up while leg B rang: cancel it
            dialling.cancel()
            try:
                await dialling
            except asyncio.CancelledError:
                pass
            journal.call_ended(b.call_id, 487, "caller hung up while it rang")
            return core.HungUp()
        hung_up.cancel()
        status = dialling.result()
        if status != 200:
            journal.call_ended(b.call_id, status, "callback leg B failed")
            return core.CalleeFailed(status)
        journal.answered(b.call_id, action.number)
        return core.CalleeAnswered()

    async def bridge(self, action: core.Bridge) -> core.Event:
        a, b = self.a, self.b
        bridge = Bridge([a.leg, b.leg])
        bridge.start()
        self.log(f"bridged {a.number} and {b.number} for at most {action.max_seconds} s")
        ends = [asyncio.ensure_future(a.ended.wait()), asyncio.ensure_future(b.ended.wait())]
        done, _ = await asyncio.wait(ends, timeout=action.max_seconds, return_when=asyncio.FIRST_COMPLETED)
        for e in ends:
            e.cancel()
        bridge.stop()
        seconds = b.talk_seconds()
        out = not done
        if not b.ended.is_set():
            b.bye()
        cost = core.cost(seconds, self.rate)
        left = await cbstore.charge(self.store, self.policy.number, b.call_id, b.number, seconds, cost)
        why = "credit exhausted" if out else ("caller hung up" if a.ended.is_set() else "callee hung up")
        self.log(f"call to {b.number} ended ({why}) after {seconds:.1f} s: charged {cost}, credit {left}")
        journal.call_ended(b.call_id, 200, f"{why}; {seconds:.1f} s charged {cost}")
        if out:
            return core.CreditExhausted()
        return core.HungUp()

    async def play_and_end(self, action: core.PlayAndEnd) -> None:
        a = self.a
        if not a.ended.is_set():
            self.log(f"playing {action.sound} before hanging up ({action.reason})")
            await self.say([action.sound], interrupt=False)
            a.bye()
        journal.call_ended(a.call_id, 200, action.reason)


def _ringback() -> np.ndarray:
    global RINGBACK
    if RINGBACK is None:
        from media import audio
        RINGBACK = np.concatenate([audio.tone((425,), 1.0, 0.2), audio.silence(4.0)])
    return RINGBACK
