"""BLF rules: who may subscribe to what, whose lamps a call lights."""
import pytest

from kemi import blf
from kemi.hunt import Step
from kemi.routing import QueuePlan, RingPlan

CHECKS = [
    # event, target, exists, count, status (None: accepted)
    ("dialog", "201", True, 1, None),
    ("Dialog", "201", True, 60, None),
    ("dialog;id=7", "201", True, 1, None),
    ("presence", "201", True, 1, 489),
    ("message-summary", "201", True, 1, 489),
    (None, "201", True, 1, 489),
    ("", "201", True, 1, 489),
    ("dialog", "999", False, 1, 404),
    ("dialog", "", False, 1, 404),
    ("dialog", None, False, 1, 404),
    ("dialog", "201", True, 61, 503),
    ("presence", "999", False, 500, 503),   # the rate limit comes first: no probing past it
]


@pytest.mark.parametrize("event,target,exists,count,status", CHECKS)
def test_check_subscribe(event, target, exists, count, status):
    refusal = blf.check_subscribe(event, target, exists, count)
    assert (refusal.status if refusal else None) == status
    if refusal:
        assert refusal.reason and refusal.result


def steps(*numbers):
    return tuple(Step(n, 15) for n in numbers)


TARGETS = [
    (RingPlan("201", "direct", steps("201")), "100", (["100"], ["201"])),
    (RingPlan("7000", "ringall", steps("201", "202"), parallel=True), "100", (["100"], ["201", "202"])),
    (RingPlan("7000", "ringall", steps("201", "202"), parallel=True), "201", (["201"], ["202"])),
    (RingPlan("800", "service", steps("201", "202", "203")), "100", (["100"], ["201"])),
    (RingPlan("201", "direct", steps("201")), None, ([], ["201"])),     # from a trunk
    (QueuePlan("6000", "6000"), "100", (["100"], [])),
]


@pytest.mark.parametrize("plan,caller,expected", TARGETS)
def test_publish_targets(plan, caller, expected):
    assert blf.publish_targets(plan, caller) == expected


def test_presentity_uri_names_this_proxy():
    assert blf.presentity_uri("201", "127.0.0.1", 5070) == "sip:201@127.0.0.1:5070"


@pytest.mark.parametrize("expires,until", [("600", 1600), ("0", 1000), ("", 4600), (None, 4600),
                                           ("99999", 4600), ("abc", 1000), (" 60 ", 1060)])
def test_watch_until(expires, until):
    assert blf.watch_until(1000.4, expires) == until
