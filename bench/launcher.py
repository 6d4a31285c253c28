"""`python -m bench.launcher`: the cost of the launcher's escalation machine (pure,
kemi/core/launcher.py), in-process; prints markdown rows, asserts nothing.

The runner feeds every running launch one `Tick` every 250 ms; a tick costs the machine's
`step` (the steps due, the joined check). Measured: CPU microseconds per tick for launches of
10 and 50 contacts (idle ticks between steps, and the tick that fires a step for everyone),
and how many running launches one core could tick at 4 Hz.
Usage: python -m bench.launcher [--ticks 20000]
"""
from __future__ import annotations

import argparse
import time

from kemi.core import launcher as core


def contacts(n: int) -> tuple[core.Contact, ...]:
    return tuple(core.Contact(f"c{i}", work=f"10{i:04d}", home=f"20{i:04d}", mobile=f"30{i:04d}",
                              email=f"c{i}@example.org") for i in range(n))


def per_tick(n: int, ticks: int, elapsed: float) -> float:
    state = core.start(contacts(n))
    state, _ = core.step(core.CONFCALL, state, core.Tick(0))     # the t = 0 step is behind us
    start = time.process_time()
    for _ in range(ticks):
        core.step(core.CONFCALL, state, core.Tick(elapsed))
    return (time.process_time() - start) / ticks * 1e6


def firing(n: int, ticks: int) -> float:
    base = core.start(contacts(n))
    start = time.process_time()
    for _ in range(ticks):
        core.step(core.CONFCALL, base, core.Tick(0))
    return (time.process_time() - start) / ticks * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=20000)
    args = ap.parse_args()
    print("| contacts | idle tick (µs CPU) | tick firing a step for all (µs CPU) | launches per core at 4 ticks/s |")
    print("| ---: | ---: | ---: | ---: |")
    for n in (10, 50):
        idle = per_tick(n, args.ticks, 30.0)
        fire = firing(n, max(1000, args.ticks // 10))
        print(f"| {n} | {idle:.1f} | {fire:.1f} | {int(1e6 / (idle * 4)):,} |")


if __name__ == "__main__":
    main()
