"""Helpers for the media service tests: a second media service that trusts the test phones
(the stack's own one trusts only Kamailio), audio checks, and provisioning shortcuts."""
from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

from kemi.config import ROOT
from media import audio
from tools.ports import free_port
from tools.stack import sip_options


class DirectService:
    """`python -m media` on its own port, trusting every 127.0.0.1 source."""

    def __init__(self, settings, workdir: Path, **overrides):
        port = free_port()
        self.settings = dataclasses.replace(settings, media_sip=f"127.0.0.1:{port}", media_trusted="127.0.0.1",
                                            var_dir=str(workdir), **overrides)
        self.address = ("127.0.0.1", port)
        self.log = workdir / f"media-direct-{port}.log"
        self.proc = None

    def start(self) -> "DirectService":
        Path(self.settings.var_dir, "run").mkdir(parents=True, exist_ok=True)
        env = {**__import__("os").environ, **self.settings.to_env()}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "media"], cwd=ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while sip_options(*self.address) != 200:
            assert self.proc.poll() is None, f"media service exited; see {self.log}"
            assert time.monotonic() < deadline, f"media service not ready; see {self.log}"
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def strongest(pcm: np.ndarray) -> float:
    return audio.dominant_frequency(pcm)


def tone_share(pcm: np.ndarray, freq: float, width: float = 30.0) -> float:
    """The share of the signal's energy within +-width Hz of freq (0..1)."""
    x = pcm.astype(np.float64)
    if len(x) < 256 or not np.any(x):
        return 0.0
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / 8000)
    band = (freqs > freq - width) & (freqs < freq + width)
    total = spectrum.sum()
    return float(spectrum[band].sum() / total) if total > 0 else 0.0


def add_audio(dsn: str, name: str, pcm: np.ndarray) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO audio (name, pcm) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET pcm = EXCLUDED.pcm",
                     (name, audio.pcm_bytes(pcm)))


async def wait_until_async(check, timeout: float = 15, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)
