"""Auto-pause rules (pure parts of kemi.agent_state)."""
import pytest

from kemi.agent_state import missed_offer_counts, reached


@pytest.mark.parametrize("code,counts", [
    (408, True), (480, True), (487, True), (603, True), (500, True), (503, True),
    (486, False), (600, False),       # busy is not ignoring the call
    (404, False), (200, False),
])
def test_missed_offer_counts(code, counts):
    assert missed_offer_counts(code) is counts


@pytest.mark.parametrize("misses,limit,expected", [
    (1, None, False), (99, None, False), (1, 2, False), (2, 2, True), (3, 2, True), (1, 1, True)])
def test_reached(misses, limit, expected):
    assert reached(misses, limit) is expected
