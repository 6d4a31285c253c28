"""`make bench`: SIPp load through real running stacks; prints a markdown table, asserts nothing.

Three setups, measured in the same run:
  1. the KEMI proxy (tools.stack.Stack: PostgreSQL, rtpengine, Kamailio + Python), direct call
  2. the same stack, a service number whose hunt meets two busy members before one answers
  3. bench/native-relay.cfg: a native Kamailio script, stateful relay + in-memory registrar only

For each, a step search over call rates; the highest sustained rate (see `sustained`) is
reported with its call-setup latency. Progress goes to stderr, the table to stdout. Usage:
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

MAX_FAILURE = 0.001   # fewer than 0.1 % of a step's calls may fail
MAX_P99_MS = 500      # SIP's T1: beyond it retransmissions start to feed the overload
HOLD_MS = 50
PASSWORD = "bench-password-1"
CALLER, CALLEE = "7100001", "7100002"
MEMBERS = ["7100011", "7100012", "7100013"]
SERVICE = "7109000"
TICK_MS = time.clock_getres(getattr(time, "CLOCK_MONOTONIC_COARSE", 6)) * 1000  # SIPp's clock

_cleanups: list = []


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sustained(s: Step) -> bool:
    """Few failures, p99 setup under T1, and the calls placed on time (within 10 % + 2 s):
    SIPp stops opening calls at its -l limit, so a proxy that falls behind stretches a step."""
    return (s.failed / s.calls < MAX_FAILURE and s.p99_ms is not None and s.p99_ms < MAX_P99_MS
            and s.wall_s <= s.calls / s.rate * 1.1 + 2)


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


# ---------------------------------------------------------------- Kamailio's memory and log

def shm(proc: Process) -> dict[str, int]:
    out = subprocess.run(["kamcmd", "-s", f"unix:{proc.ctl_socket}", "core.shmmem"],
                         capture_output=True, text=True, timeout=10).stdout
    return {k: int(v) for k, v in re.findall(r"(\w+):\s+(\d+)", out)}


def memory(proc: Process) -> str:
    """PSS (and RSS) summed over Kamailio's processes, i.e. its process group, and shm in use."""
    rss = pss = count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) != proc.proc.pid:
                continue
            rss += int(re.search(r"^VmRSS:\s+(\d+)", (entry / "status").read_text(), re.M).group(1))
            pss += int(re.search(r"^Pss:\s+(\d+)", (entry / "smaps_rollup").read_text(), re.M).group(1))
            count += 1
        except (OSError, AttributeError, IndexError, ValueError):
            continue
    m = shm(proc)
    shm_text = (f"{m['real_used'] / 2**20:.0f} MB (peak {m['max_used'] / 2**20:.0f} MB)"
                if "real_used" in m and "max_used" in m else "?")
    return f"PSS {pss / 1024:.0f} MB ({count} procs; RSS sum {rss / 1024:.0f} MB), shm used {shm_text}"


def settle(proc: Process, baseline: int, timeout: float = 40) -> None:
    """After an overload, wait until Kamailio has freed its backlog (shm back near baseline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and shm(proc).get("real_used", 0) > baseline + 16 * 2**20:
        time.sleep(1)


class LogWatch:
    """Counts the calls (Call-IDs) that logged an ERROR in a Kamailio log since the last look.
    Both configs log with the prefix {$mt $hdr(CSeq) $ci}; errors of processes that handle no
    message (timers) carry no Call-ID and are not counted here, only in log_problems()."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new_errors(self) -> int:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        calls = set()
        for line in data.decode(errors="replace").splitlines():
            m = re.search(r"\b(?:ERROR|CRITICAL|ALERT): \{\S+ \S+ \S+ (\S+)\}", line)
            if m and m.group(1) != "<null>":
                calls.add(m.group(1))
        return len(calls)


def log_problems(path: Path) -> list[str]:
    """The most frequent ERROR/CRITICAL/WARNING lines of a Kamailio log, numbers blanked."""
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        m = re.search(r"\b(ERROR|CRITICAL|WARNING|ALERT):\s*(.*)", line)
        if m:
            text = re.sub(r"\{[^}]*\}\s*", "", m.group(2))
            counts[f"{m.group(1)}: {re.sub(r'[0-9]+', 'N', text)[:150]}"] += 1
    return [f"{n} x {text}" for text, n in counts.most_common(5)]


# ---------------------------------------------------------------- the rate search

