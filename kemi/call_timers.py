"""Timers of long calls (issue 12): pure arithmetic for kemi/long_calls.py. No KSR."""
from __future__ import annotations

DEFAULT_PROGRESS = 60          # seconds between repeated 182s
# Each repeat suspends the INVITE again, which costs tm a branch (at most 12 with offers and
# all): after this many repeats a caller waits on without more 182s.
MAX_PROGRESS_REPEATS = 6
DEFAULT_LIFETIME_MS = 180000   # tm's max_inv_lifetime
LIFETIME_MARGIN_S = 30
MAX_LIFETIME_S = 60 * 600 + LIFETIME_MARGIN_S   # 60 steps of at most 600 s


def invite_lifetime_ms(ring_timeouts) -> int:
    total = sum(max(0, int(t)) for t in ring_timeouts) + LIFETIME_MARGIN_S
    return max(DEFAULT_LIFETIME_MS, min(total, MAX_LIFETIME_S) * 1000)


def progress_due(last_sent: float, now: float, interval: int | None, repeats: int = 0) -> bool:
    return repeats < MAX_PROGRESS_REPEATS and now - last_sent >= (interval or DEFAULT_PROGRESS)
