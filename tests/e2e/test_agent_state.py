"""Agent state as runtime state (issue 11): login, logout, pause and do not disturb live in
Kamailio's shared memory, changed by kemictl (over RPC) and by feature codes (no database on
a SIP worker), seen by the next call in every process, persisted by the agent shipper without
a directory reload, loaded again when Kamailio restarts; queue statistics per agent."""
from __future__ import annotations

import itertools
import random
import time

import psycopg

from kemi.store import snapshot_path
from provision.bans import parse_dump
from tests.e2e import rawphone
from tests.e2e.helpers import explain
from tests.e2e.rawphone import RawPhone

_ids = itertools.count(1)


def queue_with(proxy, agents: list[str], **options) -> tuple[str, str]:
    name, number = f"as{next(_ids)}", f"6{agents[0][1:]}"
    args = ["queue", "add", name, number, "--max-wait", str(options.pop("max_wait", 3))]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    proxy.kemictl(*args)
    proxy.kemictl("queue", "agents", name, *agents)
    return name, number


def raw(proxy, number: str, password: str) -> RawPhone:
    phone = RawPhone(proxy.address, number, password)
    proxy.phones.append(phone)
    return phone


def code(phone: RawPhone, dial: str):
    return phone.request("INVITE", f"sip:{dial}@{phone.domain}", body=phone.sdp())


def shm(proxy, table: str = "agentst") -> dict[str, str]:
    return parse_dump(proxy.stack.kamailio.rpc("htable.dump", table))


