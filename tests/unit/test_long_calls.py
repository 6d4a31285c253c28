"""Long calls: INVITE lifetime from the flow's ring time, repeated 182 timing."""
import pytest

from kemi.call_timers import DEFAULT_LIFETIME_MS, invite_lifetime_ms, progress_due


@pytest.mark.parametrize("timeouts,expected_ms", [
    ([15], DEFAULT_LIFETIME_MS),                 # short flows keep tm's default
    ([15] * 4, DEFAULT_LIFETIME_MS),
    ([60] * 5, (300 + 30) * 1000),               # a hunt longer than 180 s
    ([600] * 60, (36000 + 30) * 1000),           # the provisioning maximum
    ([600] * 100, (36000 + 30) * 1000),          # capped
    ([], DEFAULT_LIFETIME_MS),
    ([-5, 10], DEFAULT_LIFETIME_MS),
])
def test_invite_lifetime(timeouts, expected_ms):
    assert invite_lifetime_ms(timeouts) == expected_ms


@pytest.mark.parametrize("last,now,interval,repeats,due", [
    (0, 59.9, None, 0, False), (0, 60, None, 0, True), (10, 12, 2, 0, True), (10, 11.5, 2, 0, False),
    (0, 600, None, 5, True), (0, 600, None, 6, False)])     # capped: each repeat costs tm a branch
def test_progress_due(last, now, interval, repeats, due):
    assert progress_due(last, now, interval, repeats) is due