@dataclass
class Result:
    name: str
    does: str
    best: Step | None = None
    steps: list[Step] = field(default_factory=list)
    all_passed: bool = False
    memory: str = ""
    notes: list[str] = field(default_factory=list)


def search(result: Result, proxy, proc: Process, scenario: Path, dial: str, rates: list[int],
           step_s: int, bisect: bool, workdir: Path, tag: str) -> None:
    watch = LogWatch(proc.log)
    baseline = shm(proc).get("real_used", 0)

    def step(rate: int) -> Step:
        watch.new_errors()
        s = sipp_load.load_step(proxy, scenario, CALLER, PASSWORD, dial, rate, rate * step_s, workdir, tag)
        time.sleep(2)  # let retransmissions, transaction timers and late log lines drain
        s.proxy_errors = watch.new_errors()
        result.steps.append(s)
        log(f"  {tag}: {s.line()} -> {'ok' if sustained(s) else 'NOT sustained'}")
        if not sustained(s):
            settle(proc, baseline)
        return s

    warm = sipp_load.load_step(proxy, scenario, CALLER, PASSWORD, dial, 40, 40, workdir, tag + "-warmup")
    log(f"  {tag}: warm-up {warm.line()}")
    if warm.ok == 0:
        result.notes.append(f"warm-up calls failed, see {workdir}/{tag}-warmup-40.err")
        return
    failed_at = None
    for rate in rates:
        if not sustained(s := step(rate)):
            failed_at = rate
            break
        result.best = s
    if bisect and failed_at and result.best:
        mid = (result.best.rate + failed_at) // 20 * 10
        if result.best.rate < mid < failed_at and sustained(s := step(mid)):
            result.best = s
    result.all_passed = failed_at is None


# ---------------------------------------------------------------- the setups

def provision(settings: Settings) -> None:
    rows = [f"{n}\t{MEMBERS[i + 1] if i + 1 < len(MEMBERS) else '0000'}\t"
            f"{SERVICE if i == 0 else '1'}\t{MEMBERS[0] if i == 0 else '1'}" for i, n in enumerate(MEMBERS)]
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for number in [CALLER, CALLEE, *MEMBERS]:
            store.add_subscriber(conn, number, PASSWORD, settings.realm, f"Bench {number[-2:]}")
        store.import_group(conn, "bench", "\n".join(rows) + "\n")


def kemi_runs(base: Path, rates, step_s, bisect) -> list[Result]:
    free = sipp_load.free_port
    settings = Settings(sip_port=free(), pg_port=free(), rtpengine_ng=f"127.0.0.1:{free()}",
                        rtpengine_http=f"127.0.0.1:{free()}",
                        rtp_port_min=50000, rtp_port_max=59999, children=4, var_dir=str(base / "kemi"))
    workdir = base / "sipp-kemi"
    workdir.mkdir()
    stack = Stack(settings, durable=False)
    _cleanups.append(stack.stop)
    log(f"KEMI stack: SIP {settings.sip_port}, log {stack.kamailio.log}")
    stack.start()  # everything `make run` starts; the workers pick up provisioning by NOTIFY
    provision(settings)
    proxy = (settings.sip_address, settings.sip_port)
    callee = Uas("uas_answer.xml", workdir, "callee")
    members = [Uas("uas_busy.xml", workdir, "member1"), Uas("uas_busy.xml", workdir, "member2"),
               Uas("uas_answer.xml", workdir, "member3")]
    time.sleep(0.3)
    for number, phone in [(CALLEE, callee), *zip(MEMBERS, members)]:
        sipp_load.register(proxy, number, PASSWORD, phone.port, workdir)
    scenario = sipp_load.caller_scenario(workdir, auth=True, hold_ms=HOLD_MS)
    at_start = memory(stack.kamailio)
    log(f"  memory at start: {at_start}")

    direct = Result("KEMI proxy, direct call",
                    "the stack as `make run` starts it: digest auth (407 round trip), Python routing, "
                    "rtpengine offer/answer/delete, record-route, call journal")
    search(direct, proxy, stack.kamailio, scenario, CALLEE, rates, step_s, bisect, workdir, "kemi-direct")
    direct.memory = memory(stack.kamailio)
    direct.notes.append(f"Kamailio memory at start: {at_start}")
    log(f"  memory: {direct.memory}")

    hunt = Result("KEMI proxy, service-number hunt, two members busy",
                  "as above, plus a serial hunt: member 1 486, member 2 486, member 3 answers")
    search(hunt, proxy, stack.kamailio, scenario, SERVICE, rates, step_s, bisect, workdir, "kemi-hunt")
    hunt.memory = memory(stack.kamailio)
    hunt.notes.append("same Kamailio as the row above")
    log(f"  memory: {hunt.memory}")
    for problem in log_problems(stack.kamailio.log):
        log(f"  {stack.kamailio.log.name}: {problem}")
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
    proxy = (settings.sip_address, settings.sip_port)
    callee = Uas("uas_answer.xml", workdir, "callee")
    time.sleep(0.3)
    sipp_load.register(proxy, CALLEE, PASSWORD, callee.port, workdir)
    scenario = sipp_load.caller_scenario(workdir, auth=False, hold_ms=HOLD_MS)
    at_start = memory(relay)
    result = Result("Native kamailio.cfg relay (baseline)",
                    "record-route, in-memory registrar lookup, t_relay; no auth, no rtpengine, no Python, no DB")
    search(result, proxy, relay, scenario, CALLEE, rates, step_s, bisect, workdir, "native")
    result.memory = memory(relay)
    result.notes.append(f"Kamailio memory at start: {at_start}")
    log(f"  memory: {result.memory}")
    for problem in log_problems(relay.log):
        log(f"  {relay.log.name}: {problem}")
    sipp_load.stop_all()
    relay.stop()
    return result


