"""Benchmark rows for call flows (issue 10): what a flow and a caller-name lookup add to
the setup latency of a DID call, at a fixed call rate, beside the same DID without a flow.

    .venv/bin/python -m bench.flows [--rate 50] [--calls 400] [--keep]

Rows (each: SIPp as the carrier, no digest, a fresh DID call per call, 50 ms hold):
  DID -> SIP number                     no flow (today's DID routing)
  DID -> flow: time -> SIP number       the flow engine without HTTP
  ... -> lookup (cache miss) -> SIP     a new caller number every call: t_suspend, the flow
                                        helper's HTTP GET to a local server, SIP MESSAGE back,
                                        t_continue
  ... -> lookup (cache hit)  -> SIP     one caller number, name already cached: no suspend
  DID -> queue of 10 agents             no flow
  DID -> flow: time -> lookup (miss) -> queue of 10 agents   (the issue's row)
Latency: SIPp's first INVITE to 200 (4 ms clock tick). Prints a markdown table; asserts nothing.
"""
from __future__ import annotations

import argparse
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench import sipp_load
from bench.sipp_load import SIPP, SCENARIOS, Uas, percentile
from kemi.config import Settings
from provision import flows, groups, store, trunks
from tools.stack import Stack

PASSWORD = "bench-pass-1"
AGENT = "66000001"
QUEUE_AGENTS = [f"660001{i:02d}" for i in range(10)]
QUEUE = "6600"
CARRIER_IP = "127.0.0.1"        # the carrier is SIPp on this address; phones only receive calls


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class NameServer:
    """The CRM a lookup asks: answers every GET at once with a name."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = b"Bench Caller\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/name?number={{caller}}"


def flow_doc(lookup_url: str | None, target: dict) -> dict:
    nodes: dict = {"hours": {"type": "time", "hours": {"mon-sun": ["00:00-24:00"]},
                             "next": {"open": "who" if lookup_url else "go", "closed": "go"}}}
    if lookup_url:
        nodes["who"] = {"type": "lookup", "url": lookup_url, "ttl": 3600, "timeout": 1.5, "next": "go"}
    nodes["go"] = target
    return {"timezone": "Europe/Riga", "start": "hours", "nodes": nodes}


def provision(settings: Settings, lookup_url: str) -> dict[str, str]:
    """DIDs per row; returns row key -> DID."""
    dids = {"plain": "4990000001", "flow": "4990000002", "miss": "4990000003", "hit": "4990000004",
            "queue": "4990000005", "queue_flow": "4990000006"}
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for number in [AGENT, *QUEUE_AGENTS]:
            store.add_subscriber(conn, number, PASSWORD, settings.realm)
        groups.save_queue(conn, "bench-flow-queue", QUEUE, True, strategy="longest_idle", max_calls=1)
        groups.set_queue_agents(conn, "bench-flow-queue", QUEUE_AGENTS)
        trunks.save_trunk(conn, "bench-carrier", [CARRIER_IP], "udp", False, False, None, create=True)
        for key, did in dids.items():
            trunks.save_did(conn, did, "bench-carrier", QUEUE if key.startswith("queue") else AGENT, "", "", None)
        sip = {"type": "sip", "number": AGENT}
        queue = {"type": "queue", "number": QUEUE}
        flows.import_flow(conn, dids["flow"], flow_doc(None, sip))
        flows.import_flow(conn, dids["miss"], flow_doc(lookup_url, sip))
        flows.import_flow(conn, dids["hit"], flow_doc(lookup_url, sip))
        flows.import_flow(conn, dids["queue_flow"], flow_doc(lookup_url, queue))
        for did in dids.values():
            assert did in store.load_directory(conn).dids
    return dids


def caller_scenario(workdir: Path, from_user: str, name: str) -> Path:
    """bench/scenarios/caller.xml with a plain INVITE whose caller number is `from_user`
    (SIPp keywords allowed, e.g. 03[call_number] for a new caller every call)."""
    setup = (SCENARIOS / "setup_plain.part").read_text()
    text = sipp_load.render("caller.xml", workdir, name, setup=setup, hold_ms=50, invite_cseq=1, bye_cseq=2).read_text()
    text = text.replace("[service]", from_user)
    path = workdir / name
    path.write_text(text)
    return path


@dataclass
class Row:
    name: str
    step: sipp_load.Step | None = None

    def cells(self) -> str:
        s = self.step
        if s is None:
            return f"| {self.name} | - | - | - |"
        return (f"| {self.name} | {s.ok}/{s.calls} | {_ms(s.p50_ms)} / {_ms(s.p99_ms)} | "
                f"{_ms(s.mean_ms, 1)} |")


def _ms(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def step(proxy, scenario: Path, dial: str, rate: int, calls: int, workdir: Path, tag: str) -> sipp_load.Step:
    """load_step without digest (a carrier), from CARRIER_IP."""
    stats = workdir / f"{tag}.csv"
    timeout = int(calls / rate * 1.1) + 7
    cmd = [SIPP, "-sf", str(scenario), "-i", CARRIER_IP, "-p", str(sipp_load.free_port()),
           "-mp", str(sipp_load.media_port()), "-nostdin", "-key", "dial", dial,
           "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(max(100, rate)),
           "-recv_timeout", "4000", "-timeout", f"{timeout}s", "-default_behaviors", "all,-abortunexp",
           "-trace_stat", "-stf", str(stats), "-fd", "1", "-trace_rtt", "-rtt_freq", "10",
           "-trace_err", "-error_file", str(workdir / f"{tag}.err"), f"{proxy[0]}:{proxy[1]}"]
    started = time.monotonic()
    proc = sipp_load._spawn(cmd, workdir, workdir / f"{tag}.out")
    try:
        proc.wait(timeout + 15)
    except subprocess.TimeoutExpired:
        pass
    wall = time.monotonic() - started
    sipp_load._end(proc)
    final = sipp_load._final_stats(stats)
    times = sipp_load._response_times(workdir, scenario, proc.pid)
    return sipp_load.Step(rate=rate, calls=calls, ok=int(final.get("SuccessfulCall(C)", 0) or 0), wall_s=wall,
                          mean_ms=sum(times) / len(times) if times else None, p50_ms=percentile(times, 50),
                          p99_ms=percentile(times, 99), retrans=int(final.get("Retransmissions(C)", 0) or 0))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.flows", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=int, default=50, help="calls per second (default 50)")
    p.add_argument("--calls", type=int, default=400, help="calls per row, a multiple of 10 (default 400)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="kemi-bench-flows-"))
    base.chmod(0o755)
    free = sipp_load.free_port
    settings = Settings(sip_port=free(), pg_port=free(), rtpengine_ng=f"127.0.0.1:{free()}",
                        rtpengine_http=f"127.0.0.1:{free()}", metrics_port=free(),
                        rtp_port_min=20000, rtp_port_max=29999, children=4, var_dir=str(base / "kemi"))
    workdir = base / "sipp"
    workdir.mkdir()
    names = NameServer()
    stack = Stack(settings, durable=False)
    rows: list[Row] = []
    try:
        stack.start()
        log(f"stack: SIP {settings.sip_port}, logs {base / 'kemi' / 'log'}")
        dids = provision(settings, names.url)
        proxy = (settings.sip_address, settings.sip_port)
        phone = Uas("uas_answer.xml", workdir, "agent")
        agents = [Uas("uas_answer.xml", workdir, f"q{i}") for i in range(len(QUEUE_AGENTS))]
        time.sleep(0.3)
        sipp_load.register(proxy, AGENT, PASSWORD, phone.port, workdir)
        for number, uas in zip(QUEUE_AGENTS, agents):
            sipp_load.register(proxy, number, PASSWORD, uas.port, workdir)
        fixed = caller_scenario(workdir, "0301234567", "caller-fixed.xml")
        fresh = caller_scenario(workdir, "0309[call_number]", "caller-fresh.xml")
        plan = [("DID -> SIP number (no flow)", fixed, "plain"),
                ("DID -> flow: time routing -> SIP number", fixed, "flow"),
                ("DID -> flow: time -> caller-name lookup, cache miss (new caller each call) -> SIP number", fresh, "miss"),
                ("DID -> flow: time -> caller-name lookup, cache hit -> SIP number", fixed, "hit"),
                ("DID -> queue of 10 agents (no flow)", fixed, "queue"),
                ("DID -> flow: time -> caller-name lookup, cache miss -> queue of 10 agents", fresh, "queue_flow")]
        # warm-up: every worker loads its snapshot; the "hit" caller's name gets cached
        step(proxy, fixed, dids["hit"], 20, 40, workdir, "warm-hit")
        step(proxy, fixed, dids["plain"], 20, 40, workdir, "warm-plain")
        for name, scenario, key in plan:
            log(f"row: {name}")
            result = step(proxy, scenario, dids[key], args.rate, args.calls, workdir, key)
            log(f"  {result.line()}")
            rows.append(Row(name, result))
        phone.stop()
        for uas in agents:
            uas.stop()
    finally:
        sipp_load.stop_all()
        stack.stop()
        names.server.shutdown()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            log(f"kept {base}")
    print(f"Flow rows: {args.rate} calls/s, {args.calls} calls per row, 50 ms hold, UDP, carrier without digest, "
          f"Kamailio -n {settings.children}")
    print()
    print("| Setup | Calls completed | Setup latency p50 / p99 (ms) | mean (ms) |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print(row.cells())
    return 0


if __name__ == "__main__":
    sys.exit(main())