def db_states(proxy, agents) -> dict[str, str]:
    with psycopg.connect(proxy.settings.database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT key_name, key_value FROM agent_state_ht").fetchall()
    return {k: v for k, v in rows if k.rsplit(":", 1)[-1] in agents}


def wait_until(check, timeout: float = 20.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def status(proxy, number: str) -> str:
    return proxy.kemictl("agent", "status", number).stdout


def test_kemictl_changes_are_live_for_the_next_queue_call_without_a_reload(proxy):
    agent, pw = proxy.subscriber()
    phone = proxy.phone(agent, pw, "answer", calls=3)
    name, number = queue_with(proxy, [agent])
    caller, cpw = proxy.subscriber()
    before = snapshot_path(proxy.settings.var_dir).stat().st_mtime_ns

    assert "logged out of all" in proxy.kemictl("agent", "logout", agent).stdout
    call = proxy.call(caller, cpw, number, expect=480, timeout=20)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert "logged in to group" not in proxy.kemictl("agent", "login", agent, name).stdout
    call = proxy.call(caller, cpw, number, timeout=20)
    assert call.proc.returncode == 0, explain(call, phone.uas, proxy.logs())

    assert "paused (lunch)" in proxy.kemictl("agent", "pause", agent, "lunch").stdout
    shown = status(proxy, agent)
    assert "paused" in shown and "lunch" in shown, shown
    call = proxy.call(caller, cpw, number, expect=480, timeout=20)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert "unpaused in 1 queue" in proxy.kemictl("agent", "unpause", agent).stdout
    call = proxy.call(caller, cpw, number, timeout=20)
    assert call.proc.returncode == 0, explain(call, phone.uas, proxy.logs())

    assert len(phone.invites()) == 2, "offered only while logged in and not paused"
    assert snapshot_path(proxy.settings.var_dir).stat().st_mtime_ns == before, "no directory reload"


def test_feature_code_dnd_is_seen_by_every_worker(proxy):
    """Ring-all groups are routed by the SIP workers themselves: six calls (spread over the
    workers) all see the phone's do not disturb at once, then its end."""
    agent, pw = proxy.subscriber()
    other, opw = proxy.subscriber()
    name, number = f"ad{next(_ids)}", f"7{agent[1:]}"
    proxy.kemictl("ringall", "add", name, number)
    proxy.kemictl("ringall", "members", name, agent, other)
    keys = raw(proxy, agent, pw)
    assert "do not disturb on" in code(keys, "*65").reason
    phone = proxy.phone(agent, pw, "answer", calls=2)
    caller, cpw = proxy.subscriber()
    for _ in range(6):
        call = proxy.call(caller, cpw, number, expect=480, timeout=20)
        assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert phone.invites() == [], "a member in do not disturb never rings"
    assert "do not disturb off" in code(keys, "*65").reason
    call = proxy.call(caller, cpw, number, timeout=20)
    assert call.proc.returncode == 0, explain(call, phone.uas, proxy.logs())


def test_state_is_persisted_and_survives_a_kamailio_restart(proxy):
    agent, pw = proxy.subscriber()
    other, opw = proxy.subscriber()
    name, number = queue_with(proxy, [agent, other])
    keys = raw(proxy, agent, pw)
    assert "paused (7)" in code(keys, "*637").reason
    other_keys = raw(proxy, other, opw)
    assert "logged out of queue" in code(other_keys, f"*62{number}").reason
    want = {f"q:{number}:{agent}": "p:7", f"q:{number}:{other}": "out"}
    wait_until(lambda: db_states(proxy, {agent, other}) == want, what=f"the database to show {want}")

    proxy.stack.kamailio.restart()

    live = shm(proxy)
    assert {k: live.get(k) for k in want} == want, live
    shown = status(proxy, agent)
    assert "paused" in shown and " 7 " in f" {shown} ", shown
    phone = proxy.phone(agent, pw, "answer")
    caller, cpw = proxy.subscriber()
    call = proxy.call(caller, cpw, number, expect=480, timeout=20)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert phone.invites() == [], "still paused after the restart"
    assert "unpaused in 1 queue" in code(keys, "*64").reason
    call = proxy.call(caller, cpw, number, timeout=20)
    assert call.proc.returncode == 0, explain(call, phone.uas, proxy.logs())


def test_statistics_of_an_answered_queue_call(proxy):
    agent, pw = proxy.subscriber()
    phone = proxy.phone(agent, pw, "answer")
    name, number = queue_with(proxy, [agent])
    caller, cpw = proxy.subscriber()
    call = proxy.call(caller, cpw, number, hold_ms=2200, timeout=20)
    assert call.proc.returncode == 0, explain(call, phone.uas, proxy.logs())
    stats = shm(proxy, "agentstat")
    assert stats.get(f"ans:{number}:{agent}") == "1", stats
    assert int(stats.get(f"talk:{number}:{agent}", "0")) >= 2, stats
    assert abs(int(stats.get(f"end:{number}:{agent}", "0")) - time.time()) < 60, stats
    line = [row for row in status(proxy, agent).splitlines() if name in row][0]
    assert "logged in" in line and " 1 " in line, line
    assert name in proxy.kemictl("agent", "status").stdout, "every agent without a NUMBER"

    def stored():
        with psycopg.connect(proxy.settings.database_url, autocommit=True) as conn:
            return conn.execute("SELECT answered, talk_seconds, last_end > 0 FROM agent_stat WHERE queue_number = %s "
                                "AND number = %s", [number, agent]).fetchone()
    row = wait_until(stored, what="the statistics in the database")
    assert row[0] == 1 and row[1] >= 2 and row[2], row


def test_a_burst_of_200_changes_ends_consistent_in_memory_and_database(proxy):
    agents = [proxy.subscriber() for _ in range(5)]
    numbers = [a for a, _ in agents]
    _n1, q1 = queue_with(proxy, numbers)
    _n2, q2 = queue_with(proxy, list(reversed(numbers)))
    rname, rnumber = f"ab{next(_ids)}", f"7{numbers[0][1:]}"
    proxy.kemictl("ringall", "add", rname, rnumber)
    proxy.kemictl("ringall", "members", rname, *numbers)
    phones = {a: raw(proxy, a, pw) for a, pw in agents}
    rng = random.Random(11)
    codes = ["*61", "*62", f"*61{q1}", f"*62{q2}", "*63", "*6342", "*64", "*65"]
    for i in range(200):
        agent = rng.choice(numbers)
        if i % 20 == 19:        # every twentieth change from kemictl, the rest from the phones
            proxy.kemictl("agent", rng.choice(["login", "logout", "unpause", "dnd"]), agent)
            continue
        reply = code(phones[agent], rng.choice(codes))
        assert reply.status == 603, reply.first
    expected_keys = {f"{k}:{g}:{a}" for a in numbers for k, g in (("q", q1), ("q", q2), ("g", rnumber))}

    def same():
        live = {k: v for k, v in shm(proxy).items() if k in expected_keys}
        return len(live) == len(expected_keys) and live == db_states(proxy, set(numbers))
    wait_until(same, what="the database to match shared memory")


def test_a_phone_cannot_change_another_agents_state(proxy, monkeypatch):
    victim, vpw = proxy.subscriber()
    attacker, apw = proxy.subscriber()
    _name, number = queue_with(proxy, [victim])
    proxy.kemictl("agent", "logout", victim)
    proxy.kemictl("agent", "login", victim)
    before = shm(proxy).get(f"q:{number}:{victim}")
    # The attacker authenticates with its own credentials but writes the victim in From.
    real_digest = rawphone._digest
    monkeypatch.setattr(rawphone, "_digest", lambda ch, method, uri, _user, pw: real_digest(ch, method, uri, attacker, pw))
    spoofed = raw(proxy, victim, apw)
    reply = code(spoofed, "*62")
    assert reply.status == 403, reply.first
    monkeypatch.undo()
    # Without credentials: challenged, nothing changes; as itself: it is no agent at all.
    nobody = raw(proxy, victim, "not-the-password")
    assert code(nobody, "*65").status == 407
    own = raw(proxy, attacker, apw)
    for dial in ("*62", f"*62{number}", "*65", "*63"):
        reply = code(own, dial)
        assert reply.status in (403, 404), (dial, reply.first)
    assert shm(proxy).get(f"q:{number}:{victim}") == before == "in"
    assert "logged in" in status(proxy, victim)


def test_kemictl_agent_checks_its_input(proxy):
    agent, _pw = proxy.subscriber()
    _name, number = queue_with(proxy, [agent])
    for args, words in [(("pause", f"{agent};x"), "field 'number'"), (("status", "12ab"), "field 'number'"),
                        (("pause", agent, "Robert'); DROP TABLE queue;--"), "field 'reason'"),
                        (("login", agent, "no-such-queue"), "field 'where'"),
                        (("logout", "5999999999"), "no agent of any")]:
        out = proxy.kemictl("agent", *args, check=False)
        assert out.returncode == 2 and words in out.stderr, (args, out.stderr)
    assert shm(proxy).get(f"q:{number}:{agent}") in (None, "in")
