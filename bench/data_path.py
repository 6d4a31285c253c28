"""Quick measurement of the subscriber data path (scale, issue 11); prints, asserts nothing.

Starts a private stack with N subscribers bulk-loaded (COPY) before Kamailio starts, then:
  - Kamailio start-up time (process start to first OPTIONS 200, htable load included),
  - shm used (core.shmmem) and each UDP worker's private memory (smaps_rollup Private_*),
  - SIP OPTIONS probes at 50/s for DURATION s while 10 subscriber changes per second are
    committed (UPDATE display_name, one transaction each): p50 / p99 / max latency,
  - how long 1,000 changes (one transaction) take to be live (sync token, provision/live.py).

    python -m bench.data_path --subscribers 100000 [--slots-log2 17] [--shm-mb 512]
"""
from __future__ import annotations

import argparse
import io
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

from kemi.config import Settings
from provision.live import wait_until_live
from tools.kamailio_rpc import KamailioRpc
from tools.ports import free_port
from tools.stack import Stack

HA1 = "0123456789abcdef0123456789abcdef"


def bulk_load(dsn: str, n: int) -> float:
    started = time.monotonic()
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY subscriber (number, ha1, display_name) FROM STDIN") as copy:
                buf = io.StringIO()
                for i in range(n):
                    buf.write(f"8{i:09d}\t{HA1}\tLine {i}\n")
                    if i % 50000 == 49999:
                        copy.write(buf.getvalue())
                        buf = io.StringIO()
                copy.write(buf.getvalue())
        conn.commit()
        conn.execute("ANALYZE subscriber")
    return time.monotonic() - started


def private_kb(pid: int) -> int:
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total


