"""SIPp for the benchmark: phones in UAS mode, registrations, and one load step (a caller at
a fixed rate for a fixed number of calls) with its statistics read back from SIPp's files.

Every SIPp process started here is tracked, so `stop_all()` can end them on any exit.
"""
from __future__ import annotations

import csv
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.ports import free_port, udp_block_free

SIPP = "/usr/bin/sipp"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"

_live: list[subprocess.Popen] = []


def media_port() -> int:
    """A base for SIPp's media sockets (it binds base..base+3 even when no media flows)."""
    while True:
        base = free_port()
        if base <= 65000 and udp_block_free(base):
            return base


def render(template: str, workdir: Path, name: str, **values) -> Path:
    """Fill @NAME@ placeholders (SIPp does not substitute keys in attributes)."""
    text = (SCENARIOS / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key.upper()}@", str(value))
    leftover = re.findall(r"@[A-Z_]+@", text)
    assert not leftover, f"{template}: unfilled {leftover}"
    path = workdir / name
    path.write_text(text)
    return path


def caller_scenario(workdir: Path, auth: bool, hold_ms: int) -> Path:
    setup = (SCENARIOS / ("setup_auth.part" if auth else "setup_plain.part")).read_text()
    cseq = 2 if auth else 1
    return render("caller.xml", workdir, f"caller-{'auth' if auth else 'plain'}.xml",
                  setup=setup, hold_ms=hold_ms, invite_cseq=cseq, bye_cseq=cseq + 1)


def waiting_scenario(workdir: Path, wait_ms: int) -> Path:
    setup = (SCENARIOS / "setup_auth.part").read_text()
    return render("caller_wait.xml", workdir, f"caller-wait-{wait_ms}.xml", setup=setup, wait_ms=wait_ms)


def _spawn(cmd: list[str], workdir: Path, log: Path) -> subprocess.Popen:
    out = open(log, "ab")
    proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    _live.append(proc)
    return proc


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc in _live:
        _live.remove(proc)


def stop_all() -> None:
    for proc in list(_live):
        _end(proc)


class Uas:
    """A phone as one SIPp UAS process: answers (or rejects) any number of concurrent calls."""

    def __init__(self, scenario: str, workdir: Path, name: str):
        self.port = free_port()
        self.name = name
        self.errors = workdir / f"{name}.err"
        self.proc = _spawn([SIPP, "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(self.port),
                            "-mp", str(media_port()), "-nostdin", "-trace_err", "-error_file", str(self.errors),
                            "-max_recv_loops", "10000", "-max_sched_loops", "10000"],
                           workdir, workdir / f"{name}.out")

    def stop(self) -> None:
        _end(self.proc)


def register(proxy: tuple[str, int], number: str, password: str, contact_port: int, workdir: Path,
             attempts: int = 3) -> None:
    """Bind `number` to a phone's port; retried, as a just-provisioned number may reach the
    proxy's workers a moment after the database commit."""
    for attempt in range(attempts):
        try:
            return _register(proxy, number, password, contact_port, workdir)
        except RuntimeError:
            if attempt + 1 == attempts:
                raise
            time.sleep(0.5)


def _register(proxy: tuple[str, int], number: str, password: str, contact_port: int, workdir: Path) -> None:
    cmd = [SIPP, "-sf", str(SCENARIOS / "register.xml"), "-i", "127.0.0.1",
           "-p", str(free_port()), "-nostdin", "-m", "1", "-s", number, "-au", number, "-ap", password,
           "-key", "contact_port", str(contact_port), "-timeout", "10s", "-timeout_error",
           "-trace_err", "-error_file", str(workdir / f"register-{number}.err"), f"{proxy[0]}:{proxy[1]}"]
    proc = _spawn(cmd, workdir, workdir / f"register-{number}.out")
    try:
        rc = proc.wait(15)
    except subprocess.TimeoutExpired:
        rc = -1
    _end(proc)
    if rc != 0:
        raise RuntimeError(f"registering {number} failed (SIPp exit {rc}); see {workdir}/register-{number}.err")


@dataclass
class Step:
    """One load step as SIPp saw it."""
    rate: int
    calls: int            # calls the step was to place
    ok: int               # calls SIPp completed as scripted
    wall_s: float         # from start until the last call ended
    mean_ms: float | None  # setup response times (first INVITE -> 200)
    p50_ms: float | None
    p99_ms: float | None
    retrans: int
    proxy_errors: int = 0  # calls with an ERROR in the proxy's log (filled in by bench.run)

    @property
    def failed(self) -> int:
        """Calls SIPp did not complete, plus calls the proxy logged an error for (capped)."""
        return min(self.calls, self.calls - self.ok + self.proxy_errors)

    def line(self) -> str:
        lat = (f"mean {self.mean_ms:.1f} p50 {self.p50_ms:.0f} p99 {self.p99_ms:.0f} ms"
               if self.p50_ms is not None else "no latency")
        return (f"{self.rate:5d} calls/s: {self.ok}/{self.calls} completed, {self.proxy_errors} with proxy "
                f"errors, {self.wall_s:.1f} s, {lat}, {self.retrans} retransmissions")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _final_stats(path: Path) -> dict[str, str]:
    """The last row of SIPp's -trace_stat file (it writes one at exit)."""
    if not path.exists():
        return {}
    rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


def _response_times(workdir: Path, scenario: Path, pid: int) -> list[float]:
    """Every 'setup' response time (ms) from SIPp's -trace_rtt file."""
    path = workdir / f"{scenario.stem}_{pid}_rtt.csv"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines()[1:]:
        parts = line.split(";")
        if len(parts) >= 3 and parts[2].strip() == "setup":
            try:
                out.append(float(parts[1]))
            except ValueError:
                pass
    return out


