"""Scale (issue 11): subscribers in Kamailio's shared memory, changes applied key by key.

- a password change is seen by the next request on every worker, the old password is refused;
- a disabled subscriber is refused by every worker (each UDP worker proven by its log lines),
  a deleted one disappears (challenged like any unknown number);
- a burst of 1,200 row changes (600 adds, 200 changes with caller IDs, 200 removals) in nine
  transactions leaves the shared table equal to the database;
- a loader restart repairs a table that drifted; a change made while Kamailio is down is
  there after Kamailio starts again.
"""
from __future__ import annotations

import itertools
import re
import threading
import time
import uuid

import psycopg

from kemi import names
from kemi.directory import Subscriber
from provision.live import wait_until_live
from tests.e2e.helpers import wait_until
from tests.e2e.sipraw import Client, digest, request
from tests.e2e.test_security_auth import invite
from tools.kamailio_rpc import KamailioRpc

_ips = itertools.count(1)   # 127.0.3.x: loopback addresses of this file's own


def next_ip() -> str:
    n = next(_ips)
    return f"127.0.{3 + n // 250}.{n % 250 + 1}"


def rpc(proxy) -> KamailioRpc:
    return KamailioRpc.for_var_dir(proxy.settings.var_dir, timeout=30)


def table(proxy, key: str) -> str | None:
    """The raw value of one key of the shared subscriber table."""
    from tools.kamailio_rpc import RpcError
    try:
        return rpc(proxy).call("htable.get", names.SUBSCRIBER_TABLE, key)["item"]["value"]
    except RpcError:
        return None


def dump(proxy) -> dict[str, str]:
    out: dict[str, str] = {}
    for slot in rpc(proxy).call("htable.dump", names.SUBSCRIBER_TABLE) or []:
        for item in slot.get("slot", []):
            out[item["name"]] = item["value"]
    return out


def database(proxy) -> dict[str, str]:
    with psycopg.connect(proxy.settings.database_url) as conn:
        return dict(conn.execute(f"SELECT key_name, key_value FROM {names.SUBSCRIBER_VIEW}").fetchall())


def udp_workers(proxy) -> set[int]:
    return {p["PID"] for p in rpc(proxy).call("core.psx") if p["DSC"].startswith("udp receiver")}


def parallel(n: int, fn) -> list:
    """Run fn(i) for i in range(n) at once (threads), so several workers take requests."""
    results: list = [None] * n
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, fn(i))) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def registered(proxy, number: str, password: str) -> int:
    """The final status of a digest-authenticated REGISTER that asks for no binding
    (Expires: 0, so the phone's contacts stay within max_contacts): 200 when the credentials
    were accepted, 401 when challenged again."""
    client = Client(proxy.address, ip=next_ip())
    try:
        call_id = uuid.uuid4().hex
        ruri = f"sip:{proxy.address[0]}:{proxy.address[1]}"
        first = client.request(request("REGISTER", ruri, client, number, call_id=call_id, extra="Expires: 0"))
        assert first is not None and first.status == 401, first and first.text
        auth = digest("REGISTER", ruri, number, password, first.header("WWW-Authenticate"), "Authorization")
        reply = client.request(request("REGISTER", ruri, client, number, call_id=call_id, cseq=2,
                                       extra=f"Expires: 0\r\n{auth}"))
        return reply.status if reply else 0
    finally:
        client.close()


def test_password_change_is_seen_by_every_worker(proxy):
    number, old = proxy.subscriber("first-pass-1")
    assert registered(proxy, number, old) == 200
    proxy.kemictl("subscriber", "change", number, "--password", "second-pass-2")   # returns when live
    rounds = 4 * proxy.settings.children
    assert parallel(rounds, lambda _i: registered(proxy, number, "second-pass-2")) == [200] * rounds
    # the old password: challenged again (401) by whichever worker takes it
    assert parallel(4, lambda _i: registered(proxy, number, old)) == [401] * 4


def test_disabled_subscriber_is_refused_by_every_worker_and_a_deleted_one_disappears(proxy):
    (a, pa), (b, pb) = proxy.subscriber(), proxy.subscriber()
    workers = udp_workers(proxy)
    assert len(workers) == proxy.settings.children
    proxy.kemictl("subscriber", "disable", b)
    log = proxy.stack.kamailio.log
    start = log.stat().st_size
    pattern = re.compile(rf"^\s*\d+\((\d+)\).*call {a} -> {b}: 480 Temporarily Unavailable - number disabled", re.M)

    def call(_i: int) -> int:
        client = Client(proxy.address, ip=next_ip())
        try:
            reply, _ = invite(proxy, client, a, pa, b)
            return reply.status if reply else 0
        finally:
            client.close()

    seen: set[int] = set()
    for _ in range(25):    # bursts until every UDP worker answered at least one call
        assert parallel(proxy.settings.children * 2, call) == [480] * (proxy.settings.children * 2)
        with open(log, errors="replace") as f:
            f.seek(start)
            seen = {int(pid) for pid in pattern.findall(f.read())}
        if workers <= seen:
            break
    print(f"\n{len(seen & workers)} of {len(workers)} UDP workers refused the disabled number")
    assert workers <= seen, f"workers never reached: {workers - seen} ({proxy.logs()})"
    # deleted: its credentials mean nothing any more (challenged again, like an unknown number)
    proxy.kemictl("subscriber", "remove", b)
    assert table(proxy, b) is None
    assert parallel(4, lambda _i: registered(proxy, b, pb)) == [401] * 4


