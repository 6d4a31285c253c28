"""Micro-benchmark of the queue dispatcher's tick (issue 11): 1,000 agents in 20 queues,
the dispatcher of this checkout against the one of a git revision (default `main`), both
run against the same in-memory stand-in for Kamailio (htables, dialog profile, registrar):
what is measured is the Python work and the number of calls into Kamailio per tick, not
Kamailio itself. Not a test; prints a table.

    .venv/bin/python -m bench.dispatcher [--before main] [--ticks 300]

Scenarios (every agent in QUEUES_PER_AGENT queues):
  all busy     every agent on a call, callers waiting in every queue (a busy floor)
  few free     1 % of the agents free, callers waiting in every queue
  idle floor   nobody waiting, every agent free (the quiet tick)
"""
from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AGENTS, QUEUES, QUEUES_PER_AGENT, WAITING = 1000, 20, 2, 5


class FakeKamailio:
    """The KSR calls the dispatcher makes, over dicts; counts every call."""

    def __init__(self):
        self.tables: dict[str, dict[str, object]] = {}
        self.busy: dict[str, int] = {}
        self.registered: set[str] = set()
        self.vars: dict[str, object] = {}
        self.calls = 0
        self.iters: dict[str, list] = {}
        ksr = types.ModuleType("KSR")
        k = self

        class Htable:
            @staticmethod
            def sht_get(t, key):
                k.calls += 1
                return k.tables.setdefault(t, {}).get(key)

            @staticmethod
            def sht_sets(t, key, value):
                k.calls += 1
                k.tables.setdefault(t, {})[key] = value

            sht_seti = sht_sets

            @staticmethod
            def sht_rm(t, key):
                k.calls += 1
                k.tables.setdefault(t, {}).pop(key, None)

            @staticmethod
            def sht_iterator_start(name, t):
                k.calls += 1
                k.iters[name] = list(k.tables.setdefault(t, {}).items())
                return 1

            @staticmethod
            def sht_iterator_next(name):
                k.calls += 1
                items = k.iters[name]
                if not items:
                    return -1
                key, value = items.pop(0)
                k.vars[f"$shtitkey({name})"], k.vars[f"$shtitval({name})"] = key, value
                return 1

            @staticmethod
            def sht_iterator_end(name):
                k.iters.pop(name, None)

        class Dialog:
            @staticmethod
            def get_profile_size(profile, value, var):
                k.calls += 1
                k.vars[var] = k.busy.get(value, 0)

        class Registrar:
            @staticmethod
            def registered_uri(table, uri):
                k.calls += 1
                return 1 if uri.split(":")[1].split("@")[0] in k.registered else -1

        class Pv:
            @staticmethod
            def get(name):
                return k.vars.get(name)

        class Tmx:
            @staticmethod
            def t_continue(tindex, tlabel, route):
                k.calls += 1
                k.resumed += 1
                offered = k.tables.setdefault("qtxn", {}).get(f"offer:{tindex}:{tlabel}")
                for agent in str(offered or "").split(","):     # the offer route marks them busy
                    if agent:
                        k.busy[agent] = k.busy.get(agent, 0) + 1
                        k.offered.append(agent)
                return 1

        ksr.htable, ksr.dialog, ksr.registrar, ksr.pv, ksr.tmx = Htable, Dialog, Registrar, Pv, Tmx
        self.module = ksr
        self.resumed = 0
        self.offered: list[str] = []


def load_queueing(name: str, source: str, fake: FakeKamailio):
    sys.modules["KSR"] = fake.module
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__file__ = str(ROOT / "kemi" / f"{name}.py")
    exec(compile(source, mod.__file__, "exec"), mod.__dict__)
    return mod


def directory(strategy: str):
    from kemi.directory import Directory, Queue, QueueAgent
    rng = random.Random(1)
    members: dict[int, list[str]] = {q: [] for q in range(QUEUES)}
    for a in range(AGENTS):
        for q in rng.sample(range(QUEUES), QUEUES_PER_AGENT):
            members[q].append(f"{1000 + a}")
    queues = {f"{6000 + q}": Queue(q, f"q{q}", f"{6000 + q}", strategy=strategy,
                                   agents=tuple(QueueAgent(n, 1 + i % 2) for i, n in enumerate(members[q])))
              for q in range(QUEUES)}
    return Directory(queues=queues)


def scenario(fake: FakeKamailio, d, name: str) -> None:
    from kemi import names
    from kemi.core import queue_entry as qe
    agents = sorted({a.number for q in d.queues.values() for a in q.agents})
    fake.registered = set(agents)
    free_share = {"all busy": 0.0, "few free": 0.01, "idle floor": 1.0}[name]
    rng = random.Random(2)
    fake.busy = {a: (0 if rng.random() < free_share else 1) for a in agents}
    fake.tables = {}
    if name == "idle floor":
        return
    for q in d.queues.values():
        fake.tables.setdefault("qwait", {})[f"{q.number}:tail"] = WAITING
        for seq in range(1, WAITING + 1):
            fake.tables["qwait"][f"{q.number}:{seq}"] = names.encode_entry(
                qe.arrive(seq, seq, time.time() + 3600 - 300, f"caller{seq}"))   # never times out here


def measure(mod, fake: FakeKamailio, d, name: str, ticks: int) -> tuple[float, float, int]:
    scenario(fake, d, name)
    disp = mod.Dispatcher()
    disp.next_report = float("inf")      # the once-a-second metrics report is not the tick
    snapshot = dict(fake.tables.get("qwait", {}))
    busy = dict(fake.busy)
    disp.run(d, "kemi")                  # the first tick (indexing a new snapshot) not counted
    fake.calls = 0
    fake.resumed = 0
    started = time.perf_counter()
    for _ in range(ticks):
        fake.tables["qwait"] = dict(snapshot)      # the same callers wait again every tick
        for agent in fake.offered:                 # and the offered calls ended (BYE: agentev)
            fake.busy[agent] = busy[agent]
            fake.tables.setdefault("agentev", {})[f"end.{agent}"] = agent
        fake.offered.clear()
        disp.run(d, "kemi")
    elapsed = time.perf_counter() - started
    return elapsed / ticks * 1000, fake.calls / ticks, fake.resumed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="main", help="git revision of the dispatcher to compare with")
    ap.add_argument("--ticks", type=int, default=200)
    ap.add_argument("--strategy", default="longest_idle")
    args = ap.parse_args()
    fake = FakeKamailio()
    sys.modules["KSR"] = fake.module
    old_src = subprocess.run(["git", "show", f"{args.before}:kemi/queueing.py"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    versions = [(f"before ({args.before})", load_queueing("queueing_before", old_src, fake)),
                ("after (this checkout)", load_queueing("queueing_after", (ROOT / "kemi" / "queueing.py").read_text(),
                                                         fake))]
    d = directory(args.strategy)
    print(f"dispatcher tick, {AGENTS} agents in {QUEUES} queues ({QUEUES_PER_AGENT} queues each), "
          f"{WAITING} callers waiting per queue, strategy {args.strategy}, {args.ticks} ticks")
    print(f"{'scenario':<12} {'version':<22} {'ms/tick':>8} {'KSR calls/tick':>15} {'offers':>7}")
    for name in ("all busy", "few free", "idle floor"):
        for label, mod in versions:
            ms, calls, offers = measure(mod, fake, d, name, args.ticks)
            print(f"{name:<12} {label:<22} {ms:>8.3f} {calls:>15.0f} {offers:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
