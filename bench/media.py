"""`python -m bench.media`: the media service under load; prints markdown rows, asserts nothing.

Rows:
  legs      N concurrent play legs (music looped, early media) on one media service process:
            the process's CPU (% of one core) and memory per leg, the media clock's send-tick
            lateness p50/p99 (last 10 s), and the receive jitter (RFC 3550) of the legs
  vm-rate   calls per second into voicemail: INVITE -> 200 (box looked up in PostgreSQL),
            each caller hangs up 0.5 s later; the highest rate with every call answered
The load generator (tests/e2e/media_peer.py, the same RTP engine) runs in this process on
the same 2 cores, so the numbers are a floor. Usage:
  python -m bench.media [--legs 50,100,250] [--window 10] [--rates 10,25,50,100] [--keep]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

from kemi.config import Settings
from provision import store as pstore
from tests.e2e.media_helpers import DirectService
from tests.e2e.media_peer import Phone
from tools.ports import free_port
from tools.stack import Postgres
from tools import migrate

BOX = "7200001"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stats(svc: DirectService) -> dict:
    return json.loads((Path(svc.settings.var_dir) / "run" / "media-stats.json").read_text())


async def wait_stats(svc: DirectService, check, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            s = stats(svc)
            if check(s):
                return s
        except (OSError, ValueError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("media service statistics did not show the expected state")


async def legs_step(settings: Settings, work: Path, legs: int, window: float) -> dict:
    svc = DirectService(settings, work, media_max_legs=max(500, legs + 10)).start()
    try:
        pid = svc.proc.pid
        base_rss = rss_kb(pid)
        phones = [await Phone(f"bench{i}").open() for i in range((legs + 49) // 50)]
        calls = []
        for i in range(legs):
            calls.append(await phones[i % len(phones)].call(
                svc.address, f"sip:play@{svc.address[0]}:{svc.address[1]}", [("X-Kemi-App", "play;audio=music-hold;loop=100")],
                wait_for=(183,)))
        answered = sum(1 for c in calls if c.answer is not None)
        for c in calls:
            c.leg.recording = None   # the load generator does not decode what it receives
        await wait_stats(svc, lambda s: s["legs"] >= answered)
        await asyncio.sleep(2)   # settle
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(window)
        cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        rss = rss_kb(pid)
        late = await wait_stats(svc, lambda s: s["time"] > time.time() - 2.5)
        for c in calls:
            c.leg.close()   # stop sending first: then every CANCEL is heard
        for c in calls:
            c.cancel()
        try:
            await wait_stats(svc, lambda s: s["legs"] == 0, timeout=20)
        except RuntimeError:
            log("  some legs did not end after CANCEL")
        after = stats(svc)
        received = [len(c.received()) for c in calls]
        for p in phones:
            p.close()
        return {"legs": legs, "answered": answered, "cpu_pct": 100 * cpu, "cpu_per_leg": 100 * cpu / max(1, answered),
                "rss_mb": rss / 1024, "kb_per_leg": (rss - base_rss) / max(1, answered),
                "late_p50": late["lateness_ms_p50"], "late_p99": late["lateness_ms_p99"], "late_max": late["lateness_ms_max"],
                "jitter_p50": after["jitter_ms_p50"], "jitter_p99": after["jitter_ms_p99"],
                "rx_seconds_min": min(received) / 8000 if received else 0}
    finally:
        svc.stop()


async def vm_rate(settings: Settings, work: Path, rate: int, seconds: float = 5.0) -> dict:
    svc = DirectService(settings, work).start()
    try:
        phone = await Phone("bench-caller").open()
        latencies: list[float] = []
        failures = 0

        async def one():
            nonlocal failures
            t0 = time.monotonic()
            try:
                call = await asyncio.wait_for(phone.call(svc.address, f"sip:voicemail@{svc.address[0]}:{svc.address[1]}",
                                                         [("X-Kemi-App", f"voicemail;box={BOX}")], wait_for=(200,)), 5)
            except asyncio.TimeoutError:
                failures += 1
                return
            if call.final is None or call.final.status != 200:
                failures += 1
                return
            latencies.append(time.monotonic() - t0)
            await asyncio.sleep(0.5)
            call.bye()

        tasks = []
        start = time.monotonic()
        total = int(rate * seconds)
        for i in range(total):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        wall = time.monotonic() - start
        phone.close()
        lat = np.array(latencies) * 1000 if latencies else np.zeros(1)
        return {"rate": rate, "calls": total, "failed": failures, "p50": float(np.percentile(lat, 50)),
                "p99": float(np.percentile(lat, 99)), "wall": wall}
    finally:
        svc.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--legs", default="50,100,250")
    ap.add_argument("--rates", default="10,25,50,100")
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kemi-bench-media-"))
    base.chmod(0o755)
    settings = Settings(pg_port=free_port(), sip_port=free_port(), var_dir=str(base))
    pg = Postgres(settings, durable=False)
    load0 = os.getloadavg()[0]
    try:
        pg.start()
        migrate.apply(settings.database_url, log=lambda m: None)
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            pstore.add_subscriber(conn, BOX, "bench-password-1", settings.realm, None, True)
            from provision import media as pmedia
            pmedia.add_box(conn, BOX, "1234", True, True, None, 60)
        log(f"bench.media: work directory {base}")
        print(f"\nMedia service ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"load average {load0:.2f} at start)\n")
        print("| Concurrent play legs | answered | service CPU (% of a core) | CPU per leg | RSS (MB) | memory per leg (kB) "
              "| send lateness p50 / p99 / max (ms) | receive jitter p50 / p99 (ms) |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for n in [int(x) for x in args.legs.split(",")]:
            log(f"legs: {n}")
            r = asyncio.run(legs_step(settings, base, n, args.window))
            print(f"| {r['legs']} | {r['answered']} | {r['cpu_pct']:.1f} | {r['cpu_per_leg']:.3f} % | {r['rss_mb']:.0f} "
                  f"| {r['kb_per_leg']:.0f} | {r['late_p50']:.2f} / {r['late_p99']:.2f} / {r['late_max']:.1f} "
                  f"| {r['jitter_p50']:.2f} / {r['jitter_p99']:.2f} |", flush=True)
        print("\n| Calls/s into voicemail (direct) | calls | failed | INVITE to 200 p50 / p99 (ms) |")
        print("| ---: | ---: | ---: | ---: |")
        for rate in [int(x) for x in args.rates.split(",")]:
            log(f"voicemail rate: {rate}/s")
            r = asyncio.run(vm_rate(settings, base, rate))
            print(f"| {rate} | {r['calls']} | {r['failed']} | {r['p50']:.0f} / {r['p99']:.0f} |", flush=True)
        print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    finally:
        pg.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
