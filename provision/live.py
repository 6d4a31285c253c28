"""kemictl returns when its change is live: it waits (at most TIMEOUT s) until the running
stack's directory loader wrote a snapshot whose load began after the commit (the snapshot
file's modification time is that moment, kemi/store.py). Without a running stack on this
var dir there is nothing to wait for; a loader that does not follow gets a note, not an error."""
from __future__ import annotations

import time

from kemi.store import snapshot_path

TIMEOUT = 5.0
READ_ONLY = {"list", "show", "export"}
READ_ONLY |= {"status", "kick", "mute", "unmute", "recordings"}   # conference rooms: live room, not routing


def changes_routing(area: str, action: str | None) -> bool:
    if area == "launch":   # launcher: only a temporary room (a new conference number) changes routing
        from provision import launch
        return launch.made_room
    return area != "journal" and action not in READ_ONLY


def wait_until_live(var_dir: str, committed_ns: int, timeout: float = TIMEOUT) -> bool:
    path = snapshot_path(var_dir)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if path.stat().st_mtime_ns > committed_ns:
                return True
        except OSError:
            return True   # no stack runs on this var dir
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