def probe(address: tuple[str, int], rate: float, seconds: float) -> list[float]:
    """OPTIONS at `rate`/s; latency of each in ms (lost ones count as 2000 ms)."""
    out: list[float] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    port = sock.getsockname()[1]
    end = time.monotonic() + seconds
    nxt = time.monotonic()
    while time.monotonic() < end:
        tag = uuid.uuid4().hex[:10]
        msg = (f"OPTIONS sip:{address[0]}:{address[1]} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{tag};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag={tag}\r\nTo: <sip:{address[0]}>\r\n"
               f"Call-ID: probe-{tag}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        sent = time.monotonic()
        sock.sendto(msg, address)
        try:
            while True:
                data = sock.recv(65535)
                if f"probe-{tag}".encode() in data:
                    break
            out.append((time.monotonic() - sent) * 1000)
        except socket.timeout:
            out.append(2000.0)
        nxt += 1 / rate
        time.sleep(max(0.0, nxt - time.monotonic()))
    return out


def changes(dsn: str, n_subscribers: int, rate: float, seconds: float, done: list[int]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        end = time.monotonic() + seconds
        nxt = time.monotonic()
        i = 0
        while time.monotonic() < end:
            conn.execute("UPDATE subscriber SET display_name = %s WHERE number = %s",
                         (f"Changed {i}", f"8{(i * 7919) % n_subscribers:09d}"))
            i += 1
            nxt += 1 / rate
            time.sleep(max(0.0, nxt - time.monotonic()))
    done.append(i)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=100000)
    ap.add_argument("--slots-log2", type=int, default=17)
    ap.add_argument("--shm-mb", type=int, default=512)
    ap.add_argument("--duration", type=float, default=20)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kemi-dp-"))
    rtp = 10000 + (os.getpid() % 45) * 200
    settings = Settings(sip_port=free_port(), pg_port=free_port(), rtpengine_ng=f"127.0.0.1:{free_port()}",
                        rtpengine_http=f"127.0.0.1:{free_port()}", metrics_port=free_port(),
                        rtp_port_min=rtp, rtp_port_max=rtp + 199, children=4, var_dir=str(base),
                        flow_clock_file=str(base / "flow_clock"), smtp_port=free_port(),
                        media_sip=f"127.0.0.1:{free_port()}", shm_mb=args.shm_mb,
                        subscriber_slots_log2=args.slots_log2)
    stack = Stack(settings, durable=False)
    say = lambda m: print(m, file=sys.stderr, flush=True)   # noqa: E731
    timings: dict[str, float] = {}

    def before() -> None:
        timings["copy"] = bulk_load(settings.database_url, args.subscribers)

    try:
        original = stack.kamailio.start

        def timed_start(*a, **kw):
            t = time.monotonic()
            original(*a, timeout=600, **{k: v for k, v in kw.items() if k != "timeout"})
            timings["kamailio_start"] = time.monotonic() - t
        stack.kamailio.start = timed_start
        stack.start(before_processes=before)
        say(f"stack up in {base}")
        rpc = KamailioRpc.for_var_dir(settings.var_dir, timeout=600)
        # let the loader's first resync of the new Kamailio happen before measuring
        time.sleep(3)
        shm = rpc.call("core.shmmem")
        workers = [p["PID"] for p in rpc.call("core.psx") if p["DSC"].startswith("udp receiver")]
        private = [private_kb(pid) for pid in workers]
        loader_log = stack.loader.log.read_text()
        reload_lines = [ln for ln in loader_log.splitlines() if "htable.reload" in ln]
        t = time.monotonic()
        rpc.call("htable.reload", "subs")
        reload_s = time.monotonic() - t
        idle = probe((settings.sip_address, settings.sip_port), 50, 5)
        done: list[int] = []
        writer = threading.Thread(target=changes, args=(settings.database_url, args.subscribers, 10,
                                                         args.duration, done))
        writer.start()
        busy = probe((settings.sip_address, settings.sip_port), 50, args.duration)
        writer.join()
        with psycopg.connect(settings.database_url) as conn:
            since = time.time_ns()
            with conn.transaction():
                for i in range(1000):
                    conn.execute("UPDATE subscriber SET display_name = %s WHERE number = %s",
                                 (f"Burst {i}", f"8{(i * 104729) % args.subscribers:09d}"))
        t = time.monotonic()
        live = wait_until_live(settings.var_dir, since, timeout=120, dsn=settings.database_url)
        burst_s = time.monotonic() - t
        private_after = [private_kb(pid) for pid in workers]
        shm_after = rpc.call("core.shmmem")
        mb = 1024 * 1024
        print(f"subscribers: {args.subscribers:,} (COPY {timings['copy']:.1f} s); htable slots 2^{args.slots_log2}, "
              f"-m {args.shm_mb}; load average {os.getloadavg()[0]:.2f}")
        print(f"Kamailio start to first OPTIONS 200 (htable loaded natively from the view): "
              f"{timings['kamailio_start']:.1f} s")
        print(f"shm used {int(shm['used']) / mb:.1f} MB (real {int(shm['real_used']) / mb:.1f} MB, "
              f"max {int(shm['max_used']) / mb:.1f} MB) of {int(shm['total']) / mb:.0f} MB; after the changes "
              f"used {int(shm_after['used']) / mb:.1f} MB, max {int(shm_after['max_used']) / mb:.1f} MB")
        print(f"UDP workers' private memory (Private_Clean+Dirty): {', '.join(f'{k / 1024:.1f}' for k in private)} MB; "
              f"after the changes {', '.join(f'{k / 1024:.1f}' for k in private_after)} MB")
        print(f"htable.reload subs (full resync) {reload_s * 1000:.0f} ms; loader: {reload_lines[-1:] }")
        print(f"OPTIONS at 50/s, idle: p50 {pct(idle, .5):.2f} ms, p99 {pct(idle, .99):.2f} ms, max {max(idle):.2f} ms "
              f"({len(idle)} probes)")
        print(f"OPTIONS at 50/s while {done[0] if done else '?'} changes ran at 10/s: p50 {pct(busy, .5):.2f} ms, "
              f"p99 {pct(busy, .99):.2f} ms, max {max(busy):.2f} ms ({len(busy)} probes)")
        print(f"1,000 changes in one transaction live after {burst_s:.2f} s (confirmed: {live})")
        return 0
    finally:
        stack.stop()
        if stack.postgres:
            stack.postgres.remove()


if __name__ == "__main__":
    sys.exit(main())
