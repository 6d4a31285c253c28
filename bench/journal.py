"""What one call-journal record costs the writing process (kemi/journal.py), and how fast
the shipper's reading side parses them. Prints numbers, asserts nothing:

    .venv/bin/python -m bench.journal [--records 200000]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from kemi import journal
from tools import journal_files


def per_call_us(fn, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=200_000)
    n = p.parse_args().records
    base = tempfile.mkdtemp(prefix="kemi-journal-bench-")
    try:
        journal.configure(None)
        idle = per_call_us(lambda i: journal.offered("x", "77721401"), n)
        journal.configure(base)
        call_id = "a84b4c76e66710@pc33.atlanta.example.com"
        offered = per_call_us(lambda i: journal.offered(call_id, "77721401"), n)
        leg = per_call_us(lambda i: journal.leg_ended(call_id, "77721401", "answered_elsewhere", 487), n)
        started = per_call_us(lambda i: journal.call_started(call_id, "77721401", "8008001", "ringall", "sales"), n)
        journal.configure(None)
        directory = journal.directory(base)
        files = sorted(os.listdir(directory))
        size = sum(os.path.getsize(os.path.join(directory, f)) for f in files)
        start, rows, offset = time.perf_counter(), 0, 0
        for name in files:
            offset = 0
            while True:
                chunk = journal_files.read(os.path.join(directory, name), offset, 500)
                if chunk.end == offset:
                    break
                rows, offset = rows + len(chunk.rows), chunk.end
        parse = (time.perf_counter() - start) / max(rows, 1) * 1e6
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"journal write, not configured : {idle:6.2f} us per call")
    print(f"journal write, offered        : {offered:6.2f} us per record")
    print(f"journal write, leg_ended      : {leg:6.2f} us per record")
    print(f"journal write, call_started   : {started:6.2f} us per record")
    print(f"average record                : {size / (3 * n):6.0f} bytes ({len(files)} file(s), {size / 1e6:.0f} MB)")
    print(f"shipper read + parse          : {parse:6.2f} us per record ({rows} records)")


if __name__ == "__main__":
    main()
