"""`make bench`: SIPp load through real running stacks; prints a markdown table, asserts nothing.

Five setups, measured in the same run:
  1. the KEMI proxy (tools.stack.Stack: PostgreSQL, rtpengine, Kamailio + Python), direct call
  2. the same stack, a service number whose hunt meets two busy members before one answers
  3. the same stack, a ring-all group of 5 members: one answers, four ring and are cancelled
  4. the same stack, a queue of 20 agents (one call each) that answer at once
  5. bench/native-relay.cfg: a native Kamailio script, stateful relay + in-memory registrar only

For each, a step search over call rates; the highest sustained rate (see `sustained`) is
reported with its call-setup latency. Then, on the KEMI stack, how many callers can wait in
one queue at once (nobody answers; steps of N callers that all wait, then CANCEL), with
Kamailio's memory. Progress goes to stderr, the table and the waiting lines to stdout. Usage:
  python -m bench.run [--quick] [--keep] [--rows direct,hunt,ringall,queue,waiting,native]
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
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench import sipp_load
from bench.sipp_load import Step, Uas
from kemi.config import ROOT, Settings
from provision import groups, store
from provision.store import ProvisioningError
from tools.stack import KAMAILIO, Process, Stack, StackError, sip_options

MAX_FAILURE = 0.001   # fewer than 0.1 % of a step's calls may fail
MAX_P99_MS = 500      # SIP's T1: beyond it retransmissions start to feed the overload
HOLD_MS = 50
PASSWORD = "bench-password-1"
CALLER, CALLEE = "7100001", "7100002"
MEMBERS = ["7100011", "7100012", "7100013"]
SERVICE = "7109000"
RINGALL = "7109100"                                        # ring-all group: member 1 answers,
RINGALL_MEMBERS = [f"{7100021 + i}" for i in range(5)]     # members 2-5 ring and get CANCEL
QUEUE = "7109200"                                          # 20 agents that answer at once
AGENTS = [f"{7100031 + i}" for i in range(20)]
WAIT_QUEUE = "7109300"                                     # agents logged out, never registered
WAIT_AGENTS = ["7100061", "7100062"]
ROWS = ("direct", "hunt", "ringall", "queue", "waiting", "native")
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


def pss_rss(proc: Process) -> tuple[int, int, int]:
    """PSS and RSS (kB) summed over Kamailio's processes (its process group), and their number."""
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
    return pss, rss, count


def cpu_seconds(proc: Process) -> float:
    """User + system CPU time of Kamailio's processes (its process group) so far."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == proc.proc.pid:
                ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def memory(proc: Process) -> str:
    """PSS (and RSS) summed over Kamailio's processes, i.e. its process group, and shm in use."""
    pss, rss, count = pss_rss(proc)
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
        cpu = cpu_seconds(proc)
        s = sipp_load.load_step(proxy, scenario, CALLER, PASSWORD, dial, rate, rate * step_s, workdir, tag)
        time.sleep(2)  # let retransmissions, transaction timers and late log lines drain
        s.proxy_errors = watch.new_errors()
        # Kamailio CPU per completed call: steadier than the maximum rate on a shared machine
        per_call = (cpu_seconds(proc) - cpu) * 1000 / max(s.ok, 1)
        result.notes.append(f"{rate}/s: Kamailio CPU {per_call:.2f} ms per completed call")
        result.steps.append(s)
        log(f"  {tag}: {s.line()}, Kamailio CPU {per_call:.2f} ms/call -> {'ok' if sustained(s) else 'NOT sustained'}")
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


# ---------------------------------------------------------------- callers waiting in a queue

