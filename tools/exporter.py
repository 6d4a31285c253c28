"""The proxy's Prometheus endpoint: `python -m tools.exporter` serves /metrics over HTTP.

Kamailio's SIP workers must not run threads or HTTP servers (see ../shared/DESIGN.md), so
they only write their metrics into prometheus_client's multiprocess files; this separate
process sums those files on each scrape (MultiProcessCollector) and adds what it probes
itself at that moment: rtpengine (NG ping), PostgreSQL (SELECT 1) and Kamailio's own
statistics over its control socket (registered contacts, active calls, shared memory).
Every metric name comes from kemi/metrics.py. tools/stack.py starts and stops it with the
stack; settings: KEMI_METRICS_ADDRESS, KEMI_METRICS_PORT (and the KEMI_* it probes).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

from kemi.config import ROOT, Settings
from tools.stack import Process

STAT_RE = re.compile(r"^\s*([\w.:-]+)\s*=\s*(-?\d+(?:\.\d+)?)\s*$", re.M)


def metrics_dir(settings: Settings) -> Path:
    return Path(settings.var_dir) / "metrics"


def fresh_metrics_dir(settings: Settings) -> Path:
    """The multiprocess directory, emptied: values of an earlier run must not be summed in."""
    path = metrics_dir(settings)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def ctl_socket(settings: Settings) -> Path:
    return Path(settings.var_dir) / "run" / "kamailio-ctl.sock"


# ------------------------------------------------------------------ probes

def probe_rtpengine(address: str, timeout: float = 0.5) -> tuple[float, float | None]:
    from rtpengine.ng import NgClient, NgError
    started = time.monotonic()
    try:
        ok = NgClient(address, timeout=timeout, retries=0).ping()
    except (NgError, OSError, ValueError):
        ok = False
    return (1.0, time.monotonic() - started) if ok else (0.0, None)


def probe_database(dsn: str, timeout: int = 2) -> tuple[float, float | None]:
    import psycopg
    started = time.monotonic()
    try:
        with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()
    except (psycopg.Error, OSError):
        return 0.0, None
    return 1.0, time.monotonic() - started


def kamailio_stats(socket_path: Path, timeout: float = 3) -> dict[str, float] | None:
    """Kamailio's statistics ('group:name' -> value) over its control socket, or None."""
    try:
        out = subprocess.run(["kamcmd", "-s", f"unix:{socket_path}", "stats.get_statistics", "all"],
                             capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return {name: float(value) for name, value in STAT_RE.findall(out.stdout)}


class ProbeCollector:
    """Collected on every scrape: what the exporter measures itself."""

    def __init__(self, settings: Settings, socket_path: Path):
        self.settings = settings
        self.socket_path = socket_path

    def collect(self):
        from kemi import metrics
        values: dict[str, float | None] = {}
        values["rtpengine_up"], values["rtpengine_ping_seconds"] = probe_rtpengine(self.settings.rtpengine_ng)
        values["database_up"], values["database_ping_seconds"] = probe_database(self.settings.database_url)
        stats = kamailio_stats(self.socket_path)
        values["kamailio_up"] = 0.0 if stats is None else 1.0
        for key, stat in metrics.KAMAILIO_STATS.items():
            values[key] = (stats or {}).get(stat)
        from tools.supervise import read_media_gate, read_restarts
        from kemi.kamailio_stats import families   # phones: every Kamailio statistic, Prometheus names
        return (metrics.probe_families(values) + families(stats or {})
                + [metrics.restart_family(read_restarts(self.settings.var_dir))]
                + metrics.media_gate_families(read_media_gate(self.settings.var_dir)))   # faults


def registry(settings: Settings, directory: Path, socket_path: Path):
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(directory))
    reg.register(ProbeCollector(settings, socket_path))
    from tools.media_metrics import MediaCollector   # media: var/run/media-stats.json
    reg.register(MediaCollector(settings))
    return reg


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve(settings: Settings, directory: Path, socket_path: Path) -> None:
    from prometheus_client import make_wsgi_app
    app = make_wsgi_app(registry(settings, directory, socket_path))
    httpd = make_server(settings.metrics_address, settings.metrics_port, app, handler_class=_QuietHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"exporter: http://{settings.metrics_address}:{settings.metrics_port}/metrics "
          f"(multiprocess files in {directory})", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    p = argparse.ArgumentParser(prog="tools.exporter", description=__doc__.split("\n")[0])
    p.add_argument("--metrics-dir", default=os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(metrics_dir(settings)),
                   help="prometheus_client multiprocess directory Kamailio writes to")
    p.add_argument("--ctl-socket", default=str(ctl_socket(settings)), help="Kamailio's binrpc control socket")
    args = p.parse_args(argv)
    directory = Path(args.metrics_dir)
    directory.mkdir(parents=True, exist_ok=True)
    serve(settings, directory, Path(args.ctl_socket))
    return 0


# ------------------------------------------------------------------ for tools/stack.py

class Exporter(Process):
    """The exporter as a stack process (tools/stack.py)."""

    name = "exporter"

    @property
    def url(self) -> str:
        return f"http://{self.settings.metrics_address}:{self.settings.metrics_port}/metrics"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tools.exporter", "--metrics-dir", str(metrics_dir(self.settings)),
                "--ctl-socket", str(ctl_socket(self.settings))]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.to_env())
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)   # it reads the files; it writes none
        env["PYTHONPATH"] = str(ROOT)
        return env

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as resp:
                return resp.status == 200
        except OSError:
            return False


if __name__ == "__main__":
    sys.exit(main())
