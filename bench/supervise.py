"""`python -m bench.supervise`: what a supervisable queue call costs (issue 14 section 2);
prints markdown rows, asserts nothing.

A call from a queue with supervision on passes through the media service as two legs (the
customer's and the agent's), decoded, bridged and encoded on every 20 ms tick, for the
whole call, whether a supervisor ever comes or not. A call from any other queue costs the
media service nothing. So the extra cost per call is the service's CPU per bridged call,
measured here: `--calls` bridged calls on one media service process (`python -m media`, as
the stack runs it), both sides talking all the time, over `--window` seconds; then the same
calls with one supervisor each (whisper), a third leg. The proxy's part is replaced by a
peer that answers the agent legs (the service's "proxy" address points at it), so only the
media service is measured; the load generator runs on the same cores (a floor).
Usage: python -m bench.supervise [--calls 20,40] [--window 10] [--keep]
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from bench.media import cpu_seconds, log, wait_stats
from kemi.config import Settings
from media import audio
from tests.e2e.callback_peer import Carrier
from tests.e2e.media_helpers import DirectService
from tests.e2e.media_peer import Phone
from tools import migrate
from tools.ports import free_port
from tools.stack import Postgres


async def step(settings: Settings, work: Path, calls: int, window: float) -> dict:
    agents = await Carrier("127.0.0.1").open()
    svc = DirectService(dataclasses.replace(settings, sip_port=agents.port), work,
                        media_max_legs=max(500, 3 * calls + 50)).start()
    phones = [await Phone(f"customer{i}").open() for i in range((calls + 19) // 20)]
    answered: list = []

    async def agent_side():
        while True:
            incoming = await agents.next_call(timeout=3600)
            answered.append(incoming)
            asyncio.ensure_future(incoming.answer())

    answering = asyncio.ensure_future(agent_side())
    try:
        pid = svc.proc.pid

        async def place(i: int):
            phone = phones[i % len(phones)]
            call = await phone.call(svc.address, f"sip:supervised@{svc.address[0]}:{svc.address[1]}",
                                    [("X-Kemi-App", f"supervised;agent={2000 + i};caller={4900 + i};ring=30")],
                                    wait_for=(200,))
            return call if call.final is not None and call.final.status == 200 else None

        placed = [c for c in await asyncio.gather(*(place(i) for i in range(calls))) if c is not None]
        for i, call in enumerate(placed):
            call.leg.recording = None       # the load generator does not decode what it hears
            call.play(audio.tone((300 + 37 * (i % 20),), 1.0, 0.1), 10000)
        for i, incoming in enumerate(answered):
            if incoming.leg is not None:
                incoming.leg.recording = None
                incoming.play(audio.tone((1200 + 29 * (i % 20),), 1.0, 0.1), 10000)
        rows = {}
        await asyncio.sleep(3)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(window)
        rows["bridged"] = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        late = await wait_stats(svc, lambda s: s["time"] > time.time() - 2.5)
        # one supervisor per call, whispering
        spies = []
        for i, incoming in enumerate(answered[:len(placed)]):
            phone = phones[i % len(phones)]
            spy = await phone.call(svc.address, f"sip:spy@{svc.address[0]}:{svc.address[1]}",
                                   [("X-Kemi-App", f"spy;call={incoming.invite.call_id};mode=whisper")],
                                   wait_for=(200,))
            if spy.final is not None and spy.final.status == 200:
                spy.leg.recording = None
                spy.play(audio.tone((2500,), 1.0, 0.1), 10000)
                spies.append(spy)
        await asyncio.sleep(3)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(window)
        rows["supervised"] = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        late_sup = await wait_stats(svc, lambda s: s["time"] > time.time() - 2.5)
        for c in spies + placed:
            c.bye()
        return {"calls": len(placed), "spies": len(spies), "cpu": rows, "late": late, "late_sup": late_sup}
    finally:
        answering.cancel()
        for p in phones:
            p.close()
        agents.close()
        svc.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", default="20,40")
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kemi-bench-supervise-"))
    base.chmod(0o755)
    settings = Settings(pg_port=free_port(), sip_port=free_port(), var_dir=str(base))
    pg = Postgres(settings, durable=False)
    load0 = os.getloadavg()[0]
    try:
        pg.start()
        migrate.apply(settings.database_url, log=lambda m: None)
        print(f"\nSupervisable queue calls in the media service ({platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores, load average {load0:.2f} at start; both sides talk all the time)\n")
        print("| bridged calls | supervisors | service CPU (% of a core) | CPU per call | calls per core "
              "| send lateness p50 / p99 / max (ms) |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for n in [int(x) for x in args.calls.split(",")]:
            log(f"{n} bridged calls")
            r = asyncio.run(step(settings, base, n, args.window))
            for key, spies, late in (("bridged", 0, r["late"]), ("supervised", r["spies"], r["late_sup"])):
                cpu = 100 * r["cpu"][key]
                per = cpu / max(1, r["calls"])
                print(f"| {r['calls']} | {spies} | {cpu:.1f} | {per:.3f} % | {100 / per if per else 0:.0f} "
                      f"| {late['lateness_ms_p50']:.2f} / {late['lateness_ms_p99']:.2f} / "
                      f"{late['lateness_ms_max']:.1f} |", flush=True)
        print(f"\nload average at the end {os.getloadavg()[0]:.2f}; a call from a queue without "
              "supervision costs the media service nothing (rtpengine relays it)")
    finally:
        pg.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
