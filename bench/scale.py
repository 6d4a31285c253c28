"""`make bench-scale`: issue 11's scale benchmark; prints markdown tables, asserts nothing.

For each subscriber count (default 100 and 100,000; `--million` adds 1,000,000) one stack
(tools.stack.Stack, as `make run` starts it) whose database gets the subscribers by COPY
before the stack's processes start, so the stack loads them as it normally does. Then:
  - start-up: the stack is stopped and started again, timed until the first OPTIONS 200
    (Stack.start returns then) and until the first authenticated REGISTER 200;
  - SIP OPTIONS probes at 50/s for a while without changes, then while 10 provisioning
    changes per second (`kemictl subscriber change NUMBER --name ...`: the same function,
    provision.store.change_subscriber, in its own process) are applied; p50/p99/max, lost;
  - direct-call (and hunt) rows: the step search of bench/run.py;
  - Kamailio's private memory per SIP worker (/proc/PID/smaps_rollup, Private_Clean +
    Private_Dirty of the UDP/TCP receivers from `kamcmd core.psx`), PSS sum, shm used.
At the first count: bench/native_equivalent.cfg (auth_db, rtpengine, record-route, registrar
lookup, no Python) against the same PostgreSQL and rtpengine, the same SIPp scenario, the same
rate steps; then a fixed-rate run of each with the CPU per call of Kamailio, rtpengine,
PostgreSQL and SIPp from /proc. At 100,000 (or the largest count): REGISTER/s with digest and
persistence (usrloc db_mode=1), distinct users, then the rest of the users registered, then
Kamailio killed and started again, timed until its contacts are served.

    python -m bench.scale [--million] [--counts 100,100000] [--quick] [--keep]
                          [--rows direct,hunt,probe,native,register]
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import psycopg

from bench import procstat, sipp_load
from bench import run as benchrun
from bench.run import CALLEE, CALLER, MEMBERS, PASSWORD, SERVICE, Result, log, ms, sustained
from bench.sipp_load import SIPP, Uas, free_port, media_port
from kemi.config import ROOT, Settings
from provision import store
from tools.stack import KAMAILIO, Process, Stack, StackError, sip_options

ROWS = ("direct", "hunt", "probe", "native", "register", "restart")
BULK_BASE = 200_000_000          # bulk subscribers: 200000000, 200000001, ...
BENCH_NUMBERS = [CALLER, CALLEE, *MEMBERS]
PROBE_RATE = 50                  # OPTIONS/s
CHANGE_RATE = 10                 # provisioning changes/s
PROBE_TIMEOUT = 10.0             # a probe unanswered this long is lost
START_TIMEOUT = 300              # the loader and Kamailio may take minutes with a million rows

_cleanups: list = []


def bulk_number(i: int) -> str:
    return str(BULK_BASE + i)


def ha1(number: str, realm: str, password: str = PASSWORD) -> str:
    return hashlib.md5(f"{number}:{realm}:{password}".encode()).hexdigest()


def bulk_load(settings: Settings, n: int) -> float:
    """COPY n subscribers (the bench's own numbers first, then bulk numbers), all with the
    bench password; returns the seconds it took."""
    started = time.monotonic()
    numbers = BENCH_NUMBERS + [bulk_number(i) for i in range(max(0, n - len(BENCH_NUMBERS)))]
    with psycopg.connect(settings.database_url, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy("COPY subscriber (number, ha1, display_name, active) FROM STDIN") as copy:
            for start in range(0, len(numbers), 50_000):
                copy.write("".join(f"{num}\t{ha1(num, settings.realm)}\tScale {num[-4:]}\tt\n"
                                   for num in numbers[start:start + 50_000]))
        conn.execute("ANALYZE subscriber")
    return time.monotonic() - started


SHM_MB = Settings().shm_mb     # Kamailio's shared memory; --shm-mb overrides


def kemi_settings(var_dir: Path) -> Settings:
    free = free_port
    return Settings(shm_mb=SHM_MB, sip_port=free(), pg_port=free(), rtpengine_ng=f"127.0.0.1:{free()}",
                    rtpengine_http=f"127.0.0.1:{free()}", metrics_port=free(),
                    rtp_port_min=20000, rtp_port_max=29999, children=4, var_dir=str(var_dir),
                    flood_exempt="127.0.0.1", media_sip=f"127.0.0.1:{free()}")


def patient(stack: Stack) -> None:
    """Longer readiness timeouts: loading a million rows takes the loader (and, on branches
    that load into Kamailio, Kamailio) far beyond the defaults."""
    for proc in (stack.loader, stack.kamailio):
        proc.start = partial(proc.start, timeout=START_TIMEOUT)


# ---------------------------------------------------------------- memory

@dataclass
class Memory:
    worker_private_mb: tuple[float, float, float] = (0, 0, 0)   # min, mean, max over SIP workers
    workers: int = 0
    pss_mb: float = 0
    procs: int = 0
    shm_used_mb: float = 0
    shm_peak_mb: float = 0

    def text(self) -> str:
        lo, mean, hi = self.worker_private_mb
        return (f"{lo:.0f} / {mean:.0f} / {hi:.0f} MB ({self.workers} workers); PSS {self.pss_mb:.0f} MB "
                f"({self.procs} procs); shm {self.shm_used_mb:.0f} MB (peak {self.shm_peak_mb:.0f})")


def rpc(proc: Process, *args: str) -> str:
    return subprocess.run(["kamcmd", "-s", f"unix:{proc.ctl_socket}", *args],
                          capture_output=True, text=True, timeout=30).stdout


def memory(proc: Process) -> Memory:
    workers = procstat.udp_workers(procstat.parse_psx(rpc(proc, "core.psx")))
    private = [procstat.private_kb(pid) / 1024 for pid in workers]
    pss, _rss, count = benchrun.pss_rss(proc)
    m = benchrun.shm(proc)
    return Memory(procstat.summary(private), len(workers), pss / 1024, count,
                  m.get("real_used", 0) / 2**20, m.get("max_used", 0) / 2**20)


# ---------------------------------------------------------------- OPTIONS probes

@dataclass
class ProbeResult:
    sent: int
    latencies_ms: list[float]      # answered probes
    changes: int = 0               # provisioning changes committed during the probes
    change_ms: float = 0           # mean time of one change's transaction
    change_errors: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.sent - len(self.latencies_ms)

    def quantile(self, q: float) -> float | None:
        """Lost probes count as slower than any answered one."""
        values = self.latencies_ms + [float("inf")] * self.lost
        return sipp_load.percentile(values, q)

    def text(self) -> str:
        p50, p99 = self.quantile(50), self.quantile(99)
        top = max(self.latencies_ms) if self.latencies_ms else None
        return (f"p50 {fmt_ms(p50)} / p99 {fmt_ms(p99)} / max {fmt_ms(top)} ms"
                + (f", {self.lost} of {self.sent} lost (> {PROBE_TIMEOUT:.0f} s)" if self.lost else ""))


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v == float("inf"):
        return "lost"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def probe(host: str, port: int, seconds: float, rate: int = PROBE_RATE) -> ProbeResult:
    """OPTIONS to the proxy at `rate`/s for `seconds`; reply times on a monotonic clock."""
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    done = threading.Event()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(0.2)
    lport = sock.getsockname()[1]

    def receive() -> None:
        while not done.is_set():
            try:
                data = sock.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.perf_counter()
            m = re.search(rb"\r\nCall-ID:\s*(\S+)", data, re.I)
            if m:
                got.setdefault(m.group(1).decode(), now)

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    count = int(seconds * rate)
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        tag = uuid.uuid4().hex[:12]
        call_id = f"probe-{tag}"
        msg = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {host}:{lport};branch=z9hG4bK{tag};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:probe@{host}>;tag={tag}\r\nTo: <sip:{host}:{port}>\r\n"
               f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        sent[call_id] = time.perf_counter()
        sock.sendto(msg, (host, port))
    deadline = time.perf_counter() + PROBE_TIMEOUT
    while time.perf_counter() < deadline and len(got) < len(sent):
        time.sleep(0.05)
    done.set()
    reader.join()
    sock.close()
    return ProbeResult(len(sent), [(got[c] - t) * 1000 for c, t in sent.items() if c in got])


def _changer(dsn: str, realm: str, numbers: list[str], rate: int, seconds: float, out) -> None:
    """In its own process: `kemictl subscriber change NUMBER --name ...` at `rate`/s."""
    done, spent, errors = 0, 0.0, []
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            start = time.monotonic()
            for i in range(int(seconds * rate)):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                t = time.monotonic()
                try:
                    store.change_subscriber(conn, random.choice(numbers), realm, display_name=f"Changed {i}")
                    done += 1
                except Exception as err:  # report, keep going
                    errors.append(str(err)[:200])
                spent += time.monotonic() - t
    except Exception as err:
        errors.append(str(err)[:200])
    out.put((done, spent, errors[:3]))


def probe_with_changes(settings: Settings, numbers: list[str], seconds: float) -> ProbeResult:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    changer = ctx.Process(target=_changer, args=(settings.database_url, settings.realm, numbers,
                                                 CHANGE_RATE, seconds, out), daemon=True)
    changer.start()
    result = probe(settings.sip_address, settings.sip_port, seconds)
    try:
        done, spent, errors = out.get(timeout=120)
    except Exception:
        done, spent, errors = 0, 0.0, ["the change process did not report"]
    changer.join(10)
    if changer.is_alive():
        changer.kill()
    result.changes, result.change_ms, result.change_errors = done, spent * 1000 / max(done, 1), errors
    return result


# ---------------------------------------------------------------- native-equivalent baseline

class NativeEquivalent(Process):
    """bench/native_equivalent.cfg on its own port, against the KEMI stack's PostgreSQL and rtpengine."""

    name = "kamailio-native-equivalent"

    def command(self) -> list[str]:
        s = self.settings
        return [KAMAILIO, "-f", str(ROOT / "bench" / "native_equivalent.cfg"), "-DD", "-E",
                "-l", f"udp:{s.sip_address}:{s.sip_port}", "-n", str(s.children),
                "-m", str(s.shm_mb), "-M", str(s.pkg_mb), "-Y", str(self.ctl_socket.parent),
                "-A", f'CTL_SOCK="unix:{self.ctl_socket}"', "-A", f'DBURL="{s.kamailio_db_url}"',
                "-A", f'RTPENGINE_SOCK="udp:{s.rtpengine_ng}"', "-A", f'REALM="{s.realm}"']

    @property
    def ctl_socket(self) -> Path:
        path = Path(self.settings.var_dir) / "run-native" / "kamailio-ctl.sock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def ready(self) -> bool:
        return sip_options(self.settings.sip_address, self.settings.sip_port) == 200


@dataclass
class CpuRun:
    name: str
    rate: int
    calls: int
    ok: int
    p99_ms: float | None
    kamailio_s: float
    rtpengine_s: float
    postgres_s: float
    sipp_s: float
    seconds: float

    def per_call(self, cpu_s: float) -> str:
        return f"{cpu_s * 1000 / max(self.ok, 1):.2f}"


def postgres_pids(stack: Stack) -> list[int]:
    pid = stack.postgres._pid() if stack.postgres else None
    return procstat.tree_pids(pid) if pid else []


def fixed_rate(name: str, stack: Stack, kamailio: Process, proxy, scenario: Path, phones: list[Uas],
               rate: int, seconds: int, workdir: Path) -> CpuRun:
    """A fixed-rate run: CPU of Kamailio (its process group), rtpengine, PostgreSQL (postmaster
    and backends) and SIPp (the caller, reaped by this process, plus the phones) over it."""
    def sample() -> tuple[float, float, float, float, float]:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (procstat.cpu_seconds(procstat.group_pids(kamailio.proc.pid)),
                procstat.cpu_seconds(procstat.tree_pids(stack.rtpengine.proc.pid)),
                procstat.cpu_seconds(postgres_pids(stack)),
                procstat.cpu_seconds([p.proc.pid for p in phones]),
                kids.ru_utime + kids.ru_stime)
    before = sample()
    started = time.monotonic()
    s = sipp_load.load_step(proxy, scenario, CALLER, PASSWORD, CALLEE, rate, rate * seconds, workdir,
                            f"cpu-{name}")
    time.sleep(2)
    after = sample()
    d = [b - a for a, b in zip(before, after)]
    return CpuRun(name, rate, s.calls, s.ok, s.p99_ms, d[0], d[1], d[2], d[3] + d[4], time.monotonic() - started)


# ---------------------------------------------------------------- REGISTER/s and restart

@dataclass
class RegStep:
    rate: int
    count: int
    ok: int
    failed: int
    wall_s: float
    p50_ms: float | None
    p99_ms: float | None
    retrans: int

    @property
    def sustained(self) -> bool:
        return (self.ok == self.count and self.failed == 0 and self.p99_ms is not None
                and self.p99_ms < benchrun.MAX_P99_MS and self.wall_s <= self.count / self.rate * 1.1 + 2)

    def line(self) -> str:
        return (f"{self.rate}/s: {self.ok}/{self.count} registered, {self.failed} failed, {self.wall_s:.1f} s, "
                f"p50 {ms(self.p50_ms)} p99 {ms(self.p99_ms)} ms, {self.retrans} retransmissions"
                + ("" if self.sustained else " (not sustained)"))


def _rtd_times(path: Path, name: str) -> list[float]:
    out = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 3 and parts[2].strip() == name:
                try:
                    out.append(float(parts[1]))
                except ValueError:
                    pass
    return out


def register_step(proxy, numbers: list[str], rate: int, contact_port: int, workdir: Path, tag: str) -> RegStep:
    """REGISTER each of `numbers` once (digest) at `rate`/s from one SIPp."""
    users = workdir / f"{tag}.csv"
    users.write_text("SEQUENTIAL\n" + "".join(f"{n};[authentication username={n} password={PASSWORD}]\n" for n in numbers))
    count = len(numbers) - len(numbers) % 10
    stats = workdir / f"{tag}-stat.csv"
    timeout = int(count / rate * 1.1) + 15
    scenario = workdir / "register_many.xml"
    shutil.copy(sipp_load.SCENARIOS / "register_many.xml", scenario)
    cmd = [SIPP, "-sf", str(scenario), "-inf", str(users), "-i", "127.0.0.1", "-p", str(free_port()),
           "-mp", str(media_port()), "-nostdin", "-key", "contact_port", str(contact_port),
           "-r", str(rate), "-rp", "1000", "-m", str(count), "-l", str(max(100, rate)),
           "-recv_timeout", "4000", "-timeout", f"{timeout}s", "-default_behaviors", "all,-abortunexp",
           "-max_recv_loops", "10000", "-max_sched_loops", "10000",
           "-trace_stat", "-stf", str(stats), "-fd", "1", "-trace_rtt", "-rtt_freq", "10",
           "-trace_err", "-error_file", str(workdir / f"{tag}.err"), f"{proxy[0]}:{proxy[1]}"]
    started = time.monotonic()
    proc = sipp_load._spawn(cmd, workdir, workdir / f"{tag}.out")
    try:
        proc.wait(timeout + 15)
    except subprocess.TimeoutExpired:
        pass
    wall = time.monotonic() - started
    pid = proc.pid
    sipp_load._end(proc)
    final = sipp_load._final_stats(stats)
    times = _rtd_times(workdir / f"{scenario.stem}_{pid}_rtt.csv", "reg")
    return RegStep(rate, count, int(final.get("SuccessfulCall(C)", 0) or 0),
                   int(final.get("FailedCall(C)", 0) or 0), wall,
                   sipp_load.percentile(times, 50), sipp_load.percentile(times, 99),
                   int(final.get("Retransmissions(C)", 0) or 0))


@dataclass
class Registrations:
    steps: list[RegStep] = field(default_factory=list)
    best: RegStep | None = None
    registered: int = 0            # rows in the location table before the restart
    fill_note: str = ""
    memory_before: str = ""
    restart_options_s: float | None = None
    restart_served_s: float | None = None
    restart_users: str = ""
    memory_after: str = ""
    notes: list[str] = field(default_factory=list)


def location_rows(settings: Settings) -> int:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM location").fetchone()[0]


def registrations(stack: Stack, proxy, users: list[str], contact_port: int, rates: list[int], step_s: int,
                  target: int, fill_budget_s: float, caller_scenario: Path, workdir: Path) -> Registrations:
    r = Registrations()
    pos, idx, retried = 0, 0, False
    searching = True
    limit = min(target, len(users))
    deadline = time.monotonic() + fill_budget_s
    recovered(stack.settings)
    # Step search (5 s steps up the rate list; a failed step is retried once after the proxy
    # recovered), then the rest of the users at the best sustained rate, in 20 s chunks.
    while pos < limit and time.monotonic() < deadline:
        rate = rates[idx] if searching else (r.best.rate if r.best else rates[0])
        chunk = users[pos:min(limit, pos + rate * (step_s if searching else 20))]
        chunk = chunk[:len(chunk) - len(chunk) % 10]
        if not chunk:
            break
        pos += len(chunk)
        s = register_step(proxy, chunk, rate, contact_port, workdir, f"reg-{pos}")
        if not searching:
            log(f"  fill: {s.line()}")
            continue
        r.steps.append(s)
        log(f"  REGISTER {s.line()}")
        if s.sustained:
            r.best = s
            idx += 1
            searching = idx < len(rates)
        elif not retried:
            retried = True
            recovered(stack.settings)
        else:
            searching = False
            recovered(stack.settings)
    r.registered = location_rows(stack.settings)
    if r.registered < target:
        r.fill_note = (f"only {r.registered} of {target} contacts registered within {fill_budget_s:.0f} s at "
                       f"{r.best.rate if r.best else rates[0]}/s")
    restart(stack, proxy, caller_scenario, workdir, r)
    return r


def bulk_contacts(settings: Settings, users: list[str], contact_port: int) -> float:
    """Contacts for `users` written straight into usrloc's table (as db_mode=1 would have
    written them), for a restart measurement without registering them first."""
    started = time.monotonic()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO location (ruid, username, contact, expires, callid, cseq, last_modified, "
                      "user_agent, socket) SELECT 'bench-' || u, u, 'sip:' || u || '@127.0.0.1:' || %s || "
                      "';transport=udp', now()::timestamp + interval '1 hour', 'bench-' || u, 2, "
                      "now()::timestamp, 'bench', NULL FROM unnest(%s::text[]) AS u",
                      (str(contact_port), users))
    return time.monotonic() - started


def restart(stack: Stack, proxy, caller_scenario: Path, workdir: Path, r: Registrations) -> None:
    r.memory_before = memory(stack.kamailio).text()
    log(f"  {r.registered} contacts in the location table; memory {r.memory_before}")
    # restart: kill Kamailio's process group, start it again (usrloc preloads the location table)
    with psycopg.connect(stack.settings.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT username FROM location ORDER BY id DESC LIMIT 1").fetchone()
    last = row[0] if row else CALLEE
    kam = stack.kamailio
    os.killpg(kam.proc.pid, signal.SIGKILL)
    kam.proc.wait()
    t0 = time.monotonic()
    try:
        kam.start()     # patient(): returns at its first OPTIONS 200
    except StackError as err:
        r.notes.append(f"restart failed: {err}")
        return
    r.restart_options_s = time.monotonic() - t0
    while time.monotonic() - t0 < 300:
        s = sipp_load.load_step(proxy, caller_scenario, CALLER, PASSWORD, last, 10, 10, workdir, "after-restart")
        if s.ok > 0:
            r.restart_served_s = time.monotonic() - t0
            break
        time.sleep(0.2)
    stats = rpc(kam, "stats.get_statistics", "usrloc:")
    m = re.search(r"registered_users\s*=\s*(\d+)", stats)
    r.restart_users = m.group(1) if m else "?"
    r.memory_after = memory(kam).text()
    log(f"  restart: OPTIONS 200 after {r.restart_options_s:.1f} s, a call to {last} (registered "
        f"before the kill) completed after {fmt_s(r.restart_served_s)}; usrloc users {r.restart_users}")


# ---------------------------------------------------------------- one subscriber count

@dataclass
class Stage:
    n: int
    copy_s: float = 0
    first_start_s: float = 0
    start_s: float | None = None        # second start: stack start -> first OPTIONS 200
    served_s: float | None = None       # ... -> first authenticated REGISTER 200
    memory_idle: Memory | None = None
    memory_after: Memory | None = None
    quiet: ProbeResult | None = None
    changing: ProbeResult | None = None
    recovered_s: float | None = None     # after the changes: until OPTIONS are answered promptly again
    results: list[Result] = field(default_factory=list)
    cpu: list[CpuRun] = field(default_factory=list)
    regs: Registrations | None = None
    problems: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class Plan:
    counts: list[int]
    rows: set[str]
    rates: list[int]
    step_s: int
    probe_s: float
    cpu_rate: int
    cpu_s: int
    reg_rates: list[int]
    reg_step_s: int
    reg_at: int
    reg_target: int
    fill_budget_s: float


def first_register(proxy, number: str, contact_port: int, workdir: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            sipp_load._register(proxy, number, PASSWORD, contact_port, workdir)
            return True
        except RuntimeError:
            time.sleep(0.1)
    return False


def stage(base: Path, n: int, plan: Plan, with_native: bool, with_reg: bool) -> Stage:
    st = Stage(n)
    settings = kemi_settings(base / f"kemi-{n}")
    workdir = base / f"sipp-{n}"
    workdir.mkdir()
    stack = Stack(settings, durable=False)
    patient(stack)
    _cleanups.append(stack.stop)
    if stack.postgres:
        _cleanups.append(stack.postgres.remove)
    log(f"{n} subscribers: SIP {settings.sip_port}, log {stack.kamailio.log}")
    t0 = time.monotonic()

    def load() -> None:
        st.copy_s = bulk_load(settings, n)
        log(f"  COPY of {n} subscribers: {st.copy_s:.1f} s")
    stack.start(before_processes=load, supervise=False)
    st.first_start_s = time.monotonic() - t0
    log(f"  first start (with the COPY): {st.first_start_s:.1f} s")
    # `make run`-equivalent start-up with the rows already there: stop everything, start again
    stack.stop()
    t0 = time.monotonic()
    stack.start(supervise=False)
    st.start_s = time.monotonic() - t0
    proxy = (settings.sip_address, settings.sip_port)
    callee = Uas("uas_answer.xml", workdir, "callee")
    time.sleep(0.3)
    st.served_s = (time.monotonic() - t0) if first_register(proxy, CALLEE, callee.port, workdir, 300) else None
    log(f"  start-up: first OPTIONS 200 after {st.start_s:.1f} s, first REGISTER 200 after {fmt_s(st.served_s)}")
    scenario = sipp_load.caller_scenario(workdir, auth=True, hold_ms=benchrun.HOLD_MS)
    warm = sipp_load.load_step(proxy, scenario, CALLER, PASSWORD, CALLEE, 40, 80, workdir, "warm")
    log(f"  warm-up: {warm.line()}")
    st.memory_idle = memory(stack.kamailio)
    log(f"  memory after warm-up: {st.memory_idle.text()}")
    bulk = [bulk_number(i) for i in range(min(n - len(BENCH_NUMBERS), 100_000))] or [CALLER]
    if "probe" in plan.rows:
        st.quiet = probe(settings.sip_address, settings.sip_port, plan.probe_s)
        log(f"  OPTIONS at {PROBE_RATE}/s, no changes: {st.quiet.text()}")
        st.changing = probe_with_changes(settings, bulk, plan.probe_s)
        log(f"  OPTIONS at {PROBE_RATE}/s with {CHANGE_RATE} changes/s: {st.changing.text()}; "
            f"{st.changing.changes} changes, {st.changing.change_ms:.1f} ms each {st.changing.change_errors}")
        st.recovered_s = recovered(settings)
        log(f"  after the changes: OPTIONS answered again within 300 ms (5 in a row) after {fmt_s(st.recovered_s)}")
    try:
        kemi_rows(st, plan, settings, stack, proxy, scenario, workdir, n)
    except (RuntimeError, StackError, psycopg.Error, store.ProvisioningError) as err:
        st.problems.append(f"rows stopped: {err}")
        log(f"  rows stopped: {err}")
    st.memory_after = memory(stack.kamailio)
    log(f"  memory after the rows: {st.memory_after.text()}")
    if with_native:
        try:
            native_rows(st, plan, settings, stack, proxy, scenario, callee, workdir)
        except (RuntimeError, StackError, psycopg.Error) as err:
            st.problems.append(f"native stopped: {err}")
            log(f"  native stopped: {err}")
    if with_reg and "register" in plan.rows:
        users = [bulk_number(i) for i in range(n - len(BENCH_NUMBERS))]
        try:
            st.regs = registrations(stack, proxy, users, callee.port, plan.reg_rates, plan.reg_step_s,
                                    min(plan.reg_target, len(users)), plan.fill_budget_s, scenario, workdir)
        except (RuntimeError, StackError, psycopg.Error) as err:
            st.problems.append(f"registrations stopped: {err}")
            log(f"  registrations stopped: {err}")
    if with_reg and "restart" in plan.rows and "register" not in plan.rows:
        users = [bulk_number(i) for i in range(min(n - len(BENCH_NUMBERS), plan.reg_target))]
        st.regs = Registrations()
        took = bulk_contacts(settings, users, callee.port)
        st.regs.registered = location_rows(settings)
        st.regs.fill_note = f"written into the location table by one INSERT in {took:.1f} s, not registered"
        try:
            restart(stack, proxy, scenario, workdir, st.regs)
        except (RuntimeError, StackError, psycopg.Error) as err:
            st.problems.append(f"restart stopped: {err}")
    st.problems += [f"kemi: {p}" for p in benchrun.log_problems(stack.kamailio.log)]
    sipp_load.stop_all()
    stack.stop()
    if stack.postgres:
        stack.postgres.remove()
    return st


def recovered(settings: Settings, timeout: float = 180) -> float | None:
    """Seconds until OPTIONS are answered within 300 ms five times in a row."""
    t0, streak = time.monotonic(), 0
    while time.monotonic() - t0 < timeout:
        streak = streak + 1 if sip_options(settings.sip_address, settings.sip_port) == 200 else 0
        if streak >= 5:
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def kemi_rows(st: Stage, plan: Plan, settings: Settings, stack: Stack, proxy, scenario: Path, workdir: Path,
              n: int) -> None:
    if "direct" in plan.rows:
        r = Result("KEMI proxy, direct call", "")
        benchrun.search(r, proxy, stack.kamailio, scenario, CALLEE, plan.rates, plan.step_s, False, workdir,
                        f"kemi-direct-{n}")
        st.results.append(r)
    if "hunt" in plan.rows:
        rows = [f"{num}\t{MEMBERS[i + 1] if i + 1 < len(MEMBERS) else '0000'}\t"
                f"{SERVICE if i == 0 else '1'}\t{MEMBERS[0] if i == 0 else '1'}" for i, num in enumerate(MEMBERS)]
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            store.import_group(conn, "bench", "\n".join(rows) + "\n")
        time.sleep(1)
        phones = benchrun.phones(proxy, list(zip(MEMBERS, ["uas_busy.xml", "uas_busy.xml", "uas_answer.xml"])),
                                 workdir, "hunt")
        r = Result("KEMI proxy, service-number hunt", "")
        benchrun.search(r, proxy, stack.kamailio, scenario, SERVICE, plan.rates, plan.step_s, False, workdir,
                        f"kemi-hunt-{n}")
        for phone in phones:
            phone.stop()
        st.results.append(r)


def native_rows(st: Stage, plan: Plan, settings: Settings, stack: Stack, proxy, scenario: Path, callee: Uas,
                workdir: Path) -> None:
    native_settings = Settings(sip_port=free_port(), children=settings.children, var_dir=settings.var_dir,
                               pg_port=settings.pg_port, dsn=settings.dsn, rtpengine_ng=settings.rtpengine_ng,
                               realm=settings.realm)
    native = NativeEquivalent(native_settings)
    _cleanups.append(native.stop)
    native.start()
    nproxy = (native_settings.sip_address, native_settings.sip_port)
    sipp_load.register(nproxy, CALLEE, PASSWORD, callee.port, workdir)
    warm = sipp_load.load_step(nproxy, scenario, CALLER, PASSWORD, CALLEE, 40, 80, workdir, "native-warm")
    log(f"  native-equivalent warm-up: {warm.line()}")
    r = Result("Native-equivalent kamailio.cfg", "")
    benchrun.search(r, nproxy, native, scenario, CALLEE, plan.rates, plan.step_s, False, workdir, "native-eq")
    st.results.append(r)
    # fixed-rate CPU, alternating: KEMI, native, KEMI, native
    for i in range(2):
        for name, kam, prx in (("kemi", stack.kamailio, proxy), ("native", native, nproxy)):
            c = fixed_rate(f"{name}{i}", stack, kam, prx, scenario, [callee], plan.cpu_rate, plan.cpu_s, workdir)
            c.name = name
            st.cpu.append(c)
            log(f"  CPU at {c.rate}/s, {name}: {c.ok}/{c.calls} ok, p99 {ms(c.p99_ms)} ms; per call ms: "
                f"Kamailio {c.per_call(c.kamailio_s)}, rtpengine {c.per_call(c.rtpengine_s)}, "
                f"PostgreSQL {c.per_call(c.postgres_s)}, SIPp {c.per_call(c.sipp_s)}")
    st.problems += [f"native: {p}" for p in benchrun.log_problems(native.log)]
    native.stop()


# ---------------------------------------------------------------- output

def best_text(r: Result | None) -> str:
    if r is None:
        return "-"
    b = r.best
    if b is None:
        return "none sustained"
    return f"{'>= ' if r.all_passed else ''}{b.rate} ({ms(b.p50_ms)} / {ms(b.p99_ms)})"


def row_result(st: Stage, prefix: str) -> Result | None:
    return next((r for r in st.results if r.name.startswith(prefix)), None)


def report(stages: list[Stage], plan: Plan, info: str, load: str, command: str, seconds: float) -> None:
    print(f"Machine: {info}; load average {load}. `{command}` took {seconds:.0f} s. Kamailio -n 4 -m {SHM_MB}; "
          f"rate steps {', '.join(map(str, plan.rates))} calls/s of {plan.step_s} s each (sustained: < 0.1 % "
          f"failed, p99 < 500 ms, on time; bench/README.md); OPTIONS probes at {PROBE_RATE}/s for "
          f"{plan.probe_s:g} s, changes `kemictl subscriber change N --name X` (its function, one process) at "
          f"{CHANGE_RATE}/s on random subscribers; probe times on a monotonic clock (not SIPp's 4 ms tick).\n")
    print("| Subscribers | Start to first OPTIONS 200 / first REGISTER 200 (s) | Direct call calls/s (p50 / p99 ms) "
          "| Hunt calls/s (p50 / p99 ms) | OPTIONS no changes: p50 / p99 / max (ms) | OPTIONS with 10 changes/s: "
          "p50 / p99 / max (ms) | Private memory per SIP worker min / mean / max; PSS; shm |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for st in stages:
        if st.error:
            print(f"| {st.n:,} | failed: {st.error} | | | | | |")
            continue
        start = f"{st.start_s:.1f} / {st.served_s:.1f}" if st.start_s is not None and st.served_s else (
            f"{st.start_s} / never" if st.start_s is not None else "-")
        quiet = st.quiet.text() if st.quiet else "-"
        chg = (st.changing.text() + f" ({st.changing.changes} changes)") if st.changing else "-"
        mem = st.memory_after.text() if st.memory_after else "-"
        print(f"| {st.n:,} | {start} | {best_text(row_result(st, 'KEMI proxy, direct'))} | "
              f"{best_text(row_result(st, 'KEMI proxy, service'))} | {quiet} | {chg} | {mem} |")
    print()
    for st in stages:
        print(f"- {st.n:,} subscribers: after the changes, OPTIONS answered within 300 ms again after "
              f"{fmt_s(st.recovered_s)}; COPY {st.copy_s:.1f} s; first start including the COPY and migrations "
              f"{st.first_start_s:.1f} s; memory after the warm-up "
              f"{st.memory_idle.text() if st.memory_idle else '-'}.")
        for r in st.results:
            steps = "; ".join(f"{s.rate}/s: {s.failed} of {s.calls} failed, p99 {ms(s.p99_ms)} ms"
                              + ("" if sustained(s) else " (not sustained)") for s in r.steps)
            cpu = "; ".join(n for n in r.notes if "CPU" in n)
            print(f"  - {r.name}: {steps or 'no steps'}. Kamailio CPU per completed call: {cpu}.")
        if st.changing and st.changing.change_errors:
            print(f"  - change errors: {st.changing.change_errors}")
        for p in st.problems:
            print(f"  - log: {p}")
    native_stage = next((st for st in stages if st.cpu), None)
    if native_stage:
        st = native_stage
        kemi, native = row_result(st, "KEMI proxy, direct"), row_result(st, "Native")
        print(f"\nPython routing against the native-equivalent kamailio.cfg ({st.n:,} subscribers, same stack's "
              f"PostgreSQL and rtpengine, the same SIPp caller scenario with digest auth):\n")
        print("| Setup | Max calls/s (p50 / p99 ms) | Fixed-rate run | Kamailio CPU ms/call | rtpengine | "
              "PostgreSQL | SIPp (caller + phone) |")
        print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
        for c in st.cpu:
            r = kemi if c.name == "kemi" else native
            label = "KEMI proxy (Python), direct call" if c.name == "kemi" else "native_equivalent.cfg"
            print(f"| {label} | {best_text(r)} | {c.rate}/s x {c.calls // c.rate} s: {c.ok}/{c.calls} ok, "
                  f"p99 {ms(c.p99_ms)} ms | {c.per_call(c.kamailio_s)} | {c.per_call(c.rtpengine_s)} | "
                  f"{c.per_call(c.postgres_s)} | {c.per_call(c.sipp_s)} |")
        if kemi and native and kemi.best and native.best:
            ratio = kemi.best.rate / native.best.rate
            print(f"\nPython direct call / native-equivalent calls/s: {kemi.best.rate} / {native.best.rate} = "
                  f"{ratio:.2f}x (goal >= 0.8x){' (native passed every step: a lower bound on its maximum)' if native.all_passed else ''}.")
        ks = [c.kamailio_s / max(c.ok, 1) for c in st.cpu if c.name == "kemi"]
        ns = [c.kamailio_s / max(c.ok, 1) for c in st.cpu if c.name == "native"]
        if ks and ns:
            print(f"Kamailio CPU per call, mean of the fixed-rate runs: KEMI {sum(ks) / len(ks) * 1000:.2f} ms, "
                  f"native {sum(ns) / len(ns) * 1000:.2f} ms ({sum(ks) / sum(ns):.2f}x).")
    for st in stages:
        if st.regs:
            r = st.regs
            if r.steps:
                print(f"\nREGISTER with digest and persistence (usrloc db_mode=1), {st.n:,} subscribers, distinct "
                  f"users, one SIPp: best sustained "
                  f"{r.best.rate if r.best else 'none'}/s (goal >= 1,000/s). Steps: "
                  + "; ".join(s.line() for s in r.steps) + ".")
            print(f"Contacts registered before the restart: {r.registered:,}"
                  + (f" ({r.fill_note})" if r.fill_note else "") + f"; Kamailio then: {r.memory_before}.")
            print(f"Restart (Kamailio's process group killed, started again; usrloc preloads the location table): "
                  f"first OPTIONS 200 after {fmt_s(r.restart_options_s)}, first call to a contact registered before "
                  f"the kill completed after {fmt_s(r.restart_served_s)}; usrloc registered_users "
                  f"{r.restart_users}; Kamailio then: {r.memory_after}." + "".join(f" {n}." for n in r.notes))


def fmt_s(v: float | None) -> str:
    return "never" if v is None else f"{v:.1f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--counts", default="100,100000", help="subscriber counts (comma-separated)")
    p.add_argument("--million", action="store_true", help="add 1,000,000 subscribers to --counts")
    p.add_argument("--quick", action="store_true", help="shorter steps and fewer rates")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--rows", default=",".join(ROWS), help=f"subset of {','.join(ROWS)}")
    p.add_argument("--reg-at", type=int, default=100_000,
                   help="subscriber count whose stage measures REGISTER/s and the restart")
    p.add_argument("--shm-mb", type=int, default=SHM_MB, help=f"Kamailio's shared memory (default {SHM_MB})")
    args = p.parse_args(argv)
    globals()["SHM_MB"] = args.shm_mb
    counts = [int(c.replace("_", "")) for c in args.counts.split(",") if c.strip()]
    if args.million and 1_000_000 not in counts:
        counts.append(1_000_000)
    rows = {r.strip() for r in args.rows.split(",") if r.strip()}
    if rows - set(ROWS):
        p.error(f"--rows: unknown {', '.join(sorted(rows - set(ROWS)))}")
    if args.quick:
        plan = Plan(counts, rows, rates=[100, 300, 600, 1000], step_s=3, probe_s=6, cpu_rate=50, cpu_s=5,
                    reg_rates=[500, 1000, 1500], reg_step_s=3, reg_at=args.reg_at, reg_target=100_000,
                    fill_budget_s=240)
    else:
        plan = Plan(counts, rows, rates=[50, 100, 150, 250, 400, 600, 800, 1000, 1300, 1600, 2000, 2500], step_s=5,
                    probe_s=10, cpu_rate=50, cpu_s=10, reg_rates=[100, 250, 500, 1000, 1500, 2000, 3000], reg_step_s=5,
                    reg_at=args.reg_at, reg_target=100_000, fill_budget_s=400)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    base = Path(tempfile.mkdtemp(prefix="kemi-scale-"))
    base.chmod(0o755)
    info = benchrun.machine()
    load_start = os.getloadavg()[0]
    started = time.monotonic()
    log(f"bench.scale: {info}, load average {load_start:.2f}; work directory {base}")
    stages: list[Stage] = []
    reg_at = args.reg_at if args.reg_at in counts else max(counts)
    try:
        for i, n in enumerate(counts):
            try:
                stages.append(stage(base, n, plan, with_native=i == 0 and "native" in rows,
                                    with_reg=n == reg_at and bool({"register", "restart"} & rows)))
            except (StackError, RuntimeError, psycopg.Error) as err:
                log(f"  {n}: error: {err}")
                stages.append(Stage(n, error=str(err)[:300]))
            finally:
                sipp_load.stop_all()
                for cleanup in reversed(_cleanups):
                    try:
                        cleanup()
                    except Exception as err:
                        log(f"cleanup: {err}")
                _cleanups.clear()
            log(f"  load average now {os.getloadavg()[0]:.2f}")
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    command = "make bench-scale" + (f" ARGS='{' '.join(argv if argv is not None else sys.argv[1:])}'"
                                    if (argv if argv is not None else sys.argv[1:]) else "")
    report(stages, plan, info, f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end", command,
           time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
