"""Voicemail PINs: scrypt hashes (never the PIN itself) and the wrong-PIN lock-out rule. Pure."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

MAX_FAILURES = 3          # wrong PINs in a row before the box locks
LOCK_SECONDS = 300
PIN_RULE = re.compile(r"[0-9]{4,8}")


class PinError(ValueError):
    pass


def check_rule(pin: str) -> str:
    if not PIN_RULE.fullmatch(pin or ""):
        raise PinError("pin must be 4 to 8 digits")
    return pin


def hash_pin(pin: str) -> str:
    check_rule(pin)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify(pin: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1, dklen=32)
    return hmac.compare_digest(got.hex(), digest)


def after_failure(failures: int) -> tuple[int, bool]:
    """Failures so far (before this one) -> (new count, lock now)."""
    failures += 1
    return (0, True) if failures >= MAX_FAILURES else (failures, False)
