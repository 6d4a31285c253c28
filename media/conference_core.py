"""Conference rooms: the decisions, pure (no I/O, no asyncio; time is passed in).

- `PinGuard`: wrong PINs. Three in one call end the call (goodbye). Across calls a caller
  (the From number the proxy authenticated) that got PIN_LIMIT_CALLER wrong within
  PIN_WINDOW seconds is locked out of that room for LOCK_SECONDS; a room that got
  PIN_LIMIT_ROOM wrong from anyone within the window takes no PIN from anyone for
  LOCK_SECONDS (a distributed guess). People already in the room are not affected.
- `admit`: may a caller with a correct PIN enter now (size limit, locked room)?
- `on_key`: DTMF keys inside the room.
- `status_of`: the room as kemictl shows it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

TRIES_PER_CALL = 3
PIN_WINDOW = 600.0
PIN_LIMIT_CALLER = 6
PIN_LIMIT_ROOM = 20
LOCK_SECONDS = 600.0

# Keys inside the room (README "Conference rooms")
KEY_MUTE = "6"          # anyone: mute / unmute yourself
KEY_LOCK = "5"          # moderator: lock / unlock the room (nobody new may enter)

PROMPTS = {
    "conf-enter-pin": "Please enter the conference PIN, followed by the pound key.",
    "conf-full": "This conference is full.",
    "conf-locked-out": "Too many wrong PINs. Please try again later.",
    "conf-room-locked": "This conference is locked.",
    "conf-kicked": "You have been removed from the conference.",
    "conf-wait-moderator": "Please wait for the moderator.",
}


@dataclass
class PinGuard:
    """Failed PIN attempts per (room, caller) and per room, with their times."""
    failures: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    room_failures: dict[str, list[float]] = field(default_factory=dict)
    locked_until: dict[tuple[str, str], float] = field(default_factory=dict)   # (room, caller or "*")

    def _recent(self, times: list[float], now: float) -> list[float]:
        return [t for t in times if now - t < PIN_WINDOW]

    def locked(self, room: str, caller: str, now: float) -> bool:
        return any(self.locked_until.get(k, 0.0) > now for k in ((room, caller), (room, "*")))

    def failed(self, room: str, caller: str, now: float) -> bool:
        """Count a wrong PIN; True when the caller (or the room) is now locked."""
        mine = self._recent(self.failures.get((room, caller), []), now) + [now]
        everyone = self._recent(self.room_failures.get(room, []), now) + [now]
        self.failures[(room, caller)] = mine
        self.room_failures[room] = everyone
        if len(mine) >= PIN_LIMIT_CALLER:
            self.locked_until[(room, caller)] = now + LOCK_SECONDS
            self.failures.pop((room, caller), None)
        if len(everyone) >= PIN_LIMIT_ROOM:
            self.locked_until[(room, "*")] = now + LOCK_SECONDS
            self.room_failures.pop(room, None)
        if len(self.failures) > 10000:   # bounded memory under a flood of callers
            self.failures.clear()
        if len(self.locked_until) > 10000:
            self.locked_until = {k: t for k, t in self.locked_until.items() if t > now}
        if len(self.room_failures) > 10000:
            self.room_failures.clear()
        return self.locked(room, caller, now)

    def succeeded(self, room: str, caller: str) -> None:
        self.failures.pop((room, caller), None)

    def unlock(self, room: str) -> None:
        for key in [k for k in self.locked_until if k[0] == room]:
            del self.locked_until[key]


def admit(size: int, max_size: int, locked: bool, moderator: bool) -> str:
    """'join', 'full' or 'locked'. A moderator enters a locked room, never a full one."""
    if size >= max_size:
        return "full"
    if locked and not moderator:
        return "locked"
    return "join"


def mixing(people: int, moderators: int, wait_for_moderator: bool) -> bool:
    """Does the room mix (True) or play music (False)? Music while alone, and while the room
    waits for its moderator."""
    if people < 2:
        return False
    return not (wait_for_moderator and moderators == 0)


@dataclass(frozen=True)
class KeyAction:
    action: str        # "mute", "unmute", "lock", "unlock", "ignore"


def on_key(key: str, moderator: bool, muted: bool, room_locked: bool) -> KeyAction:
    if key == KEY_MUTE:
        return KeyAction("unmute" if muted else "mute")
    if key == KEY_LOCK and moderator:
        return KeyAction("unlock" if room_locked else "lock")
    return KeyAction("ignore")


def status_of(number: str, name: str, max_size: int, locked: bool, recording: bool, mixing_now: bool,
              people: list[dict]) -> dict:
    return {"room": number, "name": name, "max_size": max_size, "locked": locked, "recording": recording,
            "mixing": mixing_now, "participants": people}
