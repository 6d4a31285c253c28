"""CPU and memory of processes from /proc, for the scale benchmark (bench/scale.py).

Pure parsers (`parse_stat`, `parse_smaps_rollup`, `parse_psx`, `summary`) are unit-tested in
tests/unit/test_bench_procstat.py; the readers around them tolerate processes that vanish.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    pgid: int
    cpu_ticks: int   # utime + stime


def parse_stat(text: str) -> Stat:
    """One /proc/PID/stat line (the command name may hold spaces and parentheses)."""
    head, rest = text.rsplit(")", 1)
    fields = rest.split()
    return Stat(pid=int(head.split("(", 1)[0]), ppid=int(fields[1]), pgid=int(fields[2]),
                cpu_ticks=int(fields[11]) + int(fields[12]))


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """kB fields of /proc/PID/smaps_rollup: Rss, Pss, Private_Clean, Private_Dirty, ..."""
    return {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}


def parse_psx(text: str) -> list[tuple[int, str]]:
    """`kamcmd core.psx` output -> [(pid, description)] in the order printed."""
    out = []
    for block in re.split(r"\n(?=\{)|^\{", text.strip(), flags=re.M):
        pid = re.search(r"\bPID:\s*(\d+)", block)
        dsc = re.search(r"\bDSC:\s*(.*)", block)
        if pid:
            out.append((int(pid.group(1)), dsc.group(1).strip() if dsc else ""))
    return out


def udp_workers(psx: list[tuple[int, str]]) -> list[int]:
    """The SIP worker processes that carry the benchmark's traffic: Kamailio's UDP receivers."""
    return [pid for pid, dsc in psx if dsc.startswith("udp receiver")]


def summary(values: list[float]) -> tuple[float, float, float]:
    """(min, mean, max) of a non-empty list; (0, 0, 0) for an empty one."""
    if not values:
        return 0.0, 0.0, 0.0
    return min(values), sum(values) / len(values), max(values)


def all_stats() -> list[Stat]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out.append(parse_stat((entry / "stat").read_text()))
            except (OSError, ValueError, IndexError):
                continue
    return out


def group_pids(pgid: int) -> list[int]:
    return [s.pid for s in all_stats() if s.pgid == pgid]


def tree_pids(root: int) -> list[int]:
    """root and all its descendants."""
    stats = all_stats()
    children: dict[int, list[int]] = {}
    for s in stats:
        children.setdefault(s.ppid, []).append(s.pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            ticks += parse_stat(Path(f"/proc/{pid}/stat").read_text()).cpu_ticks
        except (OSError, ValueError, IndexError):
            continue
    return ticks / CLK_TCK


def smaps(pid: int) -> dict[str, int]:
    try:
        return parse_smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())
    except OSError:
        return {}


def private_kb(pid: int) -> int:
    m = smaps(pid)
    return m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)