def test_burst_of_1200_changes_leaves_the_table_equal_to_the_database(proxy):
    prefix = f"7{int(time.time() * 1000) % 10**6:06d}"
    started = time.time_ns()
    with psycopg.connect(proxy.settings.database_url) as conn:
        with conn.transaction():          # 600 adds in one transaction
            for i in range(600):
                conn.execute("INSERT INTO subscriber (number, ha1, display_name) VALUES (%s, %s, %s)",
                             (f"{prefix}{i:04d}", uuid.uuid4().hex, f"Burst {i}"))
        for batch in range(8):            # then 8 x (25 changes with a caller ID each + 25 removals)
            with conn.transaction():
                for i in range(batch * 25, batch * 25 + 25):
                    conn.execute("UPDATE subscriber SET display_name = %s, send_pai = true WHERE number = %s",
                                 (f"Changed {i}", f"{prefix}{i:04d}"))
                    conn.execute("INSERT INTO caller_id (subscriber, position, number) VALUES (%s, 1, %s)",
                                 (f"{prefix}{i:04d}", f"4930{i:04d}"))
                    conn.execute("DELETE FROM subscriber WHERE number = %s", (f"{prefix}{i + 400:04d}",))
    assert wait_until_live(proxy.settings.var_dir, started, timeout=60, dsn=proxy.settings.database_url)
    shared, stored = dump(proxy), database(proxy)
    mine = {k: v for k, v in stored.items() if k.startswith(prefix)}
    assert len(mine) == 400
    assert {k: v for k, v in shared.items() if k.startswith(prefix)} == mine
    assert shared == stored, "shared table differs from the database: " + repr(
        sorted(set(shared.items()) ^ set(stored.items()))[:5])
    changed = names.decode_subscriber(f"{prefix}0000", shared[f"{prefix}0000"])
    assert isinstance(changed, Subscriber) and changed.display_name == "Changed 0" and changed.send_pai
    assert changed.caller_ids == ("49300000",)
    print(f"\n1200 row changes in 9 transactions live {(time.time_ns() - started) / 1e9:.2f} s after the first began")


def test_loader_restart_repairs_a_drifted_table(proxy):
    number, password = proxy.subscriber()
    right = table(proxy, number)
    assert right is not None
    rpc(proxy).call("htable.delete", names.SUBSCRIBER_TABLE, number)            # drift: one lost,
    rpc(proxy).call("htable.sets", names.SUBSCRIBER_TABLE, "999999999", right)  # one that never was
    assert registered(proxy, number, password) == 401
    proxy.stack.loader.restart()
    wait_until(lambda: table(proxy, number) == right and table(proxy, "999999999") is None, timeout=30)
    assert registered(proxy, number, password) == 200
    assert dump(proxy) == database(proxy)


def test_change_while_kamailio_is_down_is_there_after_its_restart(proxy):
    number, password = proxy.subscriber("before-restart-1")
    gone, _ = proxy.subscriber()
    proxy.stack.kamailio.stop()
    try:
        # kemictl would wait for a live change: write directly, as another tool might
        with psycopg.connect(proxy.settings.database_url) as conn:
            conn.execute("UPDATE subscriber SET ha1 = md5(%s) WHERE number = %s",
                         (f"{number}:{proxy.settings.realm}:after-restart-2", number))
            conn.execute("DELETE FROM subscriber WHERE number = %s", (gone,))
        time.sleep(1)   # the loader has the notifications and cannot apply them
    finally:
        proxy.stack.kamailio.start()
    assert registered(proxy, number, "after-restart-2") == 200
    assert table(proxy, gone) is None
    log = lambda: proxy.stack.loader.log.read_text().rsplit("Kamailio unreachable", 1)[-1]   # noqa: E731
    wait_until(lambda: "subscriber table of the Kamailio started" in log(), timeout=30)
    print(f"\nloader after the restart: {log().strip()}")   # the keys it could not apply, set again
    assert dump(proxy) == database(proxy)
