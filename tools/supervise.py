"""Process supervision for the launcher (tools/stack.py): a dying process is restarted with
back-off and a log line saying why. Kamailio's main process exits when any of its children
dies (a worker killed, a crash): that is expected, and it is simply started again.

A supervised thing is any object with `name`, `wanted` (False after a deliberate stop),
`lock` (held by its own start/stop), `alive()`, `exit_reason()` and `restart()`; the stack
lists them in start order (`Stack.supervised`), so supervising one more process is one more
entry there. Restart counts go to var/run/restarts.json, which the exporter publishes as
`kemi_process_restarts_total{process}`.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

BASE_DELAY = 0.5     # first restart after this long
MAX_DELAY = 30.0     # back-off doubles up to this
STABLE = 60.0        # alive this long after a restart: the back-off starts again from BASE_DELAY


def backoff(failures: int, base: float = BASE_DELAY, cap: float = MAX_DELAY) -> float:
    """Seconds to wait before restart number `failures` (1, 2, ...) of a row. Pure."""
    return min(cap, base * 2 ** max(0, failures - 1))


def restarts_file(var_dir: str) -> Path:
    return Path(var_dir) / "run" / "restarts.json"


def read_restarts(var_dir: str) -> dict[str, int]:
    try:
        return {str(k): int(v) for k, v in json.loads(restarts_file(var_dir).read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


@dataclass
class _State:
    failures: int = 0          # restarts in a row without a stable run in between
    due: float | None = None   # when the pending restart happens
    started: float = 0.0       # when it was last (re)started


class Supervisor:
    def __init__(self, members: list, var_dir: str, log: Callable[[str], None], interval: float = 0.2):
        self.members = members
        self.log = log
        self.interval = interval
        self.file = restarts_file(var_dir)
        self.restarts: dict[str, int] = read_restarts(var_dir)
        self.state = {m.name: _State(started=time.monotonic()) for m in members}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for member in self.members:
                if self._stop.is_set():
                    return
                try:
                    self.check(member)
                except Exception as err:   # the supervisor itself must never die
                    self.log(f"supervisor: checking {member.name} failed: {err!r}")

    def check(self, member, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        st = self.state[member.name]
        with member.lock:
            if not member.wanted or member.alive():
                st.due = None
                if member.wanted and st.failures and now - st.started > STABLE:
                    st.failures = 0
                return
            if st.due is None:
                st.failures += 1
                st.due = now + backoff(st.failures)
                self.log(f"supervisor: {member.name} {member.exit_reason()}; restarting in "
                         f"{st.due - now:.1f} s (attempt {st.failures} in a row)")
                return
            if now < st.due:
                return
            st.due = None
            try:
                member.restart()
            except Exception as err:
                self.log(f"supervisor: {member.name} did not come back: {str(err).splitlines()[0]}")
                return   # still dead: the next check schedules the next attempt, further out
            st.started = time.monotonic()
            self.restarts[member.name] = self.restarts.get(member.name, 0) + 1
            self._save()
            self.log(f"supervisor: {member.name} restarted (restart {self.restarts[member.name]} "
                     f"since the stack started)")

    def _save(self) -> None:
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.restarts))
            os.replace(tmp, self.file)
        except OSError:
            pass


# ------------------------------------------------------------------ the media gate's state
# tools/stack.py MediaGate writes it on every switch; the exporter publishes it as
# kemi_media_anchoring (1: rtpengine anchors media, 0: switched off by the gate) and
# kemi_media_gate_switch_offs_total.

def media_gate_file(var_dir: str) -> Path:
    return Path(var_dir) / "run" / "media_gate.json"


def write_media_gate(var_dir: str, anchoring: bool, switch_offs: int) -> None:
    path = media_gate_file(var_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"anchoring": bool(anchoring), "switch_offs": int(switch_offs)}))
        os.replace(tmp, path)
    except OSError:
        pass


def read_media_gate(var_dir: str) -> dict[str, int] | None:
    """{"anchoring": 0|1, "switch_offs": n}, or None before the gate's first check."""
    try:
        data = json.loads(media_gate_file(var_dir).read_text())
        return {"anchoring": int(bool(data["anchoring"])), "switch_offs": int(data["switch_offs"])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None

