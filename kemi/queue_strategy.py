"""Call-centre queues (seed 001): which free agents a waiting caller is offered to, and when
a caller has waited long enough. Pure: no I/O, no KSR.

Strategies:
  ringall       every free agent of the best tier at once
  fewest_calls  the free agent who answered the fewest calls from this queue
  longest_idle  the free agent whose last call ended longest ago (never: first)
  round_robin   the next free agent after the one offered last, in listed order
  linear        always the first free agent in listed order
  random        any free agent
Tiers: only agents of the best (lowest) tier that has a free agent are considered.
Routing by call history: the agent who last answered this caller, if free, comes first.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from kemi.directory import Queue

STRATEGIES = ("ringall", "fewest_calls", "longest_idle", "round_robin", "linear", "random")


@dataclass(frozen=True)
class AgentState:
    calls: int = 0              # calls the agent is on now (ringing or talking)
    answered: int = 0           # calls answered from this queue
    idle_since: float = 0.0     # when the agent's last call ended (0: never had one)


def free_agents(queue: Queue, states: dict[str, AgentState], available: set[str]) -> list[str]:
    """Logged-in, registered (`available`) agents below the queue's calls-per-agent limit,
    in listed order."""
    return [a.number for a in queue.agents
            if a.logged_in and a.number in available
            and states.get(a.number, AgentState()).calls < queue.max_calls]


def pick(queue: Queue, states: dict[str, AgentState], available: set[str], last_offered: str | None = None,
         sticky: str | None = None, rng: random.Random | None = None) -> list[str]:
    """The agents to offer the next waiting caller to; empty when none is free."""
    return choose(queue, free_agents(queue, states, available), states, last_offered, sticky, rng)


def choose(queue: Queue, free: list[str], states: dict[str, AgentState], last_offered: str | None = None,
           sticky: str | None = None, rng: random.Random | None = None, index: QueueIndex | None = None) -> list[str]:
    """`pick` among agents already known free (in listed order): the dispatcher keeps that
    list itself, so a pick costs O(free agents), never O(all agents of the queue)."""
    if not free:
        return []
    if sticky in free:
        return [sticky]
    ix = index or QueueIndex.of(queue)
    best = min(ix.tier[n] for n in free)
    free = [n for n in free if ix.tier[n] == best]
    strategy = queue.strategy
    if strategy == "ringall":
        return free
    if strategy == "linear":
        return free[:1]
    if strategy == "random":
        return [(rng or random).choice(free)]
    if strategy == "fewest_calls":
        return [min(free, key=lambda n: states.get(n, AgentState()).answered)]
    if strategy == "longest_idle":
        return [min(free, key=lambda n: states.get(n, AgentState()).idle_since)]
    if strategy == "round_robin":
        size = len(ix.position)
        start = ix.position[last_offered] + 1 if last_offered in ix.position else 0
        return [min(free, key=lambda n: (ix.position[n] - start) % size)]
    raise ValueError(f"unknown queue strategy {strategy!r}")


@dataclass(frozen=True)
class QueueIndex:
    """A queue's agents indexed once per snapshot: listed position and tier by number."""
    position: dict[str, int]
    tier: dict[str, int]

    @classmethod
    def of(cls, queue: Queue) -> QueueIndex:
        return cls({a.number: i for i, a in enumerate(queue.agents)}, {a.number: a.tier for a in queue.agents})

    def in_order(self, agents) -> list[str]:
        return sorted(agents, key=self.position.__getitem__)


def waited_too_long(queue: Queue, arrived: float, now: float) -> bool:
    return now - arrived >= queue.max_wait


def sticky_agent(queue: Queue, last: tuple[str, float] | None, now: float) -> str | None:
    """The agent who last answered this caller, if within the queue's window."""
    if queue.sticky_window is None or last is None:
        return None
    agent, when = last
    return agent if now - when <= queue.sticky_window else None
