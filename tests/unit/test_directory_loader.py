"""tools/directory_loader.py: what the loader does with notifications and with a Kamailio it
has not seen, against a fake Kamailio RPC and a fake database (no I/O)."""
from __future__ import annotations

import time

import pytest

from kemi.config import Settings
from tools import directory_loader
from tools.kamailio_rpc import RpcError


class FakeKamailio:
    def __init__(self, started_ago: float):
        self.up = True
        self.table: dict[str, str] = {}
        self.calls: list[tuple] = []
        self.restart(started_ago)

    def restart(self, started_ago: float = 0.0) -> None:
        self.started = time.time() - started_ago
        self.ident = f"start-{self.started:.3f}"

    def call(self, method, *params, timeout=None):
        if not self.up:
            raise RpcError("not served")
        self.calls.append((method, *params))
        if method == "core.uptime":
            return {"up_since": self.ident, "uptime": int(time.time() - self.started)}
        if method == "htable.sets":
            self.table[params[1]] = params[2]
        elif method == "htable.delete":
            if params[1] not in self.table:
                raise RpcError("missing", 404)
            del self.table[params[1]]
        return "Ok"


@pytest.fixture
def loader(tmp_path, monkeypatch):
    db = {"1001": "v1", "1002": "v2"}
    monkeypatch.setattr(directory_loader, "subscriber_rows",
                        lambda conn, numbers=None: {n: db[n] for n in (numbers or db) if n in db})
    monkeypatch.setattr(directory_loader.Loader, "load", lambda self, since=None: None)
    ld = directory_loader.Loader(Settings(var_dir=str(tmp_path)))
    ld.db = db
    ld.conn = object()
    ld.listen_since = time.time() - 100      # listening for 100 s
    ld.need_full = False
    return ld


def methods(kam):
    return [c[0] for c in kam.calls if c[0] != "core.uptime"]


def test_a_kamailio_older_than_the_loader_is_reloaded_whole(loader):
    loader.rpc = kam = FakeKamailio(started_ago=500)
    assert loader.sync_kamailio() and methods(kam) == ["htable.reload"]
    kam.calls.clear()
    assert loader.sync_kamailio() and methods(kam) == []          # the same Kamailio: nothing


def test_after_a_database_reconnection_a_running_kamailio_is_reloaded(loader):
    loader.rpc = kam = FakeKamailio(started_ago=10)
    assert loader.sync_kamailio() and methods(kam) == []           # started after the loader listened
    loader.listen_since = time.time()        # the loader reconnected: it may have missed changes
    loader.kamailio = None
    assert loader.sync_kamailio() and methods(kam) == ["htable.reload"]


def test_a_kamailio_starting_after_the_loader_needs_no_reload(loader):
    loader.rpc = kam = FakeKamailio(started_ago=0)
    assert loader.sync_kamailio() and methods(kam) == []


def test_a_change_is_one_key_and_a_removal_one_delete(loader):
    loader.rpc = kam = FakeKamailio(started_ago=10)
    loader.apply({"subscriber:1001", "subscriber:1009"})
    assert methods(kam) == ["htable.sets", "htable.delete"]       # 1009 is not in the database
    assert kam.table == {"1001": "v1"} and not loader.unapplied
    assert loader.applied.exists()


def test_keys_missed_while_kamailio_was_down_are_set_again_on_its_restart(loader):
    loader.rpc = kam = FakeKamailio(started_ago=10)
    assert loader.sync_kamailio()
    kam.up = False
    loader.db["1002"] = "v2-new"
    loader.apply({"subscriber:1002", "sync:" + "c" * 32})
    assert loader.unapplied == {"1002"} and not (loader.synced / ("c" * 32)).exists()   # not confirmed
    kam.up, kam.calls = True, []
    kam.restart(started_ago=0)        # it started after the loader listened: no full reload
    assert loader.sync_kamailio()
    assert methods(kam) == ["htable.sets"] and kam.table["1002"] == "v2-new" and not loader.unapplied


def test_sync_tokens_are_confirmed_once_applied(loader):
    loader.rpc = FakeKamailio(started_ago=10)
    loader.apply({"sync:" + "a" * 32, "sync:../../etc", "hunt_group"})
    assert (loader.synced / ("a" * 32)).exists()
    assert sorted(p.name for p in loader.synced.iterdir()) == ["a" * 32]   # a bad token is ignored


def test_truncate_reloads_everything(loader):
    loader.rpc = kam = FakeKamailio(started_ago=10)
    assert loader.sync_kamailio()
    kam.calls.clear()
    loader.apply({"subscriber"})
    assert methods(kam) == ["htable.reload"]
