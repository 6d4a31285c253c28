"""`python -m bench.queue_hold`: queue callers on music on hold through the whole stack
(Kamailio, rtpengine, the media service, PostgreSQL); prints markdown rows, asserts nothing.

Rows:
  waiting   N callers wait at once in one queue with music: how many got early media (183)
            and music, the media service's CPU and lateness p99 over a window, Kamailio's
            shared memory in use
  offer     an agent registers while one caller waits: time from the REGISTER's 200 to the
            caller's 200 (dispatcher tick, hold branch ended by INFO, 302, agent rung and
            answering at once), for a queue with music and one without (suspended)
The callers and the agent are tests/e2e/media_peer.py phones in this process, on the same
cores. Usage: python -m bench.queue_hold [--waiting 20,50,100] [--offers 10] [--window 10]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.media import cpu_seconds
from kemi.config import Settings
from media import audio
from tests.e2e.media_helpers import tone_share
from tests.e2e.media_peer import Phone, register
from tests.e2e.test_queue_music import Agent
from tools.ports import free_port
from tools.stack import Stack


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def kemictl(settings: Settings, *args: str) -> None:
    import subprocess
    env = {**__import__("os").environ, **settings.to_env()}
    from kemi.config import ROOT
    out = subprocess.run([str(ROOT / "kemictl"), *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"kemictl {' '.join(args)}: {out.stderr}")


def subscriber(settings: Settings, number: str) -> None:
    kemictl(settings, "subscriber", "add", number, "--password", "bench-pass-1")


def shm_used(settings: Settings) -> float | None:
    import subprocess
    sock = Path(settings.var_dir) / "run" / "kamailio-ctl.sock"
    out = subprocess.run(["kamcmd", "-s", f"unix:{sock}", "core.shmmem"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if "real_used" in line:
            return int(line.split(":")[1]) / 1e6
    return None


async def waiting_row(stack: Stack, settings: Settings, queue: str, n: int, window: float) -> dict:
    target = (settings.sip_address, settings.sip_port)
    phones = [await Phone("7300001", "bench-pass-1").open() for _ in range((n + 24) // 25)]
    calls = []
    for i in range(n):
        calls.append(await phones[i % len(phones)].call(target, f"sip:{queue}@{target[0]}:{target[1]}", wait_for=(183,)))
    early = sum(1 for c in calls if c.answer is not None and c.answer.status == 183)
    await asyncio.sleep(3)
    music = sum(1 for c in calls if tone_share(c.received()[-4000:], 660.0) > 0.7)
    pid = stack.media.proc.pid
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(window)
    cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    stats = json.loads((Path(settings.var_dir) / "run" / "media-stats.json").read_text())
    shm = shm_used(settings)
    for c in calls:
        c.cancel()
    await asyncio.sleep(3)
    for c in calls:
        c.leg.close()
    for p in phones:
        p.close()
    return {"n": n, "early": early, "music": music, "cpu": 100 * cpu, "late_p99": stats["lateness_ms_p99"],
            "legs": stats["legs"], "shm": shm}


async def offer_times(settings: Settings, queue: str, agent: str, rounds: int) -> list[float]:
    target = (settings.sip_address, settings.sip_port)
    out = []
    phone = await Phone("7300001", "bench-pass-1").open()
    try:
        for _ in range(rounds):
            agent_phone = await Agent(agent, "bench-pass-1").open()
            call = await phone.call(target, f"sip:{queue}@{target[0]}:{target[1]}", wait_for=(182, 183))
            await asyncio.sleep(1.5)
            await register(agent_phone, target)
            t0 = time.monotonic()
            final = await call.wait_final(30)
            if final.status == 200:
                out.append(1000 * (time.monotonic() - t0))
            call.bye()
            await register(agent_phone, target, expires=0)
            agent_phone.close()
            call.leg.close()
            await asyncio.sleep(1.0)
    finally:
        phone.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--waiting", default="20,50,100")
    p.add_argument("--offers", type=int, default=10)
    p.add_argument("--window", type=float, default=10)
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kemi-bench-hold-"))
    settings = Settings(sip_port=free_port(), pg_port=free_port(), rtpengine_ng=f"127.0.0.1:{free_port()}",
                        rtpengine_http="", metrics_port=free_port(), var_dir=str(base),
                        rtp_port_min=40000, rtp_port_max=40999, media_sip=f"127.0.0.1:{free_port()}")
    stack = Stack(settings, durable=False)
    stack.start()
    try:
        from tests.e2e.media_helpers import add_audio
        add_audio(settings.database_url, "bench-music", audio.tone((660.0,), 4.0, 0.5))
        for number in ("7300001", "7300002", "7300003"):
            subscriber(settings, number)
        kemictl(settings, "queue", "add", "hold", "7400001", "--max-wait", "600")
        kemictl(settings, "queue", "agents", "hold", "7300002")
        kemictl(settings, "queue", "hold", "hold", "--music", "bench-music", "--interval", "0")
        kemictl(settings, "queue", "add", "silent", "7400002", "--max-wait", "600")
        kemictl(settings, "queue", "agents", "silent", "7300003")
        time.sleep(2)
        print("| Callers waiting on hold | got 183 | hear the music | media service CPU (% of a core) "
              "| send lateness p99 (ms) | Kamailio shm used (MB) |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for n in [int(x) for x in args.waiting.split(",") if x]:
            r = asyncio.run(waiting_row(stack, settings, "7400001", n, args.window))
            print(f"| {r['n']} | {r['early']} | {r['music']} | {r['cpu']:.1f} | {r['late_p99']:.2f} | "
                  f"{r['shm'] if r['shm'] is None else round(r['shm'], 1)} |", flush=True)
        print()
        print("| Queue | offers | agent registered -> caller's 200, p50 / max (ms) |")
        print("| --- | ---: | ---: |")
        for label, queue, agent in (("with music (hold branch ended by INFO)", "7400001", "7300002"),
                                    ("without music (suspended, t_continue)", "7400002", "7300003")):
            times = asyncio.run(offer_times(settings, queue, agent, args.offers))
            if times:
                print(f"| {label} | {len(times)} | {statistics.median(times):.0f} / {max(times):.0f} |", flush=True)
            else:
                print(f"| {label} | 0 | - |")
    finally:
        stack.stop()
        if stack.postgres:
            stack.postgres.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
