"""Office hours: weekly ranges, dated exceptions, a time zone. Pure; the clock is an argument.

Spec (the `time` node's settings, the time zone is the flow's):

    hours:                        # day or day range -> list of "HH:MM-HH:MM" (end may be 24:00)
      mon-fri: ["08:00-12:00", "13:00-17:00"]
      sat: ["10:00-14:00"]
    exceptions:                   # dated: a holiday (closed all day) or special hours that day
      - {date: "2026-12-24", hours: ["09:00-12:00"]}
      - {date: "2026-12-25"}

Outcome: `open` inside a range of the day; on a date listed in exceptions the exception's
hours replace the week's and outside them the outcome is `holiday`; otherwise `closed`.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


class TimeSpecError(ValueError):
    def __init__(self, field: str, rule: str):
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


@dataclass(frozen=True)
class Range:
    start: int          # minutes since midnight
    end: int            # exclusive, at most 1440

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


@dataclass(frozen=True)
class Schedule:
    week: tuple[tuple[Range, ...], ...]                  # index 0 = Monday
    exceptions: tuple[tuple[dt.date, tuple[Range, ...]], ...] = ()


@dataclass(frozen=True)
class TimeDecision:
    outcome: str        # open / closed / holiday
    why: str


def zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise TimeSpecError("timezone", "must be an IANA time zone name such as Europe/Riga")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeSpecError("timezone", f"{name!r} is not a known IANA time zone") from None


def parse_ranges(field: str, value: object) -> tuple[Range, ...]:
    if not isinstance(value, (list, tuple)):
        raise TimeSpecError(field, 'must be a list of "HH:MM-HH:MM" ranges')
    out = []
    for i, item in enumerate(value):
        match = _RANGE.match(str(item).strip())
        if not match:
            raise TimeSpecError(f"{field}[{i}]", f'{item!r} must be "HH:MM-HH:MM" (24 h clock)')
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        rng = Range(h1 * 60 + m1, h2 * 60 + m2)
        if rng.end > 1440 or rng.end <= rng.start:
            raise TimeSpecError(f"{field}[{i}]", f"{item!r} must end after it starts, at 24:00 at the latest")
        out.append(rng)
    ordered = tuple(sorted(out, key=lambda r: r.start))
    for a, b in zip(ordered, ordered[1:]):
        if b.start < a.end:
            raise TimeSpecError(field, f"ranges {a} and {b} overlap")
    return ordered


def _days(key: str) -> list[int]:
    first, _, last = key.strip().lower().partition("-")
    if first not in DAYS or (last and last not in DAYS):
        raise TimeSpecError(f"hours.{key}", "must be a day (mon..sun) or a range of days such as mon-fri")
    a, b = DAYS.index(first), DAYS.index(last or first)
    if b < a:
        raise TimeSpecError(f"hours.{key}", "a day range must go forward (mon-fri, not fri-mon)")
    return list(range(a, b + 1))


def parse(settings: dict[str, object]) -> Schedule:
    hours = settings.get("hours")
    if not isinstance(hours, dict):
        raise TimeSpecError("hours", "must map days (mon..sun, mon-fri) to lists of ranges")
    week: list[tuple[Range, ...]] = [() for _ in DAYS]
    seen: set[int] = set()
    for key, value in hours.items():
        for day_index in _days(str(key)):
            if day_index in seen:
                raise TimeSpecError(f"hours.{key}", f"{DAYS[day_index]} is given twice")
            seen.add(day_index)
            week[day_index] = parse_ranges(f"hours.{key}", value)
    exceptions: list[tuple[dt.date, tuple[Range, ...]]] = []
    raw = settings.get("exceptions", [])
    if not isinstance(raw, (list, tuple)):
        raise TimeSpecError("exceptions", "must be a list of {date, hours}")
    dates: set[dt.date] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or "date" not in item:
            raise TimeSpecError(f"exceptions[{i}]", "must have a date (YYYY-MM-DD) and optional hours")
        try:
            day = dt.date.fromisoformat(str(item["date"]))
        except ValueError:
            raise TimeSpecError(f"exceptions[{i}].date", f"{item['date']!r} must be YYYY-MM-DD") from None
        if day in dates:
            raise TimeSpecError(f"exceptions[{i}].date", f"{day} is given twice")
        dates.add(day)
        exceptions.append((day, parse_ranges(f"exceptions[{i}].hours", item.get("hours", []))))
    return Schedule(tuple(week), tuple(sorted(exceptions)))


def decide(schedule: Schedule, tz: ZoneInfo, now: dt.datetime) -> TimeDecision:
    """`now` must be timezone-aware (any zone); it is looked at in the flow's zone."""
    local = now.astimezone(tz)
    minute = local.hour * 60 + local.minute
    stamp = f"{local:%a %Y-%m-%d %H:%M} {tz.key}"
    for day, ranges in schedule.exceptions:
        if day == local.date():
            for r in ranges:
                if r.start <= minute < r.end:
                    return TimeDecision("open", f"{stamp}: special hours {r} on {day}")
            return TimeDecision("holiday", f"{stamp}: {day} is an exception"
                                + (f", open only {', '.join(map(str, ranges))}" if ranges else ", closed all day"))
    ranges = schedule.week[local.weekday()]
    for r in ranges:
        if r.start <= minute < r.end:
            return TimeDecision("open", f"{stamp}: inside {r}")
    return TimeDecision("closed", f"{stamp}: outside " + (", ".join(map(str, ranges)) or "any hours that day"))