# ---------------------------------------------------------------- output

def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"< {TICK_MS:.0f}" if value < TICK_MS else f"{value:.0f}"


def table(results: list[Result]) -> str:
    lines = [f"| Setup | Per call the proxy does | Max calls/s (< {100 * MAX_FAILURE:g} % failed, p99 < {MAX_P99_MS} ms) "
             "| Setup latency p50 / p99 (ms) | Calls at that rate (failed) | Kamailio memory after the run |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for r in results:
        b = r.best
        rate = "-" if b is None else (f">= {b.rate}" if r.all_passed else f"{b.rate}")
        lat = f"{ms(b.p50_ms)} / {ms(b.p99_ms)}" if b else "-"
        calls = f"{b.calls} ({b.failed})" if b else "-"
        lines.append(f"| {r.name} | {r.does} | {rate} | {lat} | {calls} | {r.memory or '-'} |")
    return "\n".join(lines)


def report(results: list[Result], info: str, load: str, command: str, seconds: float, step_s: int) -> None:
    print(f"Machine: {info}; load average {load}. `{command}` took {seconds:.0f} s; {step_s} s per rate step, {HOLD_MS} ms hold, UDP, "
          f"Kamailio -n 4 -m 256, SIPp caller and phones on the same machine. Setup latency: SIPp's "
          f"first INVITE sent -> 200 received (KEMI: includes the 407 round trip), on SIPp's coarse clock "
          f"({TICK_MS:.0f} ms ticks here), so '< {TICK_MS:.0f}' is as fine as it resolves.\n")
    print(table(results))
    print()
    for r in results:
        steps = "; ".join(f"{s.rate}/s: {s.failed} of {s.calls} failed, p99 {ms(s.p99_ms)} ms"
                          + ("" if sustained(s) else " (not sustained)") for s in r.steps)
        if r.all_passed:
            r.notes.insert(0, "every step passed; the rate list ends there")
        print(f"- {r.name}: {steps or 'no steps'}." + "".join(f" {n[0].upper()}{n[1:]}." for n in r.notes))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short steps and fewer rates (about a minute)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp statistics)")
    args = p.parse_args(argv)
    if args.quick:
        rates, step_s, bisect = [200, 500, 1000, 2000], 2, False
    else:
        rates, step_s, bisect = [100, 200, 400, 600, 800, 1000, 1300, 1600, 2000, 2500, 3000, 4000], 10, True

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    base = Path(tempfile.mkdtemp(prefix="kemi-bench-"))
    base.chmod(0o755)  # the postgres user must reach its data directory
    info = machine()
    load_start = os.getloadavg()[0]
    started = time.monotonic()
    log(f"bench: {info}, load average {load_start:.2f}; work directory {base}")
    results: list[Result] = []
    try:
        results += kemi_runs(base, rates, step_s, bisect)
        results.append(native_run(base, rates, step_s, bisect))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except (StackError, RuntimeError, psycopg.Error) as err:
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
    command = ".venv/bin/python -m bench.run --quick" if args.quick else "make bench"
    load = f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    report(results, info, load, command, time.monotonic() - started, step_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
