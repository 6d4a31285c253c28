"""Conference rooms in the media service (`X-Kemi-App: conference;room=N`).

A caller is answered (200), enters the room's PIN (or the moderator PIN) by RFC 4733 or SIP
INFO digits and `#`, and joins the room's mix; three wrong PINs end the call with goodbye.
Decisions are pure (media/conference_core.py, media/mixer.py); this module holds the live
rooms of this process and runs them on the media clock:

- each participant's leg keeps its received frames in a small inbox (at most 3 frames, 60 ms);
- the leg's player is a `Feed`: on every clock tick the first leg that asks makes the room
  mix one frame for everyone (mixer.Matrix: everyone but self, muted people heard by nobody,
  join/leave tones heard by all), encoded once per participant in its own G.711 law;
- while fewer than two people are in (or the room waits for its moderator) everyone hears
  the music-on-hold loop instead;
- a room with `record` appends the mix of everyone to a `conference_recording` row every
  second (first one in to last one out), like voicemail messages.
The room lives as long as someone is in it. The live rooms are reachable from kemictl
through the control socket (media/conference_control.py): status, kick, mute.
"""
from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

import numpy as np

from media import audio, conference_core as core, g711, mixer, pin, sip
from media.leg import FRAME

DIGIT_TIMEOUT = 8.0
MAX_DEPTH = 3          # received frames kept per participant (60 ms); older ones are dropped
FLUSH_SECONDS = 1.0
JOIN_TONE = np.concatenate([audio.tone((660,), 0.12, 0.25), audio.tone((880,), 0.12, 0.25)])
LEAVE_TONE = np.concatenate([audio.tone((880,), 0.12, 0.25), audio.tone((660,), 0.12, 0.25)])
MUTE_CUE = audio.tone((1400,), 0.1, 0.2)
UNMUTE_CUE = np.concatenate([MUTE_CUE, audio.silence(0.05), MUTE_CUE])
SILENT_FRAME = np.zeros(FRAME, dtype=np.int16)
ENCODE = {g711.PCMU: g711.ULAW_ENCODE, g711.PCMA: g711.ALAW_ENCODE}


@dataclass(frozen=True)
class RoomInfo:
    number: str
    name: str
    pin_hash: str
    moderator_pin_hash: str | None
    wait_for_moderator: bool
    max_size: int
    record: bool


ROOM_SQL = ("SELECT number, name, pin_hash, moderator_pin_hash, wait_for_moderator, max_size, record "
            "FROM conference_room WHERE number = %s")


async def load_room(store, number: str) -> RoomInfo | None:
    row = await store.query(ROOM_SQL, (number,), "one")
    return RoomInfo(*row) if row else None


class Feed:
    """A leg's player while it is in a room: each frame is the room's mix for it."""

    def __init__(self, room: "Room", member: "Member"):
        self.room, self.member = room, member
        self.done = asyncio.get_running_loop().create_future()

    def next_frame(self) -> bytes | None:
        return self.room.frame_for(self.member)


@dataclass
class Member:
    key: str                  # the call's Call-ID
    caller: str
    role: str                 # "moderator" or "member"
    leg: object
    joined: float = field(default_factory=time.monotonic)
    muted: bool = False
    kicked: bool = False
    inbox: collections.deque = field(default_factory=lambda: collections.deque(maxlen=8))
    cue: np.ndarray | None = None      # a tone only this participant hears (mute/unmute)
    tick: int = -1
    nth: int = 0


