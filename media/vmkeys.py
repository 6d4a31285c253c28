"""Voicemail listening: the key map and what a key does to the message list. Pure.

Key map (while a message plays or after it):
  1 replay   2 save (keep, next)   3 delete (next)   6 next (skip)   4 previous
  7 record a new greeting          8 change the PIN  9 (or *) goodbye
  5 record your name (said in the default greeting)
New messages come first (oldest first), then saved ones. A new message that was played to
its end, saved or skipped is marked saved (the message lamp goes off once no new is left).
"""
from __future__ import annotations

from dataclasses import dataclass

KEYS = {"1": "replay", "2": "save", "3": "delete", "6": "next", "4": "previous",
        "7": "greeting", "8": "pin", "5": "name", "9": "goodbye", "*": "goodbye"}


@dataclass(frozen=True)
class Listing:
    ids: tuple[int, ...]          # message ids in playing order
    index: int = 0

    @property
    def current(self) -> int | None:
        return self.ids[self.index] if 0 <= self.index < len(self.ids) else None


@dataclass(frozen=True)
class Step:
    listing: Listing
    action: str                   # play | save | delete | greeting | pin | name | goodbye | end | ignore
    message: int | None = None    # the message the action concerns


def on_key(listing: Listing, key: str) -> Step:
    what = KEYS.get(key)
    cur = listing.current
    if what is None:
        return Step(listing, "ignore")
    if what in ("greeting", "pin", "goodbye", "name"):
        return Step(listing, what)
    if what == "previous":
        return Step(Listing(listing.ids, max(0, listing.index - 1)), "play")
    if cur is None:
        return Step(listing, "end") if what != "replay" else Step(Listing(listing.ids, 0), "play")
    if what == "replay":
        return Step(listing, "play", cur)
    nxt = Listing(listing.ids, listing.index + 1)
    if what == "delete":
        return Step(nxt, "delete", cur)
    return Step(nxt, "save", cur)      # save and next both keep the message as saved
