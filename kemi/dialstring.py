"""The dial-string grammar: what a caller typed, as a value. Pure: no I/O, no KSR.

    dial      = [ spy ] number *suffix        ; each suffix at most once, any order
    spy       = ( "4" / "5" / "6" ) "#"       ; listen / whisper / barge (seed 001)
    number    = 1*32 DIGIT
    suffix    = "T"                           ; ring this SIP number only, no hunt (seed 000)
              / "h"                           ; anonymous call (seed 001)
              / "c" ( %x31-39 *1DIGIT )       ; present the caller's N-th caller ID, 1..99

A spy code takes a bare number (no suffixes). Anything else is rejected with a `DialError`
that carries the SIP status to answer and a reason phrase saying what was wrong.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

SPY_MODES = {"4": "listen", "5": "whisper", "6": "barge"}
MAX_DIGITS = 32

_SUFFIX = re.compile(r"T|h|c([1-9][0-9]?)")


class DialError(ValueError):
    """A dial string that cannot be routed; `status`/`reason` form the SIP reply."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Dial:
    number: str
    ring_only: bool = False          # T
    anonymous: bool = False          # h
    caller_id_index: int | None = None   # cN
    spy: str | None = None           # listen / whisper / barge

    def __str__(self) -> str:
        """The canonical dial string (parse(str(d)) == d)."""
        prefix = {v: k for k, v in SPY_MODES.items()}.get(self.spy, None)
        out = (prefix + "#" if prefix else "") + self.number
        if self.caller_id_index is not None:
            out += f"c{self.caller_id_index}"
        if self.anonymous:
            out += "h"
        if self.ring_only:
            out += "T"
        return out


def parse(raw: str) -> Dial:
    """Parse the Request-URI user part. Raises DialError for anything that is not a dial string."""
    text = unquote(raw or "")
    if not text:
        raise DialError(484, "Address Incomplete - no number dialled")
    spy = None
    if len(text) >= 2 and text[1] == "#":
        spy = SPY_MODES.get(text[0])
        if spy is None:
            raise DialError(484, f"Address Incomplete - unknown service code {text[:2]}")
        text = text[2:]
    digits_end = 0
    while digits_end < len(text) and text[digits_end].isascii() and text[digits_end].isdigit():
        digits_end += 1
    number, rest = text[:digits_end], text[digits_end:]
    if not number:
        raise DialError(484, "Address Incomplete - the number must start with a digit")
    if len(number) > MAX_DIGITS:
        raise DialError(484, f"Address Incomplete - number longer than {MAX_DIGITS} digits")

    ring_only = anonymous = False
    caller_id_index = None
    pos = 0
    while pos < len(rest):
        match = _SUFFIX.match(rest, pos)
        if match is None:
            raise DialError(484, f"Address Incomplete - unknown suffix {rest[pos:]!r} (allowed: T, h, c1..c99)")
        token = match.group(0)
        if token == "T":
            if ring_only:
                raise DialError(484, "Address Incomplete - suffix T given twice")
            ring_only = True
        elif token == "h":
            if anonymous:
                raise DialError(484, "Address Incomplete - suffix h given twice")
            anonymous = True
        else:
            if caller_id_index is not None:
                raise DialError(484, "Address Incomplete - more than one cN suffix")
            caller_id_index = int(match.group(1))
        pos = match.end()

    if spy and (ring_only or anonymous or caller_id_index is not None):
        raise DialError(484, "Address Incomplete - a spy code takes a bare SIP number")
    return Dial(number, ring_only, anonymous, caller_id_index, spy)
