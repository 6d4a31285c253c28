"""Caller identity (seeds 001 `h`/`cN` and 002 caller-ID management). Pure: no I/O, no KSR.

What the callee is shown is decided here; the handler only writes it into From,
Privacy, P-Asserted-Identity and P-Preferred-Identity. A phone's own identity headers are
never trusted: the handler removes them before anything is added.
"""
from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass

from kemi.directory import Subscriber, Trunk

ANONYMOUS_DISPLAY = "Anonymous"
ANONYMOUS_URI = "sip:anonymous@anonymous.invalid"
DISPLAY_MAX = 128   # characters of a display name written into a header


def quoted_display(display: str | None) -> str:
    """A display name as an RFC 3261 quoted-string, safe whatever it holds: provisioned text
    is checked on the way in, but a phone's or trunk's own display name is not. Control,
    format and separator characters become spaces, the length is capped, and \\ and " are
    escaped. Empty or None gives "" (no display name)."""
    if not display:
        return ""
    clean = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") else c
                    for c in display[:DISPLAY_MAX]).strip()
    if not clean:
        return ""
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


class IdentityError(ValueError):
    def __init__(self, status: int, reason: str):
        super().__init__(f"{status} {reason}")
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Identity:
    number: str                  # the caller-ID number (asserted, even when anonymous)
    display: str | None
    anonymous: bool = False      # From: Anonymous, Privacy: id
    assert_identity: bool = False   # add P-Asserted-Identity (trusted trunks only)
    preferred_identity: bool = False  # add P-Preferred-Identity (trusted trunks only)

    @property
    def from_display(self) -> str | None:
        return ANONYMOUS_DISPLAY if self.anonymous else self.display

    def from_uri(self, domain: str) -> str:
        return ANONYMOUS_URI if self.anonymous else f"sip:{self.number}@{domain}"


def chosen_caller_id(sub: Subscriber, index: int | None) -> str | None:
    """The cN caller ID, or None without a cN suffix."""
    if index is None:
        return None
    if index > len(sub.caller_ids):
        have = f"c1..c{len(sub.caller_ids)}" if sub.caller_ids else "none"
        raise IdentityError(403, f"Forbidden - no caller ID c{index} for {sub.number} (has {have})")
    return sub.caller_ids[index - 1]


def internal_identity(sub: Subscriber, anonymous: bool, caller_id_index: int | None,
                      display: str | None) -> Identity:
    """A call between phones of this proxy: no P-Asserted-Identity ever reaches a phone."""
    number = chosen_caller_id(sub, caller_id_index) or sub.number
    return Identity(number, display or sub.display_name, anonymous=anonymous)


def trunk_identity(sub: Subscriber, trunk: Trunk, trunk_dids: frozenset[str], anonymous: bool,
                   caller_id_index: int | None, rng: random.Random | None = None) -> Identity:
    """Seed 002: cN if dialled; else one of the subscriber's caller IDs that this trunk
    carries (at random when several); else the subscriber's default caller ID; else the
    trunk's default; else the SIP number itself."""
    number = chosen_caller_id(sub, caller_id_index)
    if number is None:
        carried = [n for n in sub.caller_ids if n in trunk_dids]
        if carried:
            number = (rng or random).choice(carried)
        else:
            number = sub.default_caller_id or trunk.default_caller_id or sub.number
    hidden = anonymous or sub.hide_caller_id
    wants_pai = sub.send_pai or trunk.send_pai
    return Identity(number, sub.public_name or sub.display_name, anonymous=hidden,
                    assert_identity=trunk.trusted and (wants_pai or hidden),
                    preferred_identity=trunk.trusted and wants_pai)