@dataclass
class WaitStep:
    """N callers placed into a queue where nobody answers, all waiting at once, then CANCEL."""
    n: int
    rate: int
    wait_s: float               # how long each caller waits after its 182 before its CANCEL
    shm_before: int = 0         # bytes of shm in use before the step (settled)
    shm_at: int = 0             # ... with all N waiting
    pss_before_kb: int = 0      # Kamailio's PSS before the step
    pss_kb: int = 0             # ... with all N waiting
    procs: int = 0
    queued: int = 0             # 182 Queued received by SIPp
    waiting: int | None = None  # the proxy's count (kemi_queue_waiting_calls) when measured
    interrupted: int = 0        # callers that got a final reply while waiting, before the measurement
    measured_s: float = 0       # from the start of the step to the measurement
    ok: int = 0                 # calls SIPp completed as scripted (182, wait, CANCEL, 487)
    failed_calls: int = 0
    ended_487: int = 0          # 487s received for the INVITEs
    cut_short: dict = field(default_factory=dict)  # final replies before the CANCEL: code -> callers
    cut_short_s: float = 0      # when the first of them came, from the start of the step
    left: int | None = None     # the proxy's count after the CANCELs
    proxy_errors: int = 0
    p99_ms: float | None = None  # first INVITE -> 182 Queued

    @property
    def all_waiting(self) -> bool:
        """All N waited at once: SIPp got N 182s and the proxy counted N waiting."""
        return self.queued == self.n and self.waiting == self.n and self.interrupted == 0

    @property
    def ended_clean(self) -> bool:
        """Each waited until its own CANCEL and got 487; nothing failed or stayed behind."""
        return (self.ok == self.n and self.failed_calls == 0 and self.ended_487 == self.n
                and not self.cut_short and self.proxy_errors == 0 and self.left == 0)

    @property
    def per_caller_kb(self) -> float:
        return (self.shm_at - self.shm_before) / self.n / 1024

    def problems(self) -> list[str]:
        out = []
        if self.queued != self.n:
            out.append(f"{self.queued} of {self.n} got 182 Queued")
        if self.waiting != self.n:
            out.append(f"the proxy counted {self.waiting} waiting")
        if self.interrupted:
            out.append(f"{self.interrupted} had already got a final reply from the proxy when measured")
        for code, n in sorted(self.cut_short.items()):
            out.append(f"{n} got {code} from the proxy while waiting, the first {self.cut_short_s:.1f} s into the "
                       f"step, before their CANCEL after {self.wait_s:.1f} s")
        if self.ended_487 != self.n:
            out.append(f"{self.ended_487} got 487 after CANCEL")
        if self.ok != self.n or self.failed_calls:
            out.append(f"SIPp completed {self.ok}, failed {self.failed_calls}")
        if self.proxy_errors:
            out.append(f"{self.proxy_errors} calls with proxy errors")
        if self.left != 0:
            out.append(f"{self.left} still counted waiting after the CANCELs")
        return out

    def line(self) -> str:
        return (f"{self.n:5d} callers at {self.rate}/s, each waiting {self.wait_s:.1f} s: {self.queued} got 182 and "
                f"the proxy counted {self.waiting} waiting at {self.measured_s:.1f} s; shm "
                f"{self.shm_before / 2**20:.1f} -> {self.shm_at / 2**20:.1f} MB ({self.per_caller_kb:.1f} kB each), "
                f"PSS {self.pss_before_kb / 1024:.0f} -> {self.pss_kb / 1024:.0f} MB; INVITE -> 182 p99 {ms(self.p99_ms)} ms; "
                + ("all ended with 487 after their CANCEL" if self.ended_clean and self.all_waiting
                   else "; ".join(self.problems())))


@dataclass
class Waiting:
    steps: list[WaitStep] = field(default_factory=list)
    stopped: str = ""           # why the steps ended before the list did (budget, shm), if so
    shm_total: int = 0

    @property
    def most(self) -> WaitStep | None:
        """The largest step whose N callers all waited at once."""
        return next((s for s in reversed(self.steps) if s.all_waiting), None)

    @property
    def best(self) -> WaitStep | None:
        """The largest step whose N callers all waited at once and all ended cleanly."""
        return next((s for s in reversed(self.steps) if s.all_waiting and s.ended_clean), None)


