"""kemi/queue_strategy.py: every strategy as a table, and `choose` (the dispatcher's pick
among agents it already knows are free) always equal to `pick` over the whole queue."""
from __future__ import annotations

import random

import pytest

from kemi import queue_strategy as qs
from kemi.directory import Queue, QueueAgent
from kemi.queue_strategy import AgentState


def queue(strategy: str, agents, max_calls: int = 1) -> Queue:
    return Queue(1, "q", "6000", strategy=strategy, max_calls=max_calls,
                 agents=tuple(QueueAgent(n, tier, logged) for n, tier, logged in agents))


AGENTS = [("a", 1, True), ("b", 1, True), ("c", 1, True), ("d", 2, True), ("e", 1, False)]
STATES = {"a": AgentState(0, 5, 30.0), "b": AgentState(0, 2, 10.0), "c": AgentState(1, 0, 5.0),
          "d": AgentState(0, 0, 0.0), "e": AgentState(0, 0, 0.0)}


@pytest.mark.parametrize("strategy,available,last,sticky,expect", [
    ("ringall", {"a", "b", "c", "d", "e"}, None, None, ["a", "b"]),       # c busy, d tier 2, e logged out
    ("linear", {"a", "b", "c", "d"}, None, None, ["a"]),
    ("linear", {"b", "d"}, None, None, ["b"]),
    ("linear", {"d"}, None, None, ["d"]),                                  # tier 2 when tier 1 has nobody
    ("fewest_calls", {"a", "b", "d"}, None, None, ["b"]),
    ("longest_idle", {"a", "b"}, None, None, ["b"]),
    ("round_robin", {"a", "b", "c", "d"}, "a", None, ["b"]),
    ("round_robin", {"a", "b", "c", "d"}, "b", None, ["a"]),               # wraps past busy c and tier-2 d
    ("round_robin", {"a", "b"}, "zz", None, ["a"]),
    ("linear", {"a", "b", "d"}, None, "d", ["d"]),                         # call history beats tiers
    ("linear", {"a", "b"}, None, "c", ["a"]),                              # sticky agent busy: ignored
    ("linear", {"c", "e"}, None, None, []),
])
def test_strategies(strategy, available, last, sticky, expect):
    assert qs.pick(queue(strategy, AGENTS), STATES, available, last, sticky) == expect


def test_choose_equals_pick_for_every_strategy():
    rng = random.Random(7)
    for _ in range(2000):
        n = rng.randint(0, 12)
        agents = [(f"{i:02d}", rng.randint(1, 3), rng.random() < 0.8) for i in range(n)]
        strategy = rng.choice([s for s in qs.STRATEGIES if s != "random"])
        q = queue(strategy, agents, max_calls=rng.randint(1, 2))
        states = {a: AgentState(rng.randint(0, 2), rng.randint(0, 5), rng.choice([0.0, 1.0, 2.0, 3.0]))
                  for a, _t, _l in agents}
        available = {a for a, _t, _l in agents if rng.random() < 0.8}
        last = rng.choice([None] + [a for a, _t, _l in agents])
        sticky = rng.choice([None] + [a for a, _t, _l in agents])
        free = qs.free_agents(q, states, available)
        ix = qs.QueueIndex.of(q)
        shuffled = list(free)
        rng.shuffle(shuffled)
        assert ix.in_order(shuffled) == free
        assert qs.choose(q, ix.in_order(shuffled), states, last, sticky, index=ix) == \
            qs.pick(q, states, available, last, sticky), (strategy, agents, states, available, last, sticky)


def test_random_picks_one_free_agent_of_the_best_tier():
    q = queue("random", AGENTS)
    seen = {qs.pick(q, STATES, {"a", "b", "c", "d"}, rng=random.Random(i))[0] for i in range(50)}
    assert seen == {"a", "b"}
