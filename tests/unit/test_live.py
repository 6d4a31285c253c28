"""provision/live.py: kemictl waits for a snapshot loaded after its commit."""
from __future__ import annotations

import os
import time

import pytest

from kemi.directory import Directory
from kemi.store import snapshot_path, write_snapshot
from provision.live import changes_routing, wait_until_live


@pytest.mark.parametrize("area, action, waits", [
    ("subscriber", "add", True), ("hunt", "import", True), ("agent", "logout", False),   # agents: live over RPC, no reload
    ("subscriber", "list", False), ("hunt", "show", False), ("hunt", "export", False), ("journal", None, False), ("queue", "agents", True),
])
def test_which_commands_wait(area, action, waits):
    assert changes_routing(area, action) is waits


def test_waits_for_a_snapshot_loaded_after_the_commit(tmp_path):
    path = snapshot_path(str(tmp_path))
    path.parent.mkdir(parents=True)
    before = time.time_ns()
    write_snapshot(path, Directory(), loaded_since_ns=before - 1_000_000)   # began before: not enough
    assert wait_until_live(str(tmp_path), before, timeout=0.1) is False
    write_snapshot(path, Directory(), loaded_since_ns=before + 1)
    assert wait_until_live(str(tmp_path), before, timeout=0.1) is True
    assert os.stat(path).st_mtime_ns == before + 1


def test_no_running_stack_means_nothing_to_wait_for(tmp_path):
    assert wait_until_live(str(tmp_path / "nowhere"), time.time_ns(), timeout=0.1) is True
