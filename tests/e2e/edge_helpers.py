"""Shared by the test_security_*.py files: metrics, log checks, liveness."""
from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from tools.stack import sip_options


def metric(proxy, name: str, **labels) -> float:
    """Sum of a metric's samples with these labels, read from the exporter."""
    url = f"http://{proxy.settings.metrics_address}:{proxy.settings.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if not m:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def log_text(proxy) -> str:
    return Path(proxy.stack.kamailio.log).read_text(errors="replace")


def tracebacks(proxy) -> int:
    return log_text(proxy).count("Traceback")


def alive(proxy) -> bool:
    return sip_options(*proxy.address, timeout=2) == 200
