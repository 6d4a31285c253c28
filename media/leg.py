"""RTP legs and the media clock: the part of the service that runs in real time.

One `MediaClock` per process ticks every 20 ms on an absolute schedule and sends one G.711
frame on every leg (the frame of whatever the leg plays, or silence); the lateness of each
tick is kept for the statistics. A `Leg` is one UDP socket: it decodes what it receives
(recording, silence detection), takes RFC 4733 events (and SIP INFO digits, fed by the
service) into a digit queue, and measures the RFC 3550 interarrival jitter.
"""
from __future__ import annotations

import asyncio
import collections
import os
import random

import numpy as np

from media import g711, rtp

FRAME = 160            # samples per 20 ms at 8 kHz
PTIME = 0.02
SILENCE = np.zeros(FRAME, dtype=np.int16)
MAX_PENDING_DIGITS = 64
MAX_CATCH_UP = 5       # frames sent at once after a late tick; beyond that the clock resyncs


def percentile(values, q: float) -> float:
    return float(np.percentile(np.fromiter(values, dtype=float), q)) if values else 0.0


class MediaClock:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.legs: set[Leg] = set()
        self.lateness = collections.deque(maxlen=50_000)   # seconds, most recent ticks
        self.ticks = 0
        self._start = 0.0
        self._handle = None

    def start(self) -> None:
        self._start = self.loop.time()
        self._schedule()

    def stop(self) -> None:
        if self._handle:
            self._handle.cancel()

    def _schedule(self) -> None:
        self._handle = self.loop.call_at(self._start + (self.ticks + 1) * PTIME, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        due = self._start + (self.ticks + 1) * PTIME
        late = now - due
        self.lateness.append(late)
        frames = 1 + int(late / PTIME)
        if frames > MAX_CATCH_UP:   # far behind (the machine stalled): resync, do not burst
            self._start = now - (self.ticks + 1) * PTIME
            frames = 1
        self.ticks += frames
        for leg in list(self.legs):
            for _ in range(frames):
                leg.send_frame()
        self._schedule()


class Player:
    """Plays int16 PCM (looped `loops` times) frame by frame; `done` resolves at the end.
    The audio is encoded once when playing starts: a tick only slices bytes."""

    def __init__(self, pcm: np.ndarray, loops: int, done: asyncio.Future, payload_type: int):
        pad = (-len(pcm)) % FRAME
        pcm = np.concatenate([pcm, np.zeros(pad, dtype=np.int16)]) if pad else pcm
        self.encoded = g711.encode(pcm, payload_type)
        self.loops, self.pos, self.done = loops, 0, done

    def next_frame(self) -> bytes | None:
        if self.pos >= len(self.encoded):
            self.loops -= 1
            self.pos = 0
            if self.loops <= 0 or len(self.encoded) == 0:
                return None
        frame = self.encoded[self.pos:self.pos + FRAME]
        self.pos += FRAME
        return frame


_SILENCE = {pt: g711.encode(SILENCE, pt) for pt in (g711.PCMU, g711.PCMA)}


class Leg(asyncio.DatagramProtocol):
    def __init__(self, clock: MediaClock, payload_type: int, event_type: int | None,
                 remote: tuple[str, int], log=lambda m: None):
        self.clock = clock
        self.payload_type = payload_type
        self.event_type = event_type
        self.remote = remote
        self.log = log
        self.transport: asyncio.DatagramTransport | None = None
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.timestamp = random.getrandbits(32)
        self.player: Player | None = None
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.recording: list[np.ndarray] | None = None
        self.silent_frames = 0          # consecutive received frames below the energy threshold
        self.received = 0
        self.sent = 0
        self.jitter = 0.0               # RFC 3550, in timestamp units (1/8000 s)
        self.jitter_max = 0.0
        self._last_transit: float | None = None
        self._last_event_ts: int | None = None
        self._latched = False

    # ------------------------------------------------------------ socket
    def connection_made(self, transport) -> None:
        self.transport = transport

    @property
    def port(self) -> int:
        return self.transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        self.clock.legs.discard(self)
        self.stop_playing()
        if self.transport:
            self.transport.close()

    def start(self) -> None:
        self.clock.legs.add(self)

    # ------------------------------------------------------------ send
    def send_frame(self) -> None:
        payload = None
        if self.player is not None:
            payload = self.player.next_frame()
            if payload is None:
                done, self.player = self.player.done, None
                if not done.done():
                    done.set_result(True)
        self._send(self.payload_type, payload if payload is not None else _SILENCE[self.payload_type])
        self.timestamp = (self.timestamp + FRAME) & 0xFFFFFFFF

    def _send(self, pt: int, payload: bytes, marker: bool = False, timestamp: int | None = None) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.seq = (self.seq + 1) & 0xFFFF
        self.transport.sendto(rtp.pack(pt, self.seq, self.timestamp if timestamp is None else timestamp,
                                       self.ssrc, payload, marker), self.remote)
        self.sent += 1

    def play(self, pcm: np.ndarray, loops: int = 1) -> asyncio.Future:
        """Start playing (replacing what plays now); the future resolves True at the end,
        False if stopped."""
        self.stop_playing()
        done = asyncio.get_running_loop().create_future()
        self.player = Player(pcm, loops, done, self.payload_type)
        return done

    def stop_playing(self) -> None:
        if self.player is not None:
            done, self.player = self.player.done, None
            if not done.done():
                done.set_result(False)

    # ------------------------------------------------------------ receive
    def datagram_received(self, data: bytes, addr) -> None:
        try:
            pkt = rtp.unpack(data)
        except rtp.RtpError:
            return
        if not self._latched:   # symmetric RTP: answer where the media really comes from
            self.remote, self._latched = addr, True
        self.received += 1
        arrival = self.clock.loop.time() * 8000
        transit = arrival - pkt.timestamp
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            if d < 8000 * 10:   # ignore timestamp jumps (a new talk spurt source)
                self.jitter += (d - self.jitter) / 16
                self.jitter_max = max(self.jitter_max, self.jitter)
        self._last_transit = transit
        if self.event_type is not None and pkt.payload_type == self.event_type:
            try:
                event = rtp.parse_event(pkt.payload)
            except rtp.RtpError:
                return
            if pkt.timestamp != self._last_event_ts:   # one digit per event, retransmits ignored
                self._last_event_ts = pkt.timestamp
                self.digit(event.digit)
            return
        if pkt.payload_type != self.payload_type or self.recording is None:
            return   # decoded only while recording: that is when energy and audio matter
        samples = g711.decode(pkt.payload, pkt.payload_type)
        energy = float(np.sqrt(np.mean(samples.astype(np.float32) ** 2))) if len(samples) else 0.0
        self.silent_frames = self.silent_frames + 1 if energy < 150 else 0
        self.recording.append(samples)

    def digit(self, digit: str) -> None:
        if self.digits.qsize() < MAX_PENDING_DIGITS:   # a flood of events cannot grow memory
            self.digits.put_nowait(digit)

    def send_digit(self, digit: str) -> None:
        """Send one RFC 4733 event (three end packets), as a phone or an outgoing leg would."""
        if self.event_type is None:
            return
        ts = self.timestamp
        for i, end in enumerate((False, False, True, True, True)):
            self._send(self.event_type, rtp.pack_event(digit, end, FRAME * (i + 1)), marker=i == 0, timestamp=ts)

    def jitter_ms(self) -> float:
        return self.jitter / 8.0


async def open_leg(clock: MediaClock, address: str, payload_type: int, event_type: int | None,
                   remote: tuple[str, int], log=lambda m: None) -> Leg:
    loop = asyncio.get_running_loop()
    _transport, leg = await loop.create_datagram_endpoint(
        lambda: Leg(clock, payload_type, event_type, remote, log), local_addr=(address, 0))
    return leg


def realtime_priority(log) -> bool:
    """SCHED_FIFO when permitted (the send tick's lateness depends on it); else a log line."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        log("media clock: real-time priority SCHED_FIFO 10")
        return True
    except (PermissionError, OSError, AttributeError) as err:
        log(f"media clock: real-time priority not permitted ({err}); running SCHED_OTHER, "
            "send timing may suffer under load")
        return False