def waiting_metric(url: str, queue: str) -> int | None:
    """kemi_queue_waiting_calls for `queue` from the stack's exporter (the dispatcher
    updates it once a second), or None."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode(errors="replace")
    except OSError:
        return None
    m = re.search(r'^kemi_queue_waiting_calls\{[^}]*queue="' + re.escape(queue) + r'"[^}]*\}\s+(\S+)', text, re.M)
    return int(float(m.group(1))) if m else None


def quiet_shm(proc: Process, timeout: float = 20) -> int:
    """shm in use once it stopped moving (ended calls' transactions and dialogs freed)."""
    deadline = time.monotonic() + timeout
    last = shm(proc).get("real_used", 0)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = shm(proc).get("real_used", 0)
        if abs(now - last) < 64 * 1024:
            return now
        last = now
    return last


def waiting_run(stack: Stack, proxy, workdir: Path, plan: "Plan") -> Waiting:
    """Steps of N callers into WAIT_QUEUE (its agents logged out, never registered; max wait
    600 s). Each step places its callers at a steady rate, max(waiting_rate, N / waiting_place_s)
    calls/s, and each caller waits until waiting_window_s after the last one was placed. Once
    all are placed and the proxy counts N waiting: Kamailio's memory. Afterwards, from SIPp's
    files: did all N get 182, and had none of them got a final reply yet at that moment. Then
    every caller CANCELs: did all N get 487, none fail, none stay counted. The steps go
    on while all N waited at once; they stop at the first step where they did not, or when
    the next step would not fit in Kamailio's shm or the time budget."""
    proc = stack.kamailio
    url = stack.exporter.url
    watch = LogWatch(proc.log)
    result = Waiting(shm_total=shm(proc).get("total", 0))
    deadline = time.monotonic() + plan.waiting_budget_s
    per_caller = 0.0
    for n in plan.waiting:
        rate = max(plan.waiting_rate, -(-n // plan.waiting_place_s))
        need = 2 * n / rate + plan.waiting_window_s + 10
        if time.monotonic() + need > deadline:
            result.stopped = f"the {n} step (about {need:.0f} s) did not fit in the time budget"
            break
        before = quiet_shm(proc)
        if per_caller and before + 1.5 * per_caller * n > 0.8 * result.shm_total:
            result.stopped = (f"{n} callers would need about {per_caller * n / 2**20:.0f} MB of Kamailio's "
                              f"{result.shm_total / 2**20:.0f} MB shm")
            break
        s_pss_before = pss_rss(proc)[0]
        watch.new_errors()
        wait_s = n / rate + plan.waiting_window_s  # every caller waits past the measurement
        s = WaitStep(n, rate, wait_s, shm_before=before, pss_before_kb=s_pss_before)
        waiters = sipp_load.Waiters(proxy, CALLER, PASSWORD, WAIT_QUEUE, rate, n, int(wait_s * 1000), workdir, "waiting")
        time.sleep(max(0.0, waiters.started + n / rate - time.monotonic()))
        until = waiters.started + wait_s - 1.0  # the first CANCEL comes after wait_s
        while True:
            s.waiting = waiting_metric(url, "bench-wait")
            if s.waiting == n or time.monotonic() >= until:
                break
            time.sleep(0.2)
        measured_at = time.time()
        s.measured_s = time.monotonic() - waiters.started
        s.shm_at = shm(proc).get("real_used", 0)
        s.pss_kb, _, s.procs = pss_rss(proc)
        end = waiters.finish()
        s.queued, s.ok, s.failed_calls, s.ended_487 = end["queued"], end["ok"], end["failed"], end["ended_487"]
        s.p99_ms = end["p99_ms"]
        replies = waiters.replies_while_waiting()
        s.interrupted = len({call_id for when, call_id, _ in replies if when <= measured_at})
        s.cut_short_s = min((when for when, _, _ in replies), default=waiters.started_epoch) - waiters.started_epoch
        for code in sorted({code for _, _, code in replies}):
            s.cut_short[code] = len({call_id for _, call_id, c in replies if c == code})
        # tm frees ended transactions after its 5 s wait timer (the next step's baseline); the
        # dispatcher's count is refreshed once a second
        time.sleep(6 if n != plan.waiting[-1] else 2)
        s.left = waiting_metric(url, "bench-wait")
        s.proxy_errors = watch.new_errors()
        result.steps.append(s)
        log(f"  waiting: {s.line()} -> {'ok' if s.all_waiting and s.ended_clean else 'NOT clean' if s.all_waiting else 'FAILED'}")
        if not s.all_waiting:
            break
        per_caller = (s.shm_at - s.shm_before) / n
    return result


# ---------------------------------------------------------------- the setups

@dataclass
class Plan:
    rates: list[int]            # rate steps of the call rows
    queue_rates: list[int]      # rate steps of the queue row (20 agents carry far fewer calls)
    step_s: int
    bisect: bool
    waiting: list[int]          # waiting-caller steps (N)
    waiting_rate: int           # calls/s at which each step's callers are placed, at least ...
    waiting_place_s: int        # ... and fast enough to place them all within this time
    waiting_window_s: float     # time after the last caller is placed before the first CANCEL
    waiting_budget_s: float
    rows: set[str]


def provision(settings: Settings) -> None:
    rows = [f"{n}\t{MEMBERS[i + 1] if i + 1 < len(MEMBERS) else '0000'}\t"
            f"{SERVICE if i == 0 else '1'}\t{MEMBERS[0] if i == 0 else '1'}" for i, n in enumerate(MEMBERS)]
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for number in [CALLER, CALLEE, *MEMBERS, *RINGALL_MEMBERS, *AGENTS, *WAIT_AGENTS]:
            store.add_subscriber(conn, number, PASSWORD, settings.realm, f"Bench {number[-2:]}")
        store.import_group(conn, "bench", "\n".join(rows) + "\n")
        groups.save_ringall(conn, "bench-ringall", RINGALL, True)
        groups.set_ringall_members(conn, "bench-ringall", RINGALL_MEMBERS)
        groups.save_queue(conn, "bench-queue", QUEUE, True, strategy="longest_idle", max_calls=1)
        groups.set_queue_agents(conn, "bench-queue", AGENTS)
        groups.save_queue(conn, "bench-wait", WAIT_QUEUE, True, strategy="longest_idle", max_calls=1, max_wait=600)
        groups.set_queue_agents(conn, "bench-wait", WAIT_AGENTS)
        for agent in WAIT_AGENTS:
            groups.set_logged_in(conn, agent, False, "bench-wait")
        # agents (issue 11): a state change reloads nothing; these memberships are new (no
        # shared-memory state yet), so one reload makes the snapshot's logged-out state count
        conn.execute("NOTIFY kemi_config, 'queue_agent'")


def phones(proxy, specs: list[tuple[str, str]], workdir: Path, name: str) -> list[Uas]:
    """One SIPp UAS per (number, scenario), each registered as that number."""
    started = [Uas(scenario, workdir, f"{name}{i + 1}") for i, (_, scenario) in enumerate(specs)]
    time.sleep(0.3)
    for (number, _), phone in zip(specs, started):
        sipp_load.register(proxy, number, PASSWORD, phone.port, workdir)
    return started


def kemi_runs(base: Path, plan: Plan) -> tuple[list[Result], Waiting | None]:
    free = sipp_load.free_port
    # RTP ports below the kernel's ephemeral range (32768-60999), where free_port() finds the
    # SIP, SIPp and other ports: Kamailio and rtpengine both bind with SO_REUSEADDR, so an RTP
    # port equal to Kamailio's SIP port takes over its traffic (SIP silently stops). 20000-29999
    # also stays clear of `make run` (30000-39999) and the e2e tests (40000-49999).
    settings = Settings(sip_port=free(), pg_port=free(), rtpengine_ng=f"127.0.0.1:{free()}",
                        rtpengine_http=f"127.0.0.1:{free()}", metrics_port=free(),
                        rtp_port_min=20000, rtp_port_max=29999, children=4, var_dir=str(base / "kemi"),
                        # SIPp loads from 127.0.0.1 at thousands of requests/s: exempt it from the
                        # per-source flood limit, as an operator would an SBC (README "Security")
                        flood_exempt="127.0.0.1",
                        media_sip=f"127.0.0.1:{free()}")   # media: the stack starts the media service too
    workdir = base / "sipp-kemi"
    workdir.mkdir()
    stack = Stack(settings, durable=False)
    _cleanups.append(stack.stop)
    log(f"KEMI stack: SIP {settings.sip_port}, log {stack.kamailio.log}")
    stack.start()  # everything `make run` starts; the workers pick up provisioning by NOTIFY
    provision(settings)
    proxy = (settings.sip_address, settings.sip_port)
    scenario = sipp_load.caller_scenario(workdir, auth=True, hold_ms=HOLD_MS)
    at_start = memory(stack.kamailio)
    log(f"  memory at start: {at_start}")
    results: list[Result] = []
    first = True
    waiting = None
    if "waiting" in plan.rows:
        # First, on a fresh Kamailio: its PSS then shows what the waiting callers touch.
        log("  callers waiting in one queue:")
        waiting = waiting_run(stack, proxy, workdir, plan)
        log(f"  memory: {memory(stack.kamailio)}")

    def row(key: str, result: Result, specs: list[tuple[str, str]], dial: str, rates: list[int]) -> None:
        nonlocal first
        if key not in plan.rows:
            return
        started = phones(proxy, specs, workdir, key)
        search(result, proxy, stack.kamailio, scenario, dial, rates, plan.step_s, plan.bisect, workdir, f"kemi-{key}")
        for phone in started:
            phone.stop()
        result.memory = memory(stack.kamailio)
        result.notes.append(f"Kamailio memory at start: {at_start}" + (
            "; the waiting-callers measurement ran before this row" if waiting else "")
            if first else "same Kamailio as the rows above")
        first = False
        log(f"  memory: {result.memory}")
        results.append(result)

    row("direct", Result("KEMI proxy, direct call",
                         "the stack as `make run` starts it: digest auth (407 round trip), Python routing, "
                         "rtpengine offer/answer/delete, record-route, call journal"),
        [(CALLEE, "uas_answer.xml")], CALLEE, plan.rates)
    row("hunt", Result("KEMI proxy, service-number hunt, two members busy",
                       "as above, plus a serial hunt: member 1 486, member 2 486, member 3 answers"),
        list(zip(MEMBERS, ["uas_busy.xml", "uas_busy.xml", "uas_answer.xml"])), SERVICE, plan.rates)
    row("ringall", Result("KEMI proxy, ring-all group of 5 members",
                          "as the direct call, plus 5 branches at once (Diversion, display name): member 1 "
                          "answers at once, members 2-5 ring (180) and get CANCEL (200, 487, ACK)"),
        [(n, "uas_answer.xml" if i == 0 else "uas_ring.xml") for i, n in enumerate(RINGALL_MEMBERS)],
        RINGALL, plan.rates)
    row("queue", Result("KEMI proxy, queue of 20 agents",
                        "as the direct call, plus 182 Queued and t_suspend; the dispatcher (100 ms tick) "
                        "offers the longest-idle free agent (1 call each) by t_continue; agents answer at "
                        "once; latency includes the wait for an agent"),
        [(n, "uas_answer.xml") for n in AGENTS], QUEUE, plan.queue_rates)
    for problem in log_problems(stack.kamailio.log):
        log(f"  {stack.kamailio.log.name}: {problem}")
    sipp_load.stop_all()
    stack.stop()
    return results, waiting


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


def waiting_report(w: Waiting, plan: Plan) -> None:
    most, best = w.most, w.best
    last = w.steps[-1] if w.steps else None
    listed = ", ".join(str(n) for n in plan.waiting)
    if last is None:
        how = f"no step ran: {w.stopped or 'nothing to do'}"
    elif not last.all_waiting:
        how = f"steps {listed}; the {last.n} step failed: {'; '.join(last.problems())}"
    elif w.stopped:
        how = f"steps {listed}; stopped before the next: {w.stopped}"
    else:
        how = f"steps {listed}: all callers of every step waited at once; the list ends there"
    open_ended = last is not None and last.all_waiting and not w.stopped
    count = "none" if most is None else (f">= {most.n}" if open_ended and last is most else str(most.n))
    print(f"Callers waiting in one queue at once: {count} ({how}). Each step places N callers at a steady "
          f"rate (at least {plan.waiting_rate}/s, all within {plan.waiting_place_s} s) into a queue whose agents "
          f"are logged out and unregistered (max wait 600 s); all N waited at once if the proxy counted N waiting "
          f"(kemi_queue_waiting_calls) once all were placed, SIPp got N 182 Queued and none had got a final "
          f"reply by then. Each caller waits "
          f"{plan.waiting_window_s:g} s past the last one's placement, then CANCELs.")
    if most is not None:
        print(f"Kamailio with {most.n} callers waiting: shm used {most.shm_at / 2**20:.1f} MB of "
              f"{w.shm_total / 2**20:.0f} MB ({(most.shm_at - most.shm_before) / 2**20:.1f} MB more than just before "
              f"the step: {most.per_caller_kb:.1f} kB per waiting caller), PSS {most.pss_kb / 1024:.0f} MB "
              f"({most.procs} procs; {most.pss_before_kb / 1024:.0f} MB just before the step); "
              f"INVITE -> 182 Queued p99 {ms(most.p99_ms)} ms (includes the 407 round trip).")
    if best is not None and best is most:
        print(f"Ending them: all {best.n} got 487 after their CANCEL, none failed, none left counted waiting.")
    else:
        bad = next((s for s in w.steps if s.all_waiting and not s.ended_clean), None)
        print(f"Largest step that waited at once and also ended cleanly (CANCEL -> 487 for all, no failures): "
              f"{best.n if best else 'none'}." + (f" The {bad.n} step did not end cleanly: {'; '.join(bad.problems())}."
                                                   if bad else ""))
    for s in w.steps:
        print(f"- {s.line()}")


def report(results: list[Result], waiting: Waiting | None, plan: Plan, info: str, load: str, command: str,
           seconds: float) -> None:
    print(f"Machine: {info}; load average {load}. `{command}` took {seconds:.0f} s; {plan.step_s} s per rate step, "
          f"{HOLD_MS} ms hold, UDP, "
          f"Kamailio -n 4 -m 256, SIPp caller and phones on the same machine. Setup latency: SIPp's "
          f"first INVITE sent -> 200 received (KEMI: includes the 407 round trip; queue: also the wait for "
          f"a free agent), on SIPp's coarse clock "
          f"({TICK_MS:.0f} ms ticks here), so '< {TICK_MS:.0f}' is as fine as it resolves.\n")
    print(table(results))
    print()
    for r in results:
        steps = "; ".join(f"{s.rate}/s: {s.failed} of {s.calls} failed, p99 {ms(s.p99_ms)} ms"
                          + ("" if sustained(s) else " (not sustained)") for s in r.steps)
        if r.all_passed:
            r.notes.insert(0, "every step passed; the rate list ends there")
        print(f"- {r.name}: {steps or 'no steps'}." + "".join(f" {n[0].upper()}{n[1:]}." for n in r.notes))
    if waiting is not None:
        print()
        waiting_report(waiting, plan)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--scale"]:   # issue 11: `make bench ARGS='--scale [bench.scale options]'`
        from bench import scale
        return scale.main(argv[1:])
    p = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short steps and fewer rates (under two minutes)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp statistics)")
    p.add_argument("--rows", default=",".join(ROWS),
                   help=f"comma-separated subset of {','.join(ROWS)} (default: all)")
    args = p.parse_args(argv)
    rows = {r.strip() for r in args.rows.split(",") if r.strip()}
    if rows - set(ROWS):
        p.error(f"--rows: unknown {', '.join(sorted(rows - set(ROWS)))}")
    if args.quick:
        plan = Plan(rates=[500, 1000, 2000], queue_rates=[200, 400], step_s=2, bisect=False,
                    waiting=[100, 500], waiting_rate=250, waiting_place_s=2, waiting_window_s=3, waiting_budget_s=40, rows=rows)
    else:
        plan = Plan(rates=[200, 400, 600, 800, 1000, 1300, 1600, 2000, 2500, 3000, 4000],
                    queue_rates=[100, 150, 200, 250, 300, 400], step_s=8, bisect=True,
                    waiting=[100, 250, 500, 1000, 2000], waiting_rate=250, waiting_place_s=2, waiting_window_s=4,
                    waiting_budget_s=150, rows=rows)

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    base = Path(tempfile.mkdtemp(prefix="kemi-bench-"))
    base.chmod(0o755)  # the postgres user must reach its data directory
    info = machine()
    load_start = os.getloadavg()[0]
    started = time.monotonic()
    log(f"bench: {info}, load average {load_start:.2f}; work directory {base}")
    results: list[Result] = []
    waiting = None
    try:
        if rows & {"direct", "hunt", "ringall", "queue", "waiting"}:
            kemi, waiting = kemi_runs(base, plan)
            results += kemi
        if "native" in rows:
            results.append(native_run(base, plan.rates, plan.step_s, plan.bisect))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except (StackError, RuntimeError, psycopg.Error, ProvisioningError) as err:
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
    if args.rows != ",".join(ROWS):
        command += f" --rows {args.rows}" if args.quick else f" ARGS='--rows {args.rows}'"
    load = f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    report(results, waiting, plan, info, load, command, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