class Room:
    def __init__(self, info: RoomInfo, store, log, music: np.ndarray):
        self.info = info
        self.store = store
        self.log = log
        self.music = music if len(music) else audio.silence(1.0)
        self.music_pos = 0
        self.matrix = mixer.Matrix("conference")
        self.members: dict[str, Member] = {}
        self.locked = False
        self.tone: np.ndarray | None = None
        self.cache_tick = -1
        self.cache: dict[int, dict[str, bytes]] = {}
        self.rec_chunks: list[np.ndarray] | None = None
        self.rec_task: asyncio.Task | None = None
        self.mixes = 0

    # ------------------------------------------------------------ membership
    @property
    def moderators(self) -> int:
        return sum(1 for m in self.members.values() if m.role == "moderator")

    def mixing(self) -> bool:
        return core.mixing(len(self.members), self.moderators, self.info.wait_for_moderator)

    def join(self, key: str, caller: str, role: str, leg) -> Member:
        member = Member(key, caller, role, leg)
        self.members[key] = member
        self.matrix.add(key)
        leg.recording = member.inbox      # the leg appends every decoded frame it receives
        leg.stop_playing()
        leg.player = Feed(self, member)
        self.tone = JOIN_TONE
        if self.info.record and self.rec_chunks is None:
            self.rec_chunks = []
            self.rec_task = asyncio.get_running_loop().create_task(self._record())
        self.log(f"conference {self.info.number}: {caller} joined as {role} ({len(self.members)} in the room)")
        return member

    def leave(self, key: str) -> None:
        member = self.members.pop(key, None)
        if member is None:
            return
        self.matrix.remove(key)
        if member.leg.player is not None and isinstance(member.leg.player, Feed):
            member.leg.stop_playing()
        member.leg.recording = None
        self.tone = LEAVE_TONE
        self.log(f"conference {self.info.number}: {member.caller} left ({len(self.members)} in the room)")

    def set_muted(self, key: str, muted: bool) -> None:
        member = self.members[key]
        member.muted = muted
        member.cue = MUTE_CUE if muted else UNMUTE_CUE
        self.matrix.set_muted(key, muted)

    def kick(self, key: str) -> bool:
        member = self.members.get(key)
        if member is None:
            return False
        member.kicked = True
        self.leave(key)
        return True

    def status(self) -> dict:
        now = time.monotonic()
        people = [{"id": m.key, "caller": m.caller, "role": m.role, "muted": m.muted,
                   "seconds": round(now - m.joined, 1)} for m in self.members.values()]
        return core.status_of(self.info.number, self.info.name, self.info.max_size, self.locked,
                              self.rec_chunks is not None, self.mixing(), people)

    # ------------------------------------------------------------ the media clock
    def frame_for(self, member: Member) -> bytes:
        """Called by the member's leg on every clock tick (several times after a late tick):
        the first request for a (tick, n) mixes the room once for everyone."""
        tick = member.leg.clock.ticks
        if member.tick != tick:
            member.tick, member.nth = tick, 0
        else:
            member.nth += 1
        if tick != self.cache_tick:
            self.cache_tick, self.cache = tick, {}
        frames = self.cache.get(member.nth)
        if frames is None:
            frames = self.cache[member.nth] = self.compute()
        return frames.get(member.key) or g711.encode(SILENT_FRAME, member.leg.payload_type)

    def _take(self, what: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        if what is None:
            return None, None
        frame = what[:FRAME]
        if len(frame) < FRAME:
            frame = np.concatenate([frame, np.zeros(FRAME - len(frame), dtype=np.int16)])
        rest = what[FRAME:]
        return frame, rest if len(rest) else None

    def compute(self) -> dict[str, bytes]:
        self.mixes += 1
        people = self.matrix.people
        frames = np.zeros((len(people), FRAME), dtype=np.int16)
        for i, p in enumerate(people):
            inbox = self.members[p.key].inbox
            while len(inbox) > MAX_DEPTH:
                inbox.popleft()
            if inbox:
                got = inbox.popleft()
                if len(got) == FRAME:
                    frames[i] = got
        extra, self.tone = self._take(self.tone)
        if self.mixing():
            out = self.matrix.mix(frames, extra)
            if self.rec_chunks is not None:
                self.rec_chunks.append(mixer.mix_all(frames, self.matrix.muted))
        else:
            music = self.music[self.music_pos:self.music_pos + FRAME]
            if len(music) < FRAME:
                self.music_pos = FRAME - len(music)
                music = np.concatenate([music, self.music[:self.music_pos]])
            else:
                self.music_pos += FRAME
            line = music.astype(np.int32) + (extra.astype(np.int32) if extra is not None else 0)
            out = np.repeat(mixer.clip16(line)[None, :], len(people), axis=0)
            if self.rec_chunks is not None and len(people):
                self.rec_chunks.append(mixer.mix_all(frames, self.matrix.muted))
        out = out.astype(np.int32)
        for i, p in enumerate(people):
            member = self.members[p.key]
            if member.cue is not None:
                cue, member.cue = self._take(member.cue)
                out[i] += cue
        out += 32768
        np.clip(out, 0, 65535, out=out)
        codes = {pt: table[out] for pt, table in ENCODE.items()}   # one G.711 lookup per law for the room
        return {p.key: codes[self.members[p.key].leg.payload_type][i].tobytes() for i, p in enumerate(people)}

    # ------------------------------------------------------------ recording
    async def _record(self) -> None:
        rec_id = None
        try:
            row = await self.store.query("INSERT INTO conference_recording (room) VALUES (%s) RETURNING id",
                                         (self.info.number,), "one")
            rec_id = row[0]
            self.log(f"conference {self.info.number}: recording {rec_id} started")
            while self.members:
                await asyncio.sleep(FLUSH_SECONDS)
                await self._flush(rec_id, complete=False)
        except asyncio.CancelledError:
            pass
        except Exception as err:   # storage trouble must not stop the room
            self.log(f"conference {self.info.number}: recording failed: {err!r}")
        finally:
            if rec_id is not None:
                try:
                    await self._flush(rec_id, complete=True)
                    self.log(f"conference {self.info.number}: recording {rec_id} stored")
                except Exception as err:
                    self.log(f"conference {self.info.number}: recording {rec_id} not completed: {err!r}")
            self.rec_chunks = None

    async def _flush(self, rec_id: int, complete: bool) -> None:
        chunks, self.rec_chunks = self.rec_chunks or [], ([] if self.rec_chunks is not None else None)
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        await self.store.query("UPDATE conference_recording SET pcm = pcm || %s, duration_ms = "
                               "(length(pcm) + %s) / 16, complete = %s WHERE id = %s",
                               (audio.pcm_bytes(pcm), 2 * len(pcm), complete, rec_id), "none")


class Rooms:
    """The live rooms of this media service process, and the PIN guard."""

    def __init__(self, log):
        self.log = log
        self.rooms: dict[str, Room] = {}
        self.guard = core.PinGuard()

    def size(self, number: str) -> int:
        room = self.rooms.get(number)
        return len(room.members) if room else 0

    async def room(self, info: RoomInfo, store) -> Room:
        room = self.rooms.get(info.number)
        if room is None:
            music = await store.audio("music-hold")
            room = self.rooms.setdefault(info.number, Room(info, store, self.log,
                                                             music if music is not None else audio.silence(1.0)))
        room.info = info   # provisioning changes (size, record) apply to the next joiner
        return room

    def left(self, room: Room, key: str) -> None:
        room.leave(key)
        if not room.members and self.rooms.get(room.info.number) is room:
            del self.rooms[room.info.number]

    # control (media/conference_control.py)
    def status(self, number: str | None) -> dict:
        if number is None:
            return {"rooms": [{"room": r.info.number, "participants": len(r.members)} for r in self.rooms.values()]}
        room = self.rooms.get(number)
        return room.status() if room else core.status_of(number, "", 0, False, False, False, [])

    def kick(self, number: str, key: str) -> bool:
        room = self.rooms.get(number)
        if room is None or not room.kick(key):
            return False
        self.log(f"conference {number}: participant {key} kicked")
        return True

    def mute(self, number: str, key: str, muted: bool) -> bool:
        room = self.rooms.get(number)
        if room is None or key not in room.members:
            return False
        room.set_muted(key, muted)
        return True


def rooms_of(service) -> Rooms:
    rooms = getattr(service, "conference_rooms", None)
    if rooms is None:
        rooms = Rooms(service.log)
        service.conference_rooms = rooms
    return rooms


# ---------------------------------------------------------------- the app

async def check(runner) -> tuple[int, str] | None:
    """Before answering: the room exists and is not full."""
    number = runner.app.room
    runner.conference = await load_room(runner.store, number)
    if runner.conference is None:
        return 404, f"Not Found - no conference room {number}"
    if rooms_of(runner.service).size(number) >= runner.conference.max_size:
        runner.service.count("conference_full")
        return 503, f"Service Unavailable - conference room {number} is full"
    return None


async def say(runner, name: str, interrupt: bool = True) -> None:
    try:
        await runner.play(name, interrupt=interrupt)
    except LookupError as err:   # a prompt missing (espeak-ng absent): go on without it
        runner.log(f"conference: {err}")


async def enter_pin(runner, info: RoomInfo, rooms: Rooms, caller: str) -> str | None:
    """'moderator', 'member' or None (wrong three times, locked out, or no input)."""
    loop = asyncio.get_running_loop()
    for attempt in range(core.TRIES_PER_CALL):
        await say(runner, "conf-enter-pin")
        entered = await runner.collect(8, 4.0, DIGIT_TIMEOUT)
        if not entered:
            return None
        if info.moderator_pin_hash and await loop.run_in_executor(None, pin.verify, entered, info.moderator_pin_hash):
            role = "moderator"
        elif await loop.run_in_executor(None, pin.verify, entered, info.pin_hash):
            role = "member"
        else:
            runner.service.count("conference_wrong_pin")
            runner.log(f"conference {info.number}: wrong PIN from {caller} (attempt {attempt + 1})")
            if rooms.guard.failed(info.number, caller, time.monotonic()):
                runner.log(f"conference {info.number}: PIN entry locked for {caller} after repeated wrong PINs")
                runner.service.count("conference_locked_out")
                await say(runner, "conf-locked-out", interrupt=False)
                return None
            if attempt + 1 < core.TRIES_PER_CALL:
                await say(runner, "vm-wrong-pin", interrupt=False)
            continue
        rooms.guard.succeeded(info.number, caller)
        return role
    return None


async def run(runner) -> None:
    info: RoomInfo = runner.conference
    rooms = rooms_of(runner.service)
    caller = sip.user_of(sip.uri_of(runner.call.invite.get("from", ""))) or "anonymous"
    if rooms.guard.locked(info.number, caller, time.monotonic()):
        runner.log(f"conference {info.number}: {caller} is locked out (wrong PINs)")
        await say(runner, "conf-locked-out", interrupt=False)
        return None
    role = await enter_pin(runner, info, rooms, caller)
    if role is None:
        await say(runner, "vm-goodbye", interrupt=False)
        return None
    info = await load_room(runner.store, info.number) or info
    room = await rooms.room(info, runner.store)
    decision = core.admit(len(room.members), info.max_size, room.locked, role == "moderator")
    if decision != "join":
        runner.log(f"conference {info.number}: {caller} not admitted: room {decision}")
        runner.service.count(f"conference_{decision}")
        if not room.members:
            rooms.rooms.pop(info.number, None)
        await say(runner, "conf-full" if decision == "full" else "conf-room-locked", interrupt=False)
        await say(runner, "vm-goodbye", interrupt=False)
        return None
    runner.flush_digits()
    key = runner.call.invite.call_id
    member = room.join(key, caller, role, runner.leg)
    runner.service.count("conference_joins")
    try:
        while not member.kicked:
            digit = await runner.digit(0.2)
            if digit is None:
                continue
            step = core.on_key(digit, role == "moderator", member.muted, room.locked)
            if step.action in ("mute", "unmute"):
                room.set_muted(key, step.action == "mute")
            elif step.action in ("lock", "unlock"):
                room.locked = step.action == "lock"
                runner.log(f"conference {info.number}: {step.action}ed by the moderator {caller}")
    finally:
        rooms.left(room, key)
    await say(runner, "conf-kicked", interrupt=False)
    return None
