"""The voice menu's decisions (contract app `menu`). Pure: the service collects input and
asks `judge` what it means.

Input ends at `max_digits`, at '#' (not part of the input), or when no digit came for
`timeout` seconds. Then:
  nothing entered            -> replay the prompt, or outcome `timeout` after `retries` replays
  wrong length / not valid   -> play the invalid prompt and the prompt again, or outcome
                                `invalid` after `retries` replays
  good input                 -> outcome `digits` with the input
"""
from __future__ import annotations

from dataclasses import dataclass

from media.apps import Menu


@dataclass(frozen=True)
class Outcome:
    outcome: str                  # digits | timeout | invalid
    digits: str = ""


@dataclass(frozen=True)
class Retry:
    play_invalid: bool            # play the invalid prompt before the prompt again


def judge(menu: Menu, entered: str, attempt: int) -> Outcome | Retry:
    """`attempt` counts from 0: the first prompt is attempt 0, its replays 1..retries."""
    last = attempt >= menu.retries
    if not entered:
        return Outcome("timeout") if last else Retry(False)
    if menu.min_digits <= len(entered) <= menu.max_digits and (not menu.valid or entered in menu.valid):
        return Outcome("digits", entered)
    return Outcome("invalid") if last else Retry(menu.invalid is not None)


def input_complete(menu: Menu, entered: str, digit: str) -> tuple[str, bool]:
    """Add one digit: returns (input, complete)."""
    if digit == "#" and entered:
        return entered, True
    entered += digit
    return entered, len(entered) >= menu.max_digits
