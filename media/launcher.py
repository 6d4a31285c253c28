"""The conference launcher's runner (seed 003, issue 14 section 4), inside the media service.

Every second it claims a pending launch (kemictl or the HTTP endpoint wrote it, sql/019) and
runs it: the pure escalation machine (kemi/core/launcher.py) is fed a `Tick` every 250 ms and
the joins and ended calls; its actions are carried out here:

  PlaceCall  an outgoing leg through the proxy (media/uac.py) with
             `X-Kemi-Origin: launch;id=<launch>` (the proxy trusts it only from this service's
             SIP address, kemi/launch_route.py); on answer the contact hears the welcome
             message and "press 1 to join" (three times at most); 1 puts the leg into the room
             (media/conference.py's live room, the same mix as dial-in callers), 6 mutes;
  Notify     SMS (HTTP gateway) and email (SMTP) with the number to call and the PIN, in a
             thread, each tried 3 times with back-off (media/launcher_notify.py);
  Finish     the launch row is closed (people stay in the room).

Dial-ins: whoever is in the room and was not brought by this launch is matched by caller
number to a contact's work/home/mobile number and recorded as joined by `dial-in`. Every
step is written to `launch_event`, the first join of each contact to `launch_contact`.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil

import numpy as np
import psycopg

from kemi.core import launcher as core
from media import audio, builtin, conference, conference_core, launcher_notify as notify, launcher_store as q
from media.uac import OutgoingCall

POLL_SECONDS = 1.0
TICK_SECONDS = 0.25
PROMPT = "launch-press-1"
WELCOME = "launch-welcome"
TRIES_TO_PRESS = 3
DIGIT_WAIT = 6.0
SPEECH = {PROMPT: "You are invited to a conference call. Press 1 to join.",
          WELCOME: "Hello. This is a conference call."}


def ensure_prompts(dsn: str, log=print) -> None:
    """The launcher's prompts, made like the built-in ones on the first start."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        for name, text in SPEECH.items():
            if conn.execute("SELECT 1 FROM audio WHERE name = %s", (name,)).fetchone():
                continue
            pcm = builtin.speak(text) if shutil.which("espeak-ng") else None
            if pcm is None:
                pcm = audio.tone((660,), 0.5)
            conn.execute("INSERT INTO audio (name, pcm, builtin, source) VALUES (%s, %s, true, 'espeak-ng') "
                         "ON CONFLICT DO NOTHING", (name, audio.pcm_bytes(pcm)))
            log(f"launcher prompt {name} added")


class Launcher:
    def __init__(self, service, settings, log):
        self.service, self.settings, self.log = service, settings, log
        self.store = service.store
        self.runs: dict[int, asyncio.Task] = {}

    async def run(self) -> None:
        try:
            for (lid,) in await self.store.query(q.ORPHANS) or []:
                self.log(f"launch {lid}: interrupted by a restart of the media service")
        except Exception as err:
            self.log(f"launcher: cannot close interrupted launches: {err!r}")
        while True:
            try:
                row = await self.store.query(q.CLAIM, (), "one")
                if row is not None:
                    contacts = await self.store.query(q.CONTACTS, (row[0],))
                    launch = LaunchRun(self, row, [core.Contact(*c) for c in contacts])
                    task = asyncio.get_running_loop().create_task(launch.run())
                    self.runs[row[0]] = task
                    task.add_done_callback(lambda _t, lid=row[0]: self.runs.pop(lid, None))
                    continue        # another one may be waiting
            except asyncio.CancelledError:
                raise
            except Exception as err:      # the database away: try again later
                self.service.count("launch_errors")
                self.log(f"launcher: {err!r}")
            await asyncio.sleep(POLL_SECONDS)


