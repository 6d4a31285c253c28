"""kemictl returns when its change is live.

After its commit kemictl sends one more notification on the loader's channel,
`sync:<token>` (a fresh random token). PostgreSQL delivers notifications in commit order, so
when the directory loader reads the token it has already read every change committed before
it; once it has applied all of them (snapshot written, subscriber keys set in Kamailio's
shared memory) it creates var/run/synced/<token> (tools/directory_loader.py). kemictl waits
for that file (at most TIMEOUT s, then a note, not an error) and removes it.

Without a running stack on this var dir (no var/run/directory.applied, which the loader
keeps) there is nothing to wait for. If the token cannot be sent, the older test applies: a
change whose reading began after the command started (directory.applied's modification time).
"""
from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from kemi.store import CHANNEL, applied_path

TIMEOUT = 5.0
READ_ONLY = {"list", "show", "export"}
TOKEN = re.compile(r"^[0-9a-f]{32}$")


# agents (issue 11): agent state is live in Kamailio's shared memory when kemictl returns
# (pushed over RPC); it reloads no snapshot, so there is nothing to wait for.
NO_SNAPSHOT = {("agent", "login"), ("agent", "logout"), ("agent", "pause"), ("agent", "unpause"),
               ("agent", "dnd"), ("agent", "status")}
READ_ONLY |= {"status", "kick", "mute", "unmute", "recordings"}   # conference rooms: live room, not routing


def changes_routing(area: str, action: str | None) -> bool:
    if area == "launch":   # launcher: only a temporary room (a new conference number) changes routing
        from provision import launch
        return launch.made_room
    return area != "journal" and action not in READ_ONLY and (area, action) not in NO_SNAPSHOT


def synced_dir(var_dir: str) -> Path:
    return Path(var_dir) / "run" / "synced"


def send_token(dsn: str) -> str | None:
    """NOTIFY sync:<token> after everything this process committed; None if that failed."""
    import psycopg
    token = uuid.uuid4().hex
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"sync:{token}"))
    except psycopg.Error:
        return None
    return token


def wait_until_live(var_dir: str, committed_ns: int, timeout: float = TIMEOUT, dsn: str | None = None) -> bool:
    marker = applied_path(var_dir)
    if not marker.exists():
        return True   # no stack runs on this var dir
    if dsn is None:
        from kemi.config import Settings
        dsn = Settings.from_env().database_url
    token = send_token(dsn)
    done = synced_dir(var_dir) / token if token else None
    deadline = time.monotonic() + timeout
    while True:
        try:
            if done is not None:
                if done.exists():
                    done.unlink(missing_ok=True)
                    return True
            elif marker.stat().st_mtime_ns > committed_ns:
                return True
        except OSError:
            return True   # the stack went away
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
