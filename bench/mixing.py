"""`python -m bench.mixing`: conference mixing in the media service; prints markdown rows,
asserts nothing.

For rooms of 3, 5 and 20 participants, enough rooms to make about `--legs` legs are filled
on one media service process (`python -m media`, as the stack runs it); every participant
sends a tone all the time (so every leg is decoded, mixed N-1 and encoded on each 20 ms
tick). Measured over `--window` seconds: the service's CPU (% of one core), CPU per leg and
so legs per core, and the media clock's send lateness p50/p99/max (from
var/run/media-stats.json, the last 10 s of ticks). The load generator (tests/e2e/media_peer.py,
the same RTP engine) runs in this process on the same cores, so the numbers are a floor.
Usage: python -m bench.mixing [--sizes 3,5,20] [--legs 120] [--window 10] [--keep]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.media import cpu_seconds, log, rss_kb, stats, wait_stats
from kemi.config import Settings
from media import audio, conference_control
from provision import conference as pconf
from tests.e2e.media_helpers import DirectService
from tests.e2e.media_peer import Phone
from tools import migrate
from tools.ports import free_port
from tools.stack import Postgres

PIN = "2580"


def room_number(size: int, i: int) -> str:
    return f"77{size:03d}{i:03d}"


async def fill(svc: DirectService, size: int, rooms: int) -> tuple[list, list]:
    phones = [await Phone(f"bench{i}").open() for i in range((size * rooms + 39) // 40)]
    calls = []

    async def join(n: int, room: str):
        phone = phones[n % len(phones)]
        call = await phone.call(svc.address, f"sip:conference@{svc.address[0]}:{svc.address[1]}",
                                [("X-Kemi-App", f"conference;room={room}")], wait_for=(200,))
        if call.final is None or call.final.status != 200:
            return
        for d in PIN + "#":
            call.info(d)
            await asyncio.sleep(0.05)
        calls.append(call)

    await asyncio.gather(*(join(r * size + k, room_number(size, r)) for r in range(rooms) for k in range(size)))
    control = Path(svc.settings.var_dir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = await asyncio.to_thread(conference_control.request, str(control), "status")
        if sum(r["participants"] for r in answer["rooms"]) >= len(calls):
            break
        await asyncio.sleep(0.5)
    for i, call in enumerate(calls):
        call.leg.recording = None   # the load generator does not decode what it hears
        call.play(audio.tone((300 + 37 * (i % 40),), 1.0, 0.1), 10000)
    return phones, calls


async def step(settings: Settings, work: Path, size: int, legs: int, window: float) -> dict:
    rooms = max(1, round(legs / size))
    svc = DirectService(settings, work, media_max_legs=max(500, legs + 50)).start()
    try:
        pid = svc.proc.pid
        base_rss = rss_kb(pid)
        phones, calls = await fill(svc, size, rooms)
        joined = len(calls)
        await asyncio.sleep(3)   # settle: join tones over, every room mixing
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(window)
        cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        rss = rss_kb(pid)
        late = await wait_stats(svc, lambda s: s["time"] > time.time() - 2.5)
        for c in calls:
            c.bye()
        try:
            await wait_stats(svc, lambda s: s["legs"] == 0, timeout=20)
        except RuntimeError:
            log("  some legs did not end after BYE")
        for p in phones:
            p.close()
        per_leg = 100 * cpu / max(1, joined)
        return {"size": size, "rooms": rooms, "legs": joined, "cpu_pct": 100 * cpu, "cpu_per_leg": per_leg,
                "legs_per_core": 100 / per_leg if per_leg else 0, "kb_per_leg": (rss - base_rss) / max(1, joined),
                "late_p50": late["lateness_ms_p50"], "late_p99": late["lateness_ms_p99"],
                "late_max": late["lateness_ms_max"], "stats": stats(svc)["counters"]}
    finally:
        svc.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3,5,20")
    ap.add_argument("--legs", type=int, default=120)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    base = Path(tempfile.mkdtemp(prefix="kemi-bench-mixing-"))
    base.chmod(0o755)
    settings = Settings(pg_port=free_port(), sip_port=free_port(), var_dir=str(base))
    pg = Postgres(settings, durable=False)
    load0 = os.getloadavg()[0]
    try:
        pg.start()
        migrate.apply(settings.database_url, log=lambda m: None)
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            for size in sizes:
                for i in range(max(1, round(args.legs / size))):
                    pconf.add_room(conn, room_number(size, i), None, PIN, max_size=max(2, size))
        log(f"bench.mixing: work directory {base}")
        print(f"\nConference mixing ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"load average {load0:.2f} at start; every participant talks all the time)\n")
        print("| Room size | rooms | legs mixed | service CPU (% of a core) | CPU per leg | legs per core "
              "| memory per leg (kB) | send lateness p50 / p99 / max (ms) |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for size in sizes:
            log(f"rooms of {size}")
            r = asyncio.run(step(settings, base, size, args.legs, args.window))
            print(f"| {r['size']} | {r['rooms']} | {r['legs']} | {r['cpu_pct']:.1f} | {r['cpu_per_leg']:.3f} % "
                  f"| {r['legs_per_core']:.0f} | {r['kb_per_leg']:.0f} "
                  f"| {r['late_p50']:.2f} / {r['late_p99']:.2f} / {r['late_max']:.1f} |", flush=True)
        print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    finally:
        pg.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
