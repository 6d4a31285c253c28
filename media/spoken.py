"""What the mailbox says before a message: "Message received <day> at <time> from <number>",
as a list of built-in prompt names (media/builtin.py speaks them with espeak-ng). Pure.

  day:   today | yesterday | the weekday (within a week) | the month and day ("December 15")
  time:  12-hour clock, "two oh five P M", "eleven A M"
The time is the service's local time (TZ of the media service process).
"""
from __future__ import annotations

from datetime import datetime

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december")
ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
TENS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty"}

PROMPTS: dict[str, str] = {
    "vm-received": "Message received",
    "day-today": "today",
    "day-yesterday": "yesterday",
    **{f"day-{d}": d.capitalize() for d in WEEKDAYS},
    **{f"month-{i + 1}": m.capitalize() for i, m in enumerate(MONTHS)},
    **{f"num-{n}": w for n, w in enumerate(ONES)},
    **{f"num-{n}": w for n, w in TENS.items()},
    "num-oh": "oh",
    "word-at": "at",
    "word-from": "from",
    "time-am": "A M",
    "time-pm": "P M",
}


def number_words(n: int) -> list[str]:
    """0..59 as prompt names ("num-20", "num-5" for 25)."""
    if not 0 <= n < 60:
        raise ValueError(f"{n} is out of 0..59")
    if n < 20:
        return [f"num-{n}"]
    tens, ones = divmod(n, 10)
    return [f"num-{tens * 10}"] + ([f"num-{ones}"] if ones else [])


def day_words(when: datetime, now: datetime) -> list[str]:
    days = (now.date() - when.date()).days
    if days == 0:
        return ["day-today"]
    if days == 1:
        return ["day-yesterday"]
    if 1 < days < 7:
        return [f"day-{WEEKDAYS[when.weekday()]}"]
    return [f"month-{when.month}", *number_words(when.day)]


def time_words(when: datetime) -> list[str]:
    hour = when.hour % 12 or 12
    minute = when.minute
    words = number_words(hour)
    if minute:
        words += (["num-oh"] if minute < 10 else []) + number_words(minute)
    return words + ["time-am" if when.hour < 12 else "time-pm"]


def received(when: datetime, now: datetime, caller: str) -> list[str]:
    """The whole announcement; `when` and `now` in the same time zone."""
    digits = [f"digit-{d}" for d in caller if d.isdigit()]
    return (["vm-received", *day_words(when, now), "word-at", *time_words(when)]
            + (["word-from", *digits] if digits else []))
