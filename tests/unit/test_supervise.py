"""tools/supervise.py (back-off, restart decisions), the launcher's media gate, and the
workers' snapshot file reader (kemi/store.py), without real processes."""
from __future__ import annotations

import threading

import pytest

from kemi.directory import Directory, Subscriber
from kemi.store import DirectoryCache, write_snapshot
from tools.supervise import MAX_DELAY, STABLE, Supervisor, backoff, read_restarts


@pytest.mark.parametrize("failures, delay", [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, MAX_DELAY), (50, MAX_DELAY)])
def test_backoff_doubles_up_to_a_cap(failures, delay):
    assert backoff(failures) == delay


class Fake:
    def __init__(self, name="kamailio", fail_restarts=0):
        self.name, self.wanted, self.lock = name, True, threading.RLock()
        self.up, self.fail_restarts, self.restarted = True, fail_restarts, 0

    def alive(self):
        return self.up

    def exit_reason(self):
        return "was killed by SIGKILL"

    def restart(self):
        if self.fail_restarts:
            self.fail_restarts -= 1
            raise RuntimeError("port in use\nmore")
        self.restarted += 1
        self.up = True


def supervisor(tmp_path, *members):
    lines = []
    return Supervisor(list(members), str(tmp_path), log=lines.append), lines


def test_a_dead_process_is_restarted_after_the_backoff_with_log_lines_and_a_count(tmp_path):
    m = Fake()
    sup, lines = supervisor(tmp_path, m)
    m.up = False
    sup.check(m, now=100.0)
    assert m.restarted == 0 and "kamailio was killed by SIGKILL; restarting in 0.5 s" in lines[0]
    sup.check(m, now=100.2)
    assert m.restarted == 0
    sup.check(m, now=100.6)
    assert m.restarted == 1 and "kamailio restarted (restart 1" in lines[-1]
    assert read_restarts(str(tmp_path)) == {"kamailio": 1}


def test_failing_restarts_back_off_further_and_a_stable_run_resets(tmp_path):
    m = Fake(fail_restarts=2)
    sup, lines = supervisor(tmp_path, m)
    m.up = False
    t = 0.0
    delays = []
    while m.restarted == 0 and t < 100:
        before = len(lines)
        sup.check(m, now=t)
        if len(lines) > before and "restarting in" in lines[-1]:
            delays.append(float(lines[-1].split("restarting in ")[1].split(" s")[0]))
        t += 0.1
    assert delays == [0.5, 1.0, 2.0]
    assert any("did not come back: port in use" in ln for ln in lines)
    sup.state[m.name].started = 0.0
    sup.check(m, now=STABLE + 1)        # healthy long enough: back to the first step
    assert sup.state[m.name].failures == 0


def test_a_deliberately_stopped_process_is_left_alone(tmp_path):
    m = Fake()
    sup, lines = supervisor(tmp_path, m)
    m.up, m.wanted = False, False
    for t in range(10):
        sup.check(m, now=float(t))
    assert m.restarted == 0 and lines == []


def test_media_gate_switches_rtpengine_off_after_misses_and_on_when_it_answers():
    from tools.stack import MediaGate

    class Stack:
        class settings:
            rtpengine_ng = "127.0.0.1:9"
    gate = MediaGate(Stack, log=lambda m: None)
    switched = []
    gate._switch = lambda on: (switched.append(on), setattr(gate, "last_rpc", 1e18))
    gate.check(True)
    gate.check(False)
    assert switched == [True] and gate.healthy          # one miss is not enough
    gate.check(False)
    assert switched == [True, False] and not gate.healthy
    gate.check(False)
    assert switched == [True, False]
    gate.reconcile = lambda: 0
    gate.check(True)
    assert switched == [True, False, True] and gate.healthy and len(gate.reconcile_at) == 2


def test_workers_read_the_snapshot_file_only_when_it_was_replaced(tmp_path):
    path = tmp_path / "directory.pickle"
    cache = DirectoryCache(path=path)
    assert cache.get() is None                           # the loader never wrote one
    one = Directory({"1001": Subscriber("1001", "h")}, {}, {}, {}, {}, (), {}, {}, {}, {})
    write_snapshot(path, one)
    assert cache.get() == one and cache.reloads == 1
    assert cache.get() == one and cache.reloads == 1     # unchanged file: no reload
    two = Directory({"1002": Subscriber("1002", "h")}, {}, {}, {}, {}, (), {}, {}, {}, {})
    write_snapshot(path, two)
    assert cache.get() == two and cache.reloads == 2
    path.write_bytes(b"not a pickle")                    # a broken file keeps the last snapshot
    assert cache.get() == two
    path.unlink()
    assert cache.get() == two                            # so does a missing one
