"""The queue dispatcher (kemi/queueing.py Dispatcher) against an in-memory Kamailio
(bench/dispatcher.py's FakeKamailio): it sees state changes named in agentev, never offers
an agent a direct call made busy, reads registrations, and its tick does not read every agent."""
from __future__ import annotations

import importlib
import sys
import time

import pytest

from bench.dispatcher import FakeKamailio
from kemi import names
from kemi.core import queue_entry as qe
from kemi.directory import Directory, Queue, QueueAgent

ADAPTERS = ("ksr", "agent_keys", "queueing", "long_calls", "ring", "instrument", "nat", "listen", "media",
            "outbound", "pickup", "presence", "guard", "features", "flow_engine", "handler")


def forget():
    import kemi
    for mod in ADAPTERS:
        sys.modules.pop(f"kemi.{mod}", None)
        if hasattr(kemi, mod):
            delattr(kemi, mod)


@pytest.fixture
def world(monkeypatch):
    fake = FakeKamailio()
    monkeypatch.setitem(sys.modules, "KSR", fake.module)
    forget()
    queueing = importlib.import_module("kemi.queueing")
    q = Queue(1, "sales", "6000", strategy="linear", max_wait=600,
              agents=(QueueAgent("1001"), QueueAgent("1002"), QueueAgent("1003")))
    d = Directory(queues={"6000": q})
    fake.registered = {"1001", "1002", "1003"}
    yield fake, queueing.Dispatcher(), d
    forget()


def wait(fake, seq: int) -> None:
    fake.tables.setdefault("qwait", {})["6000:tail"] = seq
    fake.tables["qwait"][f"6000:{seq}"] = names.encode_entry(qe.arrive(seq, seq, time.time(), f"c{seq}"))


def offered(fake, seq: int) -> str | None:
    return fake.tables.get("qtxn", {}).get(f"offer:{seq}:{seq}")


def test_offers_follow_state_changes_busy_agents_and_registrations(world):
    fake, disp, d = world
    wait(fake, 1)
    disp.run(d, "kemi")
    assert offered(fake, 1) == "1001"            # the fake's offer route made 1001 busy
    # 1002 paused (a feature code or kemictl: agentst, and its number in agentev)
    fake.tables.setdefault("agentst", {})["q:6000:1002"] = "p:lunch"
    fake.tables.setdefault("agentev", {})["x.1"] = "1002"
    wait(fake, 2)
    disp.run(d, "kemi")
    assert offered(fake, 2) == "1003"
    assert fake.tables["agentev"] == {}, "the dispatcher removes what it read"
    # 1003's offer ended (agentev): free; then a direct call nobody told the dispatcher of
    fake.busy["1003"] = 0
    fake.tables["agentev"]["x.0"] = "1003"
    disp.run(d, "kemi")
    assert "1003" in disp.free["6000"]
    fake.busy["1003"] = 1
    wait(fake, 3)
    disp.run(d, "kemi")
    assert offered(fake, 3) is None
    # 1001 is free again (its call ended: agentev), but no longer registered
    fake.busy["1001"] = 0
    fake.registered.discard("1001")
    fake.tables["agentev"]["x.2"] = "1001"
    disp.run(d, "kemi")
    assert offered(fake, 3) is None
    fake.registered.add("1001")
    disp.run(d, "kemi")
    assert offered(fake, 3) == "1001"
    # unpaused: 1002 is offered the next caller
    fake.tables["agentst"]["q:6000:1002"] = "in"
    fake.tables["agentev"]["x.3"] = "1002"
    wait(fake, 4)
    disp.run(d, "kemi")
    assert offered(fake, 4) == "1002"


def test_a_busy_floor_costs_what_is_waiting_not_every_agent(world):
    fake, disp, _d = world
    agents = tuple(QueueAgent(f"{2000 + i}") for i in range(500))
    d = Directory(queues={"6000": Queue(1, "big", "6000", max_wait=600, agents=agents)})
    fake.registered = {a.number for a in agents}
    fake.busy = {a.number: 1 for a in agents}
    disp.run(d, "kemi")          # indexing a new snapshot reads everyone once
    wait(fake, 1)
    fake.calls = 0
    for _ in range(10):
        disp.run(d, "kemi")
    assert offered(fake, 1) is None
    assert fake.calls / 10 < 50, f"{fake.calls / 10} calls into Kamailio per tick for 500 busy agents"
