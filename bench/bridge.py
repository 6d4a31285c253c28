"""What the callback's two-leg bridge (media/bridge.py) costs per media clock tick: the
frame taken from each leg's receive buffer, the mix and the G.711 encode, for N bridged
pairs, without sockets (the RTP send/receive is the same as any leg's, see bench.media).
Prints numbers, asserts nothing:

    .venv/bin/python -m bench.bridge [--pairs 1,50,250] [--ticks 2000]
"""
from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

from media import g711
from media.bridge import FRAME, Bridge


class Leg:
    def __init__(self, payload_type: int):
        self.payload_type, self.recording, self.player = payload_type, None, None

    def stop_playing(self) -> None:
        self.player = None

    def __hash__(self) -> int:
        return id(self)


async def measure(pairs: int, ticks: int) -> float:
    frame = (np.sin(np.arange(FRAME) * 0.3) * 8000).astype(np.int16)
    bridges = []
    for i in range(pairs):
        a, b = Leg(g711.PCMU), Leg(g711.PCMA if i % 2 else g711.PCMU)
        bridge = Bridge([a, b])
        bridge.start()
        bridges.append((a, b))
    start = time.process_time()
    for _ in range(ticks):
        for a, b in bridges:
            a.recording.append(frame)
            b.recording.append(frame)
            a.player.next_frame()
            b.player.next_frame()
    return (time.process_time() - start) / ticks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", default="1,50,250")
    parser.add_argument("--ticks", type=int, default=2000)
    args = parser.parse_args()
    print("bridged pairs | CPU per 20 ms tick | share of one core | per pair")
    for pairs in (int(p) for p in args.pairs.split(",")):
        per_tick = asyncio.run(measure(pairs, max(50, args.ticks // max(1, pairs // 10))))
        print(f"{pairs:>13} | {per_tick * 1e3:>15.3f} ms | {per_tick / 0.02 * 100:>15.2f} % | "
              f"{per_tick / 0.02 * 100 / pairs:.4f} % of a core")


if __name__ == "__main__":
    main()