def load_step(proxy: tuple[str, int], scenario: Path, caller: str, password: str, dial: str,
              rate: int, calls: int, workdir: Path, tag: str) -> Step:
    """Place `calls` calls at `rate` calls/s and wait for them all to end."""
    stats = workdir / f"{tag}-{rate}.csv"
    assert calls % 10 == 0, "whole -rtt_freq batches"
    limit = max(100, rate)  # calls open at once; a healthy proxy needs about rate x 0.1 s
    # A step that overruns its plan by this much has failed anyway: do not wait longer.
    timeout = int(calls / rate * 1.1) + 7
    cmd = [SIPP, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(media_port()),
           "-nostdin", "-s", caller, "-au", caller, "-ap", password, "-key", "dial", dial,
           "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(limit),
           "-recv_timeout", "4000", "-timeout", f"{timeout}s", "-default_behaviors", "all,-abortunexp",
           "-max_recv_loops", "10000", "-max_sched_loops", "10000",
           "-trace_stat", "-stf", str(stats), "-fd", "1",
           "-trace_rtt", "-rtt_freq", "10",  # SIPp drops the last (calls % freq) times
           "-trace_err", "-error_file", str(workdir / f"{tag}-{rate}.err"),
           f"{proxy[0]}:{proxy[1]}"]
    started = time.monotonic()
    proc = _spawn(cmd, workdir, workdir / f"{tag}-{rate}.out")
    try:
        proc.wait(timeout + 15)
    except subprocess.TimeoutExpired:
        pass
    wall = time.monotonic() - started
    pid = proc.pid
    _end(proc)
    final = _final_stats(stats)
    ok = int(final.get("SuccessfulCall(C)", 0) or 0)
    times = _response_times(workdir, scenario, pid)
    return Step(rate=rate, calls=calls, ok=ok, wall_s=wall,
                mean_ms=sum(times) / len(times) if times else None,
                p50_ms=percentile(times, 50), p99_ms=percentile(times, 99),
                retrans=int(final.get("Retransmissions(C)", 0) or 0))


class Waiters:
    """One SIPp caller placing `calls` calls at `rate` calls/s into a queue where nobody
    answers: each waits (182 Queued) for `wait_ms` ms, then hangs up (CANCEL). It writes its
    per-message counts every second (-trace_counts), so the 182s received so far can be read
    while the callers wait."""

    def __init__(self, proxy: tuple[str, int], caller: str, password: str, dial: str, rate: int,
                 calls: int, wait_ms: int, workdir: Path, tag: str):
        assert calls % 10 == 0, "whole -rtt_freq batches"
        self.calls, self.rate, self.workdir = calls, rate, workdir
        self.scenario = waiting_scenario(workdir, wait_ms)
        self.stats = workdir / f"{tag}-{calls}.csv"
        self.timeout = int(2 * calls / rate + wait_ms / 1000) + 20
        cmd = [SIPP, "-sf", str(self.scenario), "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(media_port()),
               "-nostdin", "-s", caller, "-au", caller, "-ap", password, "-key", "dial", dial,
               "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(calls + 100),  # -l above N
               "-recv_timeout", "4000", "-timeout", f"{self.timeout}s", "-default_behaviors", "all,-abortunexp",
               "-max_recv_loops", "10000", "-max_sched_loops", "10000",
               "-trace_stat", "-stf", str(self.stats), "-fd", "1", "-trace_counts",
               "-trace_rtt", "-rtt_freq", "10",
               "-trace_err", "-error_file", str(workdir / f"{tag}-{calls}.err"),
               f"{proxy[0]}:{proxy[1]}"]
        self.started = time.monotonic()
        self.started_epoch = time.time()  # SIPp's error log has epoch times
        self.proc = _spawn(cmd, workdir, workdir / f"{tag}-{calls}.out")

    def received(self, code: str) -> int:
        """How many `code` responses SIPp received so far (all recv elements for it)."""
        row = _final_stats(self.workdir / f"{self.scenario.stem}_{self.proc.pid}_counts.csv")
        return sum(int(v or 0) for k, v in row.items() if re.fullmatch(rf"\d+_{code}_Recv", k.strip()))

    def replies_while_waiting(self) -> list[tuple[float, str, str]]:
        """(time.time(), Call-ID, code) of each final reply a caller got while still waiting,
        i.e. from the proxy before its own CANCEL (SIPp logs them as unexpected messages)."""
        path = self.workdir / f"{self.stats.stem}.err"
        text = path.read_text(errors="replace") if path.exists() else ""
        found = re.findall(r"\t(\d+\.\d+): Continuing call on unexpected message for Call-Id '([^']+)': "
                           r"while pausing \(index \d+\), received 'SIP/2.0 (\d{3})", text)
        return [(float(when), call_id, code) for when, call_id, code in found if code >= "200"]

    def finish(self) -> dict:
        """Wait until every call ended; SIPp's final statistics and setup (INVITE -> 182) times."""
        try:
            self.proc.wait(self.timeout + 15)
        except subprocess.TimeoutExpired:
            pass
        counts = {"queued": self.received("182"), "ended_487": self.received("487")}
        pid = self.proc.pid
        _end(self.proc)
        final = _final_stats(self.stats)
        times = _response_times(self.workdir, self.scenario, pid)
        return {**counts, "ok": int(final.get("SuccessfulCall(C)", 0) or 0),
                "failed": int(final.get("FailedCall(C)", 0) or 0),
                "wall_s": time.monotonic() - self.started,
                "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}
