"""media/spoken.py: "Message received <day> at <time> from <number>" as prompt names."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from media import builtin, spoken

NOW = datetime(2026, 12, 2, 18, 30)   # a Wednesday


@pytest.mark.parametrize("when,day", [
    (NOW - timedelta(minutes=5), ["day-today"]),
    (datetime(2026, 12, 2, 0, 1), ["day-today"]),
    (datetime(2026, 12, 1, 23, 59), ["day-yesterday"]),
    (datetime(2026, 11, 27, 9, 0), ["day-friday"]),
    (datetime(2026, 11, 25, 9, 0), ["month-11", "num-20", "num-5"]),     # a week ago: the date
    (datetime(2025, 12, 31, 9, 0), ["month-12", "num-30", "num-1"]),
])
def test_day(when, day):
    assert spoken.day_words(when, NOW) == day


@pytest.mark.parametrize("hour,minute,words", [
    (0, 0, ["num-12", "time-am"]), (9, 5, ["num-9", "num-oh", "num-5", "time-am"]),
    (12, 30, ["num-12", "num-30", "time-pm"]), (14, 47, ["num-2", "num-40", "num-7", "time-pm"]),
    (23, 59, ["num-11", "num-50", "num-9", "time-pm"]), (13, 10, ["num-1", "num-10", "time-pm"]),
])
def test_time(hour, minute, words):
    assert spoken.time_words(datetime(2026, 12, 2, hour, minute)) == words


def test_whole_announcement_and_every_prompt_is_built_in():
    items = spoken.received(datetime(2026, 12, 2, 14, 5), NOW, "0301234")
    assert items == ["vm-received", "day-today", "word-at", "num-2", "num-oh", "num-5", "time-pm", "word-from",
                     "digit-0", "digit-3", "digit-0", "digit-1", "digit-2", "digit-3", "digit-4"]
    assert spoken.received(datetime(2026, 12, 2, 14, 0), NOW, "anonymous")[-1] == "time-pm"
    for minute in range(60):
        for name in spoken.received(datetime(2026, 11, 3, 7, minute), NOW, "123"):
            assert name in builtin.SPEECH, name


def test_number_words_range():
    with pytest.raises(ValueError):
        spoken.number_words(60)
