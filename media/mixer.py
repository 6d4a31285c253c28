"""Audio mixing on the media clock: a "who hears whom" matrix per room. Pure numpy, no I/O.

A room has N participants, each with a role. `hears[i, j]` is True when participant i hears
participant j. Every 20 ms tick the room stacks one received frame per participant (silence
where none arrived) into an (N, 160) int16 block, zeroes muted participants, and computes
each participant's frame:

    conference (everyone but self)   out_i = total - own_i        (N-1 mixing, O(N) per tick)
    any other matrix                 out   = hears @ frames        (O(N^2), N is small)

Sums are done in int32 and clipped to int16 at the end (never wrap-around). Extra sources
heard by everyone (join/leave tones, music while alone) are added before clipping.

The matrices issue 14 needs (roles in brackets):
    conference   everyone hears everyone but self
    listen       supervisor hears agent and customer; nobody hears the supervisor
    whisper      agent hears customer and supervisor; customer hears only the agent;
                 supervisor hears both
    barge        everyone hears everyone but self (a three-party conference)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME = 160
INT16_MIN, INT16_MAX = -32768, 32767

AGENT, CUSTOMER, SUPERVISOR = "agent", "customer", "supervisor"
MODES = ("conference", "listen", "whisper", "barge")


def conference_matrix(n: int) -> np.ndarray:
    """Everyone hears everyone but themselves."""
    return ~np.eye(n, dtype=bool)


def supervision_matrix(mode: str, roles: tuple[str, ...]) -> np.ndarray:
    """The matrix for a supervised call: roles are agent, customer and supervisor (any order,
    more than one supervisor allowed). `mode`: listen, whisper or barge (or conference)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    n = len(roles)
    hears = conference_matrix(n)
    if mode in ("conference", "barge"):
        return hears
    for i, listener in enumerate(roles):
        for j, speaker in enumerate(roles):
            if i == j or speaker != SUPERVISOR:
                continue
            # listen: nobody hears a supervisor; whisper: only the agent (and other supervisors) do
            hears[i, j] = mode == "whisper" and listener in (AGENT, SUPERVISOR)
    return hears


def is_conference(hears: np.ndarray) -> bool:
    n = hears.shape[0]
    return bool(np.array_equal(hears, conference_matrix(n)))


def clip16(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int32)
    return np.minimum(np.maximum(x, INT16_MIN), INT16_MAX).astype(np.int16)


def mix(frames: np.ndarray, hears: np.ndarray, muted: np.ndarray | None = None,
        extra: np.ndarray | None = None, conference: bool | None = None) -> np.ndarray:
    """frames: (N, FRAME) int16, one received frame per participant; hears: (N, N) bool;
    muted: (N,) bool (a muted participant is heard by nobody); extra: (FRAME,) int16 heard by
    everyone (tones, music); conference: whether `hears` is everyone-but-self (None: look).
    Returns (N, FRAME) int16: what each participant hears."""
    n = frames.shape[0]
    if hears.shape != (n, n):
        raise ValueError(f"hears must be {n}x{n}, got {hears.shape}")
    x = frames.astype(np.int32)
    if muted is not None and muted.any():
        x[muted] = 0
    if conference if conference is not None else is_conference(hears):
        out = x.sum(axis=0, dtype=np.int32)[None, :] - x
    else:
        out = hears.astype(np.int32) @ x
    if extra is not None:
        out = out + extra.astype(np.int32)[None, :]
    return clip16(out)


def mix_all(frames: np.ndarray, muted: np.ndarray | None = None) -> np.ndarray:
    """Everyone not muted, summed and clipped: what a recording of the room keeps."""
    x = frames.astype(np.int32)
    if muted is not None and muted.any():
        x[muted] = 0
    return clip16(x.sum(axis=0))


@dataclass
class Participant:
    key: str
    role: str = "member"
    muted: bool = False


class Matrix:
    """The participants of one room in a fixed order, their roles and mute flags, and the
    hearing matrix for the room's mode; recomputed only when someone joins, leaves or the
    mode changes (never per tick)."""

    def __init__(self, mode: str = "conference"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.mode = mode
        self.people: list[Participant] = []
        self.hears = conference_matrix(0)
        self.muted = np.zeros(0, dtype=bool)
        self.conference = True
        self.any_muted = False

    def _rebuild(self) -> None:
        roles = tuple(p.role for p in self.people)
        self.hears = (conference_matrix(len(roles)) if self.mode == "conference"
                      else supervision_matrix(self.mode, roles))
        self.muted = np.array([p.muted for p in self.people], dtype=bool)
        self.conference = is_conference(self.hears)
        self.any_muted = bool(self.muted.any())

    def add(self, key: str, role: str = "member") -> int:
        if any(p.key == key for p in self.people):
            raise ValueError(f"participant {key!r} is already in the room")
        self.people.append(Participant(key, role))
        self._rebuild()
        return len(self.people) - 1

    def remove(self, key: str) -> None:
        self.people = [p for p in self.people if p.key != key]
        self._rebuild()

    def index(self, key: str) -> int:
        for i, p in enumerate(self.people):
            if p.key == key:
                return i
        raise KeyError(key)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.mode = mode
        self._rebuild()

    def set_muted(self, key: str, muted: bool) -> None:
        self.people[self.index(key)].muted = muted
        self._rebuild()

    def mix(self, frames: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        return mix(frames, self.hears, self.muted if self.any_muted else None, extra, self.conference)
