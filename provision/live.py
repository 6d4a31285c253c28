"""kemictl returns when its change is live: it waits (at most TIMEOUT s) until the running
stack's directory loader applied a change whose reading began after the commit (a snapshot
written, or subscriber keys set in Kamailio's shared memory): var/run/directory.applied's
modification time is that moment (kemi/store.py, tools/directory_loader.py). Without a running stack on this
var dir there is nothing to wait for; a loader that does not follow gets a note, not an error."""
from __future__ import annotations

import time

from kemi.store import applied_path

TIMEOUT = 5.0
READ_ONLY = {"list", "show", "export"}


def changes_routing(area: str, action: str | None) -> bool:
    return area != "journal" and action not in READ_ONLY


def wait_until_live(var_dir: str, committed_ns: int, timeout: float = TIMEOUT) -> bool:
    path = applied_path(var_dir)
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
