"""provision/live.py: kemictl waits for a snapshot loaded after its commit."""
from __future__ import annotations

import os
import time

import pytest

from kemi.store import applied_path, mark_applied
from provision.live import changes_routing, wait_until_live


@pytest.mark.parametrize("area, action, waits", [
    ("subscriber", "add", True), ("hunt", "import", True), ("agent", "logout", False),   # agents: live over RPC, no reload
    ("subscriber", "list", False), ("hunt", "show", False), ("hunt", "export", False), ("journal", None, False), ("queue", "agents", True),
])
def test_which_commands_wait(area, action, waits):
    assert changes_routing(area, action) is waits


def test_waits_for_a_change_applied_after_the_commit(tmp_path):
    path = applied_path(str(tmp_path))
    path.parent.mkdir(parents=True)
    before = time.time_ns()
    mark_applied(path, before - 1_000_000)   # its reading began before the commit: not enough
    nodb = "postgresql://127.0.0.1:1/none"     # the token cannot be sent: the modification time decides
    assert wait_until_live(str(tmp_path), before, timeout=0.1, dsn=nodb) is False
    mark_applied(path, before + 1)
    assert wait_until_live(str(tmp_path), before, timeout=0.1, dsn=nodb) is True
    assert os.stat(path).st_mtime_ns == before + 1


def test_no_running_stack_means_nothing_to_wait_for(tmp_path):
    assert wait_until_live(str(tmp_path / "nowhere"), time.time_ns(), timeout=0.1) is True


def test_waits_for_the_loader_to_confirm_its_token(tmp_path, monkeypatch):
    import threading

    from provision import live
    live.synced_dir(str(tmp_path)).mkdir(parents=True)
    mark_applied(applied_path(str(tmp_path)), time.time_ns())
    monkeypatch.setattr(live, "send_token", lambda dsn: "ab" * 16)
    assert wait_until_live(str(tmp_path), 0, timeout=0.1, dsn="x") is False      # nobody confirmed
    confirm = threading.Timer(0.05, lambda: (live.synced_dir(str(tmp_path)) / ("ab" * 16)).touch())
    confirm.start()
    assert wait_until_live(str(tmp_path), 0, timeout=5, dsn="x") is True
    assert not (live.synced_dir(str(tmp_path)) / ("ab" * 16)).exists()           # removed once read
