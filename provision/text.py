"""Rules for provisioned text that can reach a SIP header, and for passwords. Pure.

A display name, public name, DID display tag or ring-all display format ends up in a
`From` display name. Control characters (CR/LF above all: a header of one's own), format and
separator characters (bidi overrides, zero-width spaces) and invalid UTF-8 are refused; so is
anything over the field's length. The same rules are database CHECK constraints
(sql/006_text_safety.sql), and kemi.identity.quoted_display escapes what it writes.
"""
from __future__ import annotations

import unicodedata

# field (as kemictl names it) -> at most this many characters
LIMITS = {"name": 64, "public-name": 64, "display-tag": 32, "display-format": 64}

# Unicode categories never allowed: control, format (bidi, zero width), surrogate, private
# use, unassigned, line and paragraph separators.
_REFUSED = {"Cc": "a control character", "Cf": "an invisible format character",
            "Cs": "invalid UTF-8", "Co": "a private-use character", "Cn": "an unassigned character",
            "Zl": "a line separator", "Zp": "a paragraph separator"}

PASSWORD_MIN = 10
_WEAK = {"password", "passwort", "123456789", "1234567890", "qwertyuiop", "letmein123", "secret1234"}


def text_problem(field: str, value: str) -> str | None:
    """Why `value` may not be stored in `field`, or None when it may."""
    limit = LIMITS[field]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"field '{field}': must be valid UTF-8"
    for position, char in enumerate(value, 1):
        why = _REFUSED.get(unicodedata.category(char))
        if why:
            return (f"field '{field}': character {position} (U+{ord(char):04X}) is {why}; "
                    "only printable text may reach a SIP header")
    if len(value) > limit:
        return f"field '{field}': at most {limit} characters (got {len(value)})"
    return None


def password_problem(password: str, number: str) -> str | None:
    if len(password) < PASSWORD_MIN:
        return f"field 'password': must be at least {PASSWORD_MIN} characters"
    if number and number in password:
        return "field 'password': must not contain the SIP number"
    if len(set(password)) < 4 or password.lower() in _WEAK:
        return "field 'password': too easy to guess (leave it out to get a generated one)"
    if any(unicodedata.category(c).startswith("C") for c in password):
        return "field 'password': must not contain control characters"
    return None
