"""`make bench`: SIPp load through real running stacks; prints a markdown table, asserts nothing.

Three setups, measured in the same run:
  1. the KEMI proxy (tools.stack.Stack: PostgreSQL, rtpengine, Kamailio + Python), direct call
  2. the same stack, a service number whose hunt meets two busy members before one answers
  3. bench/native-relay.cfg: a native Kamailio script, stateful relay + in-memory registrar only

For each, a step search over call rates: each step places rate x step seconds calls; the
highest rate with < 0.1 % failed calls (all placed on time) is reported with its call-setup
latency. Progress goes to stderr, the table to stdout. Usage:
  python -m bench.run [--quick] [--keep]
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench import sipp_load
from bench.sipp_load import Step, Uas
from kemi.config import ROOT, Settings
from provision import store
from tools.stack import KAMAILIO, Process, Stack, StackError, sip_options

MAX_FAILURE = 0.001
HOLD_MS = 50
PASSWORD = "bench-password-1"
CALLER, CALLEE = "7100001", "7100002"
MEMBERS = ["7100011", "7100012", "7100013"]
SERVICE = "7109000"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class NativeRelay(Process):
    """bench/native-relay.cfg on its own port and run directory."""

    name = "kamailio-native"

    def command(self) -> list[str]:
        s = self.settings
        return [KAMAILIO, "-f", str(ROOT / "bench" / "native-relay.cfg"), "-DD", "-E",
                "-l", f"udp:{s.sip_address}:{s.sip_port}", "-n", str(s.children),
                "-m", str(s.shm_mb), "-M", str(s.pkg_mb), "-Y", str(self.ctl_socket.parent),
                "-A", f'CTL_SOCK="unix:{self.ctl_socket}"']

    @property
    def ctl_socket(self) -> Path:
        path = Path(self.settings.var_dir) / "run" / "kamailio-ctl.sock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def ready(self) -> bool:
        return sip_options(self.settings.sip_address, self.settings.sip_port) == 200


# ---------------------------------------------------------------- measurements

def memory(proc: Process) -> str:
    """PSS and RSS summed over Kamailio's processes (its own process group), and shm in use."""
    leader = proc.proc.pid if proc.proc else None
    rss = pss = count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != leader:
                continue
            rss += int(re.search(r"^VmRSS:\s+(\d+)", (entry / "status").read_text(), re.M).group(1))
            pss += int(re.search(r"^Pss:\s+(\d+)", (entry / "smaps_rollup").read_text(), re.M).group(1))
            count += 1
        except (OSError, AttributeError, IndexError, ValueError):
            continue
    shm = subprocess.run(["kamcmd", "-s", f"unix:{proc.ctl_socket}", "core.shmmem"],
                         capture_output=True, text=True, timeout=10).stdout
    used, peak = (re.search(rf"{key}:\s+(\d+)", shm) for key in ("real_used", "max_used"))
    shm_mb = f"{int(used.group(1)) / 2**20:.0f} MB (peak {int(peak.group(1)) / 2**20:.0f} MB)" if used and peak else "?"
    return f"PSS {pss / 1024:.0f} MB ({count} procs; RSS sum {rss / 1024:.0f} MB), shm used {shm_mb}"