class LaunchRun:
    def __init__(self, launcher: Launcher, row, contacts: list[core.Contact]):
        self.launcher = launcher
        self.service = launcher.service
        self.store = launcher.store
        self.settings = launcher.settings
        (self.id, self.room, self.pin, self.title, self.welcome, self.record, self.dial_in, scheme) = row
        self.scheme = core.parse_scheme(scheme if isinstance(scheme, dict) else json.loads(scheme))
        self.contacts = tuple(contacts)
        self.events: asyncio.Queue = asyncio.Queue()
        self.own_keys: set[str] = set()          # Call-IDs of the legs this launch brought in
        self.seen: set[str] = set()              # room members already accounted for
        self.tasks: set[asyncio.Task] = set()

    def log(self, text: str) -> None:
        self.launcher.log(f"launch {self.id}: {text}")

    async def note(self, idx: int | None, kind: str, detail: str) -> None:
        self.log(f"{'' if idx is None else f'contact {idx}: '}{kind}: {detail}")
        try:
            await self.store.query(q.EVENT, (self.id, idx, kind, detail), "none")
        except Exception as err:
            self.log(f"event not stored: {err!r}")

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        state = core.start(self.contacts)
        outcome = "stopped"
        await self.note(None, "launch", f"started: room {self.room}, {len(self.contacts)} contacts, "
                                        f"scheme {self.scheme.name}")
        if self.record:
            await self.store.query("UPDATE conference_room SET record = true WHERE number = %s", (self.room,), "none")
        checked = 0.0
        try:
            while not state.finished:
                now = loop.time() - started
                events: list[core.Event] = [core.Tick(now)]
                while not self.events.empty():
                    events.append(self.events.get_nowait())
                events.extend(self.dial_ins())
                if now - checked >= 2.0:
                    checked = now
                    row = await self.store.query(q.CANCELLED, (self.id,), "one")
                    if row is None or row[0] == "cancelled":
                        events.append(core.Stop("cancelled"))
                for event in events:
                    state, actions = core.step(self.scheme, state, event)
                    if isinstance(event, core.Joined):
                        await self.joined(state, event)
                    for action in actions:
                        if isinstance(action, core.PlaceCall):
                            self.spawn(self.call(action))
                        elif isinstance(action, core.Notify):
                            for channel in action.channels:
                                self.spawn(self.send(channel, action.contact))
                        elif isinstance(action, core.Finish):
                            outcome = action.reason
                await asyncio.sleep(TICK_SECONDS)
            s = core.summary(state)
            outcome = f"{outcome}: {s.joined} of {s.total} joined"
        except asyncio.CancelledError:
            outcome = "media service stopping"
            raise
        except Exception as err:
            self.service.count("launch_errors")
            outcome = f"failed: {err!r}"
            self.log(outcome)
        finally:
            await self.note(None, "launch", f"finished ({outcome})")
            await self.store.query(q.FINISH, (outcome, self.id), "none")
        if self.tasks:     # calls still in the room and notifications still trying go on
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def joined(self, state: core.State, event: core.Joined) -> None:
        await self.store.query(q.JOINED, (event.how, self.id, event.contact), "none")
        await self.note(event.contact, "joined", event.how)
        self.service.count("launch_joined")

    def dial_ins(self) -> list[core.Event]:
        room = conference.rooms_of(self.service).rooms.get(self.room)
        if room is None:
            return []
        out: list[core.Event] = []
        for key, member in list(room.members.items()):
            if key in self.own_keys or key in self.seen:
                continue
            self.seen.add(key)
            match = next((i for i, c in enumerate(self.contacts) if c.how_for(member.caller)), None)
            if match is None:
                self.spawn(self.note(None, "dial-in", f"{member.caller} joined (not a contact of this launch)"))
                continue
            out.append(core.Joined(match, "dial-in"))
        return out

    # ------------------------------------------------------------ calls
    async def call(self, action: core.PlaceCall) -> None:
        idx = action.contact
        try:
            await self._call(action)
        except Exception as err:
            self.service.count("launch_errors")
            await self.note(idx, "call", f"{action.medium} {action.number}: failed: {err!r}")
        finally:
            self.events.put_nowait(core.CallEnded(idx))

    async def _call(self, action: core.PlaceCall) -> None:
        idx, what = action.contact, f"{action.medium} {action.number}"
        out = OutgoingCall(self.service, action.number, self.room,
                           [("X-Kemi-Origin", f"launch;id={self.id};contact={idx}")])
        await self.note(idx, "call", f"{what}: calling")
        self.service.count("launch_calls")
        try:
            status = await out.start(self.scheme.ring_seconds)
            if status != 200:
                await self.note(idx, "call", f"{what}: not answered ({status} {out.reason})".rstrip())
                return
            await self.note(idx, "call", f"{what}: answered")
            if not await self.invite(out):
                await self.note(idx, "call", f"{what}: 1 not pressed" + (" (hung up)" if out.ended.is_set() else ""))
                return
            await self.in_room(out, idx, action)
        finally:
            if not out.ended.is_set():
                out.bye()

    async def audio(self, name: str) -> np.ndarray:
        pcm = await self.store.audio(name)
        if pcm is None:
            self.log(f"no audio {name!r}: a short tone instead")
            return audio.tone((660,), 0.4)
        return pcm

    async def invite(self, out: OutgoingCall) -> bool:
        """The welcome message once, then "press 1 to join" until 1 (True) or three times."""
        leg = out.leg
        names = [self.welcome or WELCOME]
        for _ in range(TRIES_TO_PRESS):
            for name in names + [PROMPT]:
                done = leg.play(await self.audio(name))
                while not done.done() and not out.ended.is_set() and leg.digits.empty():
                    await asyncio.wait([done], timeout=0.05)
                if not leg.digits.empty():
                    leg.stop_playing()
                    break
            names = []
            try:
                digit = await asyncio.wait_for(self._digit(out), DIGIT_WAIT)
            except asyncio.TimeoutError:
                continue
            if digit == "1":
                return True
            if digit is None:
                return False
        return False

    async def _digit(self, out: OutgoingCall) -> str | None:
        while not out.ended.is_set():
            try:
                return await asyncio.wait_for(out.leg.digits.get(), 0.2)
            except asyncio.TimeoutError:
                continue
        return None

    async def in_room(self, out: OutgoingCall, idx: int, action: core.PlaceCall) -> None:
        info = await conference.load_room(self.store, self.room)
        if info is None:
            await self.note(idx, "call", f"room {self.room} no longer exists")
            return
        if self.record:
            info = dataclasses.replace(info, record=True)
        rooms = conference.rooms_of(self.service)
        room = await rooms.room(info, self.store)
        decision = conference_core.admit(len(room.members), info.max_size, room.locked, False)
        if decision != "join":
            await self.note(idx, "call", f"room {decision}: not admitted")
            if not room.members:
                rooms.rooms.pop(info.number, None)
            done = out.leg.play(await self.audio("conf-full" if decision == "full" else "conf-room-locked"))
            await asyncio.wait([done], timeout=10)
            return
        key = out.call_id
        self.own_keys.add(key)
        while not out.leg.digits.empty():
            out.leg.digits.get_nowait()
        member = room.join(key, action.number, "member", out.leg)
        self.service.count("conference_joins")
        self.events.put_nowait(core.Joined(idx, action.medium))
        try:
            while not member.kicked and not out.ended.is_set():
                digit = await self._digit_or_none(out)
                if digit is None:
                    continue
                step = conference_core.on_key(digit, False, member.muted, room.locked)
                if step.action in ("mute", "unmute"):
                    room.set_muted(key, step.action == "mute")
        finally:
            rooms.left(room, key)
        await self.note(idx, "call", f"{action.medium} {action.number}: left the room"
                        + (" (kicked)" if member.kicked else ""))

    async def _digit_or_none(self, out: OutgoingCall) -> str | None:
        try:
            return await asyncio.wait_for(out.leg.digits.get(), 0.2)
        except asyncio.TimeoutError:
            return None

    # ------------------------------------------------------------ SMS and email
    async def send(self, channel: str, idx: int) -> None:
        contact = self.contacts[idx]
        to = contact.mobile if channel == "sms" else contact.email
        text = core.message(self.title, self.dial_in, self.pin)
        subject = f"Invitation Conference Call - Pin {self.pin}"
        for attempt in range(notify.TRIES):
            try:
                if channel == "sms":
                    detail = await asyncio.to_thread(notify.send_sms, self.settings, to, text)
                else:
                    detail = await asyncio.to_thread(notify.send_email, self.settings, to, subject, text)
                self.service.count(f"launch_{channel}_sent")
                await self.note(idx, channel, f"sent to {to} ({detail})")
                return
            except notify.NotifyError as err:
                self.service.count(f"launch_{channel}_failed")
                await self.note(idx, channel, f"try {attempt + 1} to {to} failed: {err}")
            if attempt + 1 < notify.TRIES:
                await asyncio.sleep(notify.BACKOFF[attempt])
        await self.note(idx, channel, f"gave up after {notify.TRIES} tries to {to}")
