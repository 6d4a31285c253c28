"""Legs connected on the media clock (issue 14): a two-leg bridge for the callback
extension, shaped so a mixer can take over later.

Each bridged leg records what it receives (decoded G.711, `Leg.recording`) and plays a
`Feed` instead of a file: on every media clock tick the feed asks the bridge for this
tick's frame. The bridge takes one 20 ms frame from every leg's receive buffer once per
tick (the first feed to ask triggers it), then builds each leg's frame from the legs it
`hears` (a who-hears-whom matrix: two legs hear each other; a conference, whisper or
barge is another matrix) with `mix` (default: sum and clip), encoded in that leg's codec.
So PCMU on one side and PCMA on the other just work (decode/encode, no passthrough).

Receive buffers are bounded: a leg whose buffer holds more than MAX_BUFFERED frames (its
sender ran fast or the clock stalled) drops the oldest, so delay never grows; an empty
buffer gives silence.
"""
from __future__ import annotations

import asyncio
from typing import Callable

import numpy as np

from media import g711
from media.leg import FRAME, Leg

MAX_BUFFERED = 6       # frames (120 ms) kept per leg before the oldest are dropped
KEEP_AFTER_DROP = 2


def sum_mix(frames: list[np.ndarray]) -> np.ndarray:
    if not frames:
        return np.zeros(FRAME, dtype=np.int16)
    if len(frames) == 1:
        return frames[0]
    return np.clip(np.sum(np.stack(frames).astype(np.int32), axis=0), -32768, 32767).astype(np.int16)


class Feed:
    """A leg's player while bridged (the Player interface: next_frame(), done)."""

    def __init__(self, bridge: "Bridge", leg: Leg):
        self.bridge, self.leg = bridge, leg
        self.index = 0
        self.done = asyncio.get_running_loop().create_future()

    def next_frame(self) -> bytes:
        frame = self.bridge.frame_for(self.leg, self.index)
        self.index += 1
        return frame


class Bridge:
    def __init__(self, legs: list[Leg], hears: dict[Leg, set[Leg]] | None = None,
                 mix: Callable[[list[np.ndarray]], np.ndarray] = sum_mix):
        self.legs = list(legs)
        self.hears = hears if hears is not None else {a: {b for b in self.legs if b is not a} for a in self.legs}
        self.mix = mix
        self.buffers: dict[Leg, np.ndarray] = {leg: np.zeros(0, dtype=np.int16) for leg in self.legs}
        self.frames = 0                      # frames taken so far
        self.current: dict[Leg, np.ndarray] = {}
        self.feeds: dict[Leg, Feed] = {}
        self.dropped = 0
        self.running = False

    def start(self) -> None:
        self.running = True
        for leg in self.legs:
            leg.stop_playing()
            leg.recording = []
            feed = Feed(self, leg)
            feed.index = self.frames
            self.feeds[leg] = feed
            leg.player = feed

    def stop(self) -> None:
        """Unbridge: each leg sends silence again (or whatever it plays next)."""
        self.running = False
        for leg, feed in self.feeds.items():
            if leg.player is feed:
                leg.stop_playing()
            leg.recording = None
        self.feeds.clear()

    def _take(self, leg: Leg) -> np.ndarray:
        chunks = leg.recording or []
        if chunks:
            self.buffers[leg] = np.concatenate([self.buffers[leg], *chunks])
            chunks.clear()
        buf = self.buffers[leg]
        if len(buf) > MAX_BUFFERED * FRAME:
            self.dropped += len(buf) - KEEP_AFTER_DROP * FRAME
            buf = buf[-KEEP_AFTER_DROP * FRAME:]
        if len(buf) < FRAME:
            self.buffers[leg] = buf
            return np.zeros(FRAME, dtype=np.int16)
        self.buffers[leg] = buf[FRAME:]
        return buf[:FRAME]

    def frame_for(self, leg: Leg, index: int) -> bytes:
        if index >= self.frames:             # the first leg to send this tick takes everyone's frame
            self.current = {x: self._take(x) for x in self.legs}
            self.frames = index + 1
        heard = [self.current[x] for x in self.hears.get(leg, ()) if x in self.current]
        return g711.encode(self.mix(heard), leg.payload_type)