class LogWatch:
    """Counts the calls that logged an ERROR in a Kamailio log since the last look."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new_errors(self) -> int:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
        self.offset += len(text.encode(errors="replace"))
        calls = set()
        for n, line in enumerate(text.splitlines()):
            if re.search(r"\b(ERROR|CRITICAL|ALERT):", line):
                m = re.search(r"\{\S+ \S+ \S+ (\S+)\}", line)  # log_prefix {$mt $hdr(CSeq) $ci}
                calls.add(m.group(1) if m else n)
        return len(calls)


def log_problems(path: Path) -> list[str]:
    """The most frequent ERROR/CRITICAL/WARNING lines of a Kamailio log, prefixes stripped."""
    if not path.exists():
        return []
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        m = re.search(r"\b(ERROR|CRITICAL|WARNING|ALERT):\s*(.*)", line)
        if m:
            text = re.sub(r"\d+", "N", m.group(2))[:160]
            counts[f"{m.group(1)}: {text}"] += 1
    return [f"{n} x {text}" for text, n in counts.most_common(5)]


@dataclass
class Result:
    name: str
    does: str
    best: Step | None = None
    steps: list[Step] = field(default_factory=list)
    memory: str = ""
    note: str = ""
    all_passed: bool = False


def search(result: Result, proxy, scenario: Path, dial: str, rates: list[int], step_s: int,
           bisect: bool, workdir: Path, tag: str, kamailio_log: Path) -> Result:
    watch = LogWatch(kamailio_log)

    def step(rate: int) -> Step:
        watch.new_errors()
        s = sipp_load.load_step(proxy, scenario, CALLER, PASSWORD, dial, rate, rate * step_s, workdir, tag)
        time.sleep(2)  # let retransmissions, transaction timers and late log lines drain
        s.proxy_errors = watch.new_errors()
        result.steps.append(s)
        ok = s.sustained(MAX_FAILURE)
        log(f"  {tag}: {s.line()} -> {'ok' if ok else 'NOT sustained'}")
        if not ok:
            time.sleep(5)  # an overloaded proxy needs a moment to empty its queues
        return s

    warm = sipp_load.load_step(proxy, scenario, CALLER, PASSWORD, dial, 40, 40, workdir, tag + "-warmup")
    log(f"  {tag}: warm-up {warm.line()}")
    if warm.ok == 0:
        result.note = f"warm-up calls failed; see {workdir}/{tag}-warmup-40.err"
        return result
    failed_at = None
    for rate in rates:
        s = step(rate)
        if not s.sustained(MAX_FAILURE):
            failed_at = rate
            break
        result.best = s
    if bisect and failed_at and result.best:
        mid = (result.best.rate + failed_at) // 2
        if mid not in (result.best.rate, failed_at):
            s = step(mid)
            if s.sustained(MAX_FAILURE):
                result.best = s
    if failed_at is None:
        result.all_passed = True
        result.note = f"every step passed: at least {rates[-1]} calls/s (the list ends there)"
    elif result.best is None:
        result.note = f"already failed at {failed_at} calls/s"
    return result


# ---------------------------------------------------------------- setups

def provision(settings: Settings) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for number in [CALLER, CALLEE, *MEMBERS]:
            store.add_subscriber(conn, number, PASSWORD, settings.realm, f"Bench {number[-2:]}")
        table = "Sip number\tNext Number\tService number\tStart number\n" + "".join(
            f"{n}\t{MEMBERS[i + 1] if i + 1 < len(MEMBERS) else '0000'}\t"
            f"{SERVICE if i == 0 else '1'}\t{MEMBERS[0] if i == 0 else '1'}\n" for i, n in enumerate(MEMBERS))
        store.import_group(conn, "bench", table)


def kemi_runs(base: Path, rates, step_s, bisect) -> list[Result]:
    free = sipp_load.free_port
    settings = Settings(sip_port=free(), pg_port=free(), rtpengine_ng=f"127.0.0.1:{free()}",
                        rtp_port_min=50000, rtp_port_max=59999, children=4, var_dir=str(base / "kemi"))
    workdir = base / "sipp-kemi"
    workdir.mkdir()
    stack = Stack(settings, durable=False)
    _cleanups.append(stack.stop)
    log(f"KEMI stack: SIP {settings.sip_port}, var_dir {settings.var_dir}")
    stack.start_database()
    provision(settings)
    stack.rtpengine.start()
    stack.kamailio.start()
    proxy = (settings.sip_address, settings.sip_port)
    callee = Uas("uas_answer.xml", workdir, "callee")
    phones = [Uas("uas_busy.xml", workdir, "member1"), Uas("uas_busy.xml", workdir, "member2"),
              Uas("uas_answer.xml", workdir, "member3")]
    time.sleep(0.3)
    sipp_load.register(proxy, CALLEE, PASSWORD, callee.port, workdir)
    for number, phone in zip(MEMBERS, phones):
        sipp_load.register(proxy, number, PASSWORD, phone.port, workdir)
    scenario = sipp_load.caller_scenario(workdir, auth=True, hold_ms=HOLD_MS)
    at_start = memory(stack.kamailio)
    log(f"  memory at start: {at_start}")

    direct = Result("KEMI proxy, direct call",
                    "digest auth (407 round trip) + Python routing + rtpengine offer/answer/delete + record-route")
    search(direct, proxy, scenario, CALLEE, rates, step_s, bisect, workdir, "kemi-direct", stack.kamailio.log)
    direct.memory = memory(stack.kamailio)
    log(f"  memory: {direct.memory}")

    hunt = Result("KEMI proxy, service-number hunt, two members busy",
                  "as above + serial fork: member 1 486, member 2 486, member 3 answers")
    search(hunt, proxy, scenario, SERVICE, rates, step_s, bisect, workdir, "kemi-hunt", stack.kamailio.log)
    hunt.memory = memory(stack.kamailio)
    log(f"  memory: {hunt.memory}")

    for problem in log_problems(stack.kamailio.log):
        log(f"  kamailio.log: {problem}")
    direct.note = (direct.note + ". " if direct.note else "") + f"Kamailio memory at start: {at_start}"
    hunt.note = (hunt.note + ". " if hunt.note else "") + "Same Kamailio as the row above"
    sipp_load.stop_all()
    stack.stop()
    return [direct, hunt]


def native_run(base: Path, rates, step_s, bisect) -> Result:
    settings = Settings(sip_port=sipp_load.free_port(), children=4, var_dir=str(base / "native"))
    workdir = base / "sipp-native"
    workdir.mkdir()
    relay = NativeRelay(settings)
    _cleanups.append(relay.stop)
    log(f"native relay: SIP {settings.sip_port}, log {relay.log}")
    relay.start()
    at_start = memory(relay)
    proxy = (settings.sip_address, settings.sip_port)
    callee = Uas("uas_answer.xml", workdir, "callee")
    time.sleep(0.3)
    sipp_load.register(proxy, CALLEE, PASSWORD, callee.port, workdir)
    scenario = sipp_load.caller_scenario(workdir, auth=False, hold_ms=HOLD_MS)
    result = Result("Native kamailio.cfg relay (baseline)",
                    "record-route + in-memory registrar lookup + t_relay; no auth, no rtpengine, no Python, no DB")
    search(result, proxy, scenario, CALLEE, rates, step_s, bisect, workdir, "native", relay.log)
    result.note = (result.note + ". " if result.note else "") + f"Kamailio memory at start: {at_start}"
    result.memory = memory(relay)
    log(f"  memory: {result.memory}")
    for problem in log_problems(relay.log):
        log(f"  kamailio-native.log: {problem}")
    sipp_load.stop_all()
    relay.stop()
    return result


# ---------------------------------------------------------------- output

def machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
            f"load average at start {load[0]:.2f}")


def ms(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(results: list[Result]) -> str:
    lines = ["| Setup | Per call the proxy does | Max calls/s (< 0.1 % failed) "
             "| Setup latency mean / p50 / p99 (ms) | Calls at that rate (failed) | Kamailio memory after the run |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for r in results:
        b = r.best
        rate = "-" if b is None else (f">= {b.rate}" if r.all_passed else f"{b.rate}")
        lat = f"{ms(b.mean_ms, 1)} / {ms(b.p50_ms)} / {ms(b.p99_ms)}" if b else "-"
        calls = f"{b.calls} ({b.failed + b.proxy_errors})" if b else "-"
        lines.append(f"| {r.name} | {r.does} | {rate} | {lat} | {calls} | {r.memory or '-'} |")
    return "\n".join(lines)


_cleanups: list = []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short steps and fewer rates (about a minute)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp stats)")
    args = p.parse_args(argv)
    if args.quick:
        rates, step_s, bisect = [200, 500, 1000, 2000], 2, False
    else:
        rates, step_s, bisect = [100, 200, 400, 600, 800, 1000, 1300, 1600, 2000, 2500, 3000, 4000], 10, True

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    base = Path(tempfile.mkdtemp(prefix="kemi-bench-"))
    base.chmod(0o755)  # the postgres user must reach its data directory
    info = machine()
    started = time.monotonic()
    log(f"bench: {info}; work directory {base}")
    results: list[Result] = []
    try:
        results += kemi_runs(base, rates, step_s, bisect)
        results.append(native_run(base, rates, step_s, bisect))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except (StackError, RuntimeError) as err:
        log(f"error: {err}")
        return 1
    finally:
        sipp_load.stop_all()
        for cleanup in reversed(_cleanups):
            try:
                cleanup()
            except Exception as err:  # keep cleaning up
                log(f"cleanup: {err}")
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    tick = time.clock_getres(getattr(time, "CLOCK_MONOTONIC_COARSE", 6)) * 1000  # SIPp's clock
    command = ".venv/bin/python -m bench.run --quick" if args.quick else "make bench"
    print(f"Machine: {info}. `{command}` took {time.monotonic() - started:.0f} s: steps of {step_s} s "
          f"per rate, hold {HOLD_MS} ms, UDP, Kamailio -n 4, SIPp caller and phones on the same machine. "
          f"Latency is SIPp's first INVITE sent -> 200 received, on SIPp's coarse clock ({tick:.0f} ms ticks here): "
          f"p50/p99 are multiples of it, the mean is not biased by it.\n")
    print(table(results))
    print()
    for r in results:
        steps = "; ".join(f"{s.rate}/s: {s.failed + s.proxy_errors} of {s.calls} failed, p99 {ms(s.p99_ms)} ms"
                          + ("" if s.sustained(MAX_FAILURE) else " (not sustained)") for s in r.steps)
        print(f"- {r.name}: {steps or 'no steps'}." + (f" {r.note}." if r.note else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
