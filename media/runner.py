"""The apps of the contract, one coroutine per call: play, menu, voicemail (leave a
message) and vmaccess (listen). The decisions live in the pure modules (menu, vmkeys, pin);
this module plays, waits for digits and records through the call's RTP leg."""
from __future__ import annotations

import asyncio
from datetime import datetime

import numpy as np

from media import apps, audio, menu as menumod, pin, sip, spoken, vmkeys
from media import conference  # conference rooms (issue 14)
from media.leg import FRAME

DIGIT_TIMEOUT = 8.0
SILENCE_SECONDS = 6.0      # a voicemail ends after this much silence
FLUSH_SECONDS = 1.0        # recorded audio reaches the database at least this often


class Runner:
    def __init__(self, service, call):
        self.service = service
        self.call = call
        self.store = service.store
        self.app = call.app
        self.message_id: int | None = None
        self.box = None

    @property
    def leg(self):
        return self.call.leg

    def log(self, text: str) -> None:
        self.service.log(f"call {self.call.invite.call_id}: {text}")

    # ------------------------------------------------------------ lifecycle
    async def check(self) -> tuple[int, str] | None:
        """Before answering: a refusal (status, reason), or None to go on."""
        if isinstance(self.app, apps.Voicemail):
            self.box = await self.store.box(self.app.box)
            if self.box is None:
                return 404, f"Not Found - no voicemail box {self.app.box}"
        if isinstance(self.app, apps.Conference):   # conference rooms
            return await conference.check(self)
        if isinstance(self.app, apps.VmAccess) and self.app.box:
            self.box = await self.store.box(self.app.box)
            if self.box is None:
                return 404, f"Not Found - no voicemail box {self.app.box}"
        return None

    async def run(self):
        if isinstance(self.app, apps.Play):
            return await self.play_app()
        if isinstance(self.app, apps.Menu):
            return await self.menu_app()
        if isinstance(self.app, apps.Voicemail):
            return await self.leave()
        if isinstance(self.app, apps.Hold):
            return await self.hold()
        if isinstance(self.app, apps.Conference):   # conference rooms
            return await conference.run(self)
        return await self.access()

    async def cancelled(self) -> None:
        """The caller hung up (BYE/CANCEL): keep what was recorded."""
        if self.message_id is not None and self.leg is not None and self.leg.recording is not None:
            await self.finish_message()

    # ------------------------------------------------------------ primitives
    async def audio(self, name: str) -> np.ndarray:
        pcm = await self.store.audio(name)
        if pcm is None:
            raise LookupError(f"no audio {name!r}")
        return pcm

    async def play(self, what, loops: int = 1, interrupt: bool = True) -> bool:
        """Play a stored audio (name) or PCM; with `interrupt`, a digit stops it (and stays
        queued). True when played to the end."""
        pcm = await self.audio(what) if isinstance(what, str) else what
        done = self.leg.play(pcm, loops)
        if not interrupt:
            return await done
        while not done.done():
            if not self.leg.digits.empty():
                self.leg.stop_playing()
                break
            await asyncio.wait([done], timeout=0.02)
        return done.result()

    async def play_many(self, items, interrupt: bool = True) -> bool:
        for item in items:
            if not await self.play(item, interrupt=interrupt):
                return False
        return True

    async def digit(self, timeout: float) -> str | None:
        try:
            return await asyncio.wait_for(self.leg.digits.get(), timeout)
        except asyncio.TimeoutError:
            return None

    def flush_digits(self) -> None:
        while not self.leg.digits.empty():
            self.leg.digits.get_nowait()

    async def collect(self, max_digits: int, timeout: float, first_timeout: float | None = None) -> str:
        entered = ""
        wait = first_timeout if first_timeout is not None else timeout
        while len(entered) < max_digits:
            d = await self.digit(wait)
            if d is None or (d == "#" and entered):
                break
            if d != "#":
                entered += d
            wait = timeout
        return entered

    def say_number(self, number: str) -> list[str]:
        return [f"digit-{d}" for d in number if d.isdigit()]

    async def record(self, max_seconds: float, on_chunk=None) -> np.ndarray:
        """Record until '#', silence, hang-up (cancellation) or `max_seconds`."""
        self.flush_digits()
        self.leg.recording = []
        self.leg.silent_frames = 0
        kept: list[np.ndarray] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        next_flush = loop.time() + FLUSH_SECONDS
        while loop.time() < deadline:
            d = await self.digit(0.1)
            if d == "#":
                break
            if self.leg.silent_frames * FRAME / 8000 >= SILENCE_SECONDS:
                self.log("recording ended by silence")
                break
            if on_chunk and loop.time() >= next_flush:
                next_flush = loop.time() + FLUSH_SECONDS
                chunk = self.take_recording()
                if len(chunk):
                    await on_chunk(chunk)
            elif not on_chunk:
                kept.append(self.take_recording())
        rest = self.take_recording()
        self.leg.recording = None
        return np.concatenate(kept + [rest]) if not on_chunk else rest

    def take_recording(self) -> np.ndarray:
        chunks, self.leg.recording = self.leg.recording or [], [] if self.leg.recording is not None else None
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    # ------------------------------------------------------------ play and menu
    async def play_app(self):
        try:
            pcm = await self.audio(self.app.audio)
        except LookupError as err:
            self.log(f"play: {err}")
            return "error", ""
        await self.play(pcm, self.app.loop, interrupt=False)
        return "done", ""

    async def menu_app(self):
        m = self.app
        try:
            prompt = await self.audio(m.prompt)
            invalid = await self.audio(m.invalid) if m.invalid else None
        except LookupError as err:
            self.log(f"menu: {err}")
            return "error", ""
        attempt, play_invalid = 0, False
        while True:
            if play_invalid and invalid is not None:
                await self.play(invalid)
            await self.play(prompt)
            entered = ""
            wait = m.timeout
            while True:
                d = await self.digit(wait)
                if d is None:
                    break
                entered, complete = menumod.input_complete(m, entered, d)
                if complete:
                    break
            decision = menumod.judge(m, entered, attempt)
            if isinstance(decision, menumod.Outcome):
                self.log(f"menu outcome {decision.outcome} {decision.digits}")
                return decision.outcome, decision.digits
            attempt += 1
            play_invalid = decision.play_invalid
            self.flush_digits()

    async def hold(self):
        """Music until CANCEL; every `interval` s "you are caller number N" (N from the
        header, then from the proxy's position INFOs), then the music goes on where it was."""
        try:
            music = await self.audio(self.app.music)
        except LookupError as err:
            self.log(f"hold: {err}; silence instead")
            music = audio.silence(1.0)
        if self.call.position is None:
            self.call.position = self.app.position
        loop = asyncio.get_running_loop()
        offset = 0
        ends = loop.time() + self.app.max_seconds
        while loop.time() < ends:
            done = self.leg.play(music[offset:] if offset else music, 1 if offset else 1000)
            started = loop.time()
            await asyncio.wait([done], timeout=min(self.app.interval or 3600, max(0.0, ends - loop.time())))
            if done.done() and done.result():
                offset = 0
                continue
            offset = (offset + int((loop.time() - started) * 8000)) % max(1, len(music))
            offset -= offset % FRAME
            if self.app.interval:
                await self.announce()
        self.log("hold: maximum time reached")
        return "timeout", ""

    async def announce(self) -> None:
        """hold: "you are caller number N" and/or the expected wait, as the proxy last said."""
        items: list[str] = []
        if self.call.position:
            items += ["you-are-caller", *self.say_number(str(self.call.position))]
        if self.call.wait:
            minutes = -(-self.call.wait // 60)
            items += ["queue-wait-short"] if self.call.wait < 60 else ["queue-wait", *self.say_number(str(minutes)), "minutes"]
        if items:
            self.leg.stop_playing()
            await self.play_many(items, interrupt=False)

    # ------------------------------------------------------------ voicemail: leave
    async def leave(self):
        if self.box.greeting:
            await self.play(audio.from_pcm_bytes(self.box.greeting))     # any key skips the greeting
        elif self.box.name:      # the default greeting with the owner's recorded name
            if await self.play(audio.from_pcm_bytes(self.box.name)):
                await self.play("vm-greeting-name")
        else:
            await self.play("vm-greeting")
        self.flush_digits()
        await self.play("beep", interrupt=False)
        caller = sip.user_of(sip.uri_of(self.call.invite.get("from", ""))) or "anonymous"
        self.message_id = await self.store.new_message(self.box.number, caller)
        self.log(f"voicemail: recording message {self.message_id} for box {self.box.number} from {caller}")
        rest = await self.record(self.box.max_seconds, on_chunk=lambda c: self.store.append(self.message_id, c))
        self.leg.recording = [rest]
        await self.finish_message()
        await self.play("vm-goodbye", interrupt=False)
        return None

    async def finish_message(self) -> None:
        rest = self.take_recording()
        self.leg.recording = None
        message_id, self.message_id = self.message_id, None
        await self.store.append(message_id, rest, complete=True)
        await self.store.query("UPDATE voicemail_message SET email_state = 'pending' WHERE id = %s AND EXISTS "
                               "(SELECT 1 FROM voicemail_box WHERE number = %s AND email IS NOT NULL)",
                               (message_id, self.box.number), "none")   # voicemail by email (media/mailer.py)
        mailer = getattr(self.service, "mailer", None)
        if mailer is not None:
            mailer.poke()
        new, _saved = await self.store.counts(self.box.number)
        self.log(f"voicemail: message {message_id} stored in box {self.box.number}")
        notify = getattr(self.service, "message_waiting", None)
        if notify:
            notify(self.box.number)

    # ------------------------------------------------------------ voicemail: listen
    async def access(self):
        if self.box is None and not await self.login():
            await self.play("vm-goodbye", interrupt=False)
            return None
        number = self.box.number
        if self.app.box:
            self.log(f"vmaccess: box {number} opened without PIN (the proxy authenticated its owner)")
        new, saved = await self.store.counts(number)
        await self.play_many(["vm-you-have", *self.say_number(str(new)), "vm-new",
                              *self.say_number(str(saved)), "vm-saved"])
        listing = vmkeys.Listing(tuple(m.id for m in await self.store.messages(number)))
        infos = {m.id: m for m in await self.store.messages(number)}
        action, message = "play", listing.current
        while True:
            if action == "play":
                message = listing.current
                if message is None:
                    await self.play("vm-no-more")
                else:
                    info = infos[message]
                    when = info.created_at.astimezone()   # the service's local time
                    await self.play_many(spoken.received(when, datetime.now(when.tzinfo), info.caller))
                    if self.leg.digits.empty():
                        whole = await self.play(await self.store.message_audio(message))
                        if whole and info.state == "new":
                            await self.store.mark(message, "saved")
                            self.service_message_waiting(number)
                if self.leg.digits.empty():
                    await self.play("vm-menu")
            key = await self.digit(DIGIT_TIMEOUT * 2)
            if key is None:
                break
            step = vmkeys.on_key(listing, key)
            listing, action = step.listing, step.action
            if action == "save":
                await self.store.mark(step.message, "saved")
                self.service_message_waiting(number)
                await self.play("vm-kept")
                action = "play"
            elif action == "delete":
                await self.store.delete(step.message)
                self.service_message_waiting(number)
                await self.play("vm-deleted")
                action = "play"
            elif action == "greeting":
                await self.change_greeting(number)
                action = "menu"
            elif action == "pin":
                await self.change_pin(number)
                action = "menu"
            elif action == "name":
                await self.record_name(number)
                action = "menu"
            elif action == "goodbye":
                break
            elif action in ("end", "ignore", "menu"):
                action = "menu"
            if action == "menu":
                await self.play("vm-menu")
                action = "wait"
        await self.play("vm-goodbye", interrupt=False)
        return None

    def service_message_waiting(self, number: str) -> None:
        notify = getattr(self.service, "message_waiting", None)
        if notify:
            notify(number)

    async def login(self) -> bool:
        for _attempt in range(3):
            await self.play("vm-enter-box")
            number = await self.collect(32, 4.0, DIGIT_TIMEOUT)
            if not number:
                return False
            await self.play("vm-enter-pin")
            entered = await self.collect(8, 4.0, DIGIT_TIMEOUT)
            box = await self.store.box(number)
            if box is not None and box.locked:
                self.log(f"vmaccess: box {number} is locked")
                await self.play("vm-locked", interrupt=False)
                return False
            ok = box is not None and await asyncio.get_running_loop().run_in_executor(
                None, pin.verify, entered, box.pin_hash)
            if ok:
                await self.store.pin_ok(number)
                self.box = box
                self.log(f"vmaccess: box {number} opened with PIN")
                return True
            self.service.count("wrong_pin")
            self.log(f"vmaccess: wrong PIN or box for {number!r}")
            if box is not None and await self.store.pin_failed(box):
                self.log(f"vmaccess: box {number} locked for {pin.LOCK_SECONDS} s")
                await self.play("vm-locked", interrupt=False)
                return False
            await self.play("vm-wrong-pin", interrupt=False)
        return False

    async def change_greeting(self, number: str) -> None:
        await self.play("vm-record-greeting")
        self.flush_digits()
        await self.play("beep", interrupt=False)
        pcm = await self.record(60)
        if len(pcm) >= 8000 // 2:
            await self.store.set_greeting(number, pcm)
            await self.play("vm-greeting-saved")

    async def record_name(self, number: str) -> None:
        """Key 5: the owner says the name, said in the default greeting ("<name> is not available...")."""
        await self.play("vm-record-name")
        self.flush_digits()
        await self.play("beep", interrupt=False)
        pcm = await self.record(10)
        if len(pcm) >= 8000 // 4:
            await self.store.set_name(number, pcm)
            await self.play("vm-name-saved")

    async def change_pin(self, number: str) -> None:
        await self.play("vm-new-pin")
        entered = await self.collect(8, 4.0, DIGIT_TIMEOUT)
        try:
            pin.check_rule(entered)
        except pin.PinError:
            await self.play("vm-pin-invalid")
            return
        await self.store.set_pin(number, entered)
        await self.play("vm-pin-changed")
