"""Small assertion helpers shared by the end-to-end tests."""
from __future__ import annotations

import re
import time


def explain(*parts) -> str:
    """What to print when a call did not go as expected: SIPp traces, log locations."""
    return "\n".join(p.explain() if hasattr(p, "explain") else str(p) for p in parts)


def header(message: str, name: str) -> str | None:
    match = re.search(rf"^{re.escape(name)}:\s*(.*)$", message, re.M | re.I)
    return match.group(1).strip() if match else None


def from_user(message: str) -> str:
    return re.search(r"<sip:([^@>]+)@", header(message, "From")).group(1)


def wait_until(check, timeout: float = 10) -> None:
    """Ask until `check()` is true (never a blind sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
