"""Ring-all groups (seed 004) and call-centre queues (seed 001) with SIPp phones."""
from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter

import pytest

from tests.e2e.helpers import explain, from_user, header, wait_until

_ids = itertools.count(1)


def ringall(proxy, members, **options) -> str:
    name, number = f"ra{next(_ids)}", f"7{members[0][1:]}"
    args = ["ringall", "add", name, number]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    proxy.kemictl(*args)
    proxy.kemictl("ringall", "members", name, *members)
    return name, number


def queue(proxy, agents, **options) -> tuple[str, str]:
    name, number = f"q{next(_ids)}", f"6{agents[0].split(':')[0][1:]}"
    args = ["queue", "add", name, number]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    proxy.kemictl(*args)
    proxy.kemictl("queue", "agents", name, *agents)
    return name, number


# ------------------------------------------------------------------ ring-all groups

def test_ringall_rings_every_registered_logged_in_member(proxy):
    (a, pa), (b, pb), (c, _pc), (d, pd) = [proxy.subscriber() for _ in range(4)]
    name, number = ringall(proxy, [a, b, c, d], display_format="Sales: {caller}")
    proxy.kemictl("agent", "logout", d, name)
    answers = proxy.phone(a, pa, "answer", ring_ms=1000)
    rings = proxy.phone(b, pb, "noanswer")
    dnd = proxy.phone(d, pd, "answer")                       # registered but logged out
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, number)

    assert call.proc.returncode == 0, explain(call, answers.uas, rings.uas, proxy.logs())
    for phone in (answers, rings):
        invite = phone.invites()[0]
        assert header(invite, "Diversion").startswith(f"<sip:{number}@"), invite
        assert header(invite, "From").startswith(f'"Sales: Caller {caller}" <sip:{caller}@'), invite
    cancel = rings.uas.received("CANCEL")
    assert cancel, explain(rings.uas)
    assert header(cancel[0], "Reason") == 'SIP;cause=200;text="Call completed elsewhere"'
    assert dnd.invites() == [], "a logged-out member must not ring"


def test_ringall_number_cannot_be_a_line_or_service_number(proxy):
    a, _ = proxy.subscriber()
    out = proxy.kemictl("ringall", "add", f"bad{next(_ids)}", a, check=False)
    assert out.returncode == 2 and "is already a SIP number" in out.stderr
    name, number = ringall(proxy, [a])
    out = proxy.kemictl("subscriber", "add", number, "--password", "long-enough", check=False)
    assert out.returncode == 2 and "ring-all group" in out.stderr


# ------------------------------------------------------------------ queues

def test_queue_ringall_strategy_offers_every_free_agent(proxy):
    (a, pa), (b, pb) = proxy.subscriber(), proxy.subscriber()
    _name, number = queue(proxy, [a, b], strategy="ringall")
    pa_phone = proxy.phone(a, pa, "noanswer")
    pb_phone = proxy.phone(b, pb, "answer", ring_ms=500)
    caller, cpw = proxy.subscriber()
    call = proxy.call(caller, cpw, number)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert len(pa_phone.invites()) == 1 and len(pb_phone.invites()) == 1


@pytest.mark.parametrize("strategy,expected", [
    ("linear", ["A", "A", "A"]),
    ("round_robin", ["A", "B", "C"]),
    ("fewest_calls", ["A", "B", "C"]),
    ("longest_idle", ["A", "B", "C"]),
])
def test_queue_strategies(proxy, strategy, expected):
    agents = [proxy.subscriber() for _ in range(3)]
    _name, number = queue(proxy, [n for n, _ in agents], strategy=strategy)
    phones = {label: proxy.phone(n, p, "answer", calls=3) for label, (n, p) in zip("ABC", agents)}
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, number, calls=3, timeout=40)

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    got = [label for label, phone in phones.items() for _ in phone.invites()]
    assert Counter(got) == Counter(expected), (got, expected)
    if strategy in ("linear", "round_robin"):
        assert _answer_order(phones) == expected


def _answer_order(phones) -> list[str]:
    """Labels of the agents in the order their INVITEs arrived (trace timestamps)."""
    events = []
    for label, phone in phones.items():
        for stamp, body in re.findall(r"^-+ (\S+ \S+)\n[^\n]*message received[^\n]*\n\n(INVITE[^\n]*)",
                                      phone.uas.messages(), re.M):
            events.append((stamp, label))
    return [label for _stamp, label in sorted(events)]


def test_queue_random_strategy_uses_every_agent(proxy):
    (a, pa), (b, pb) = proxy.subscriber(), proxy.subscriber()
    _name, number = queue(proxy, [a, b], strategy="random")
    phones = [proxy.phone(a, pa, "answer", calls=16, ring_ms=10), proxy.phone(b, pb, "answer", calls=16, ring_ms=10)]
    caller, cpw = proxy.subscriber()
    call = proxy.call(caller, cpw, number, calls=16, hold_ms=10, timeout=60)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    counts = [len(p.invites()) for p in phones]
    assert sum(counts) == 16 and min(counts) > 0, counts


def test_busy_and_logged_out_agents_are_not_rung_and_tiers(proxy):
    (a, pa), (b, pb), (c, pc) = [proxy.subscriber() for _ in range(3)]
    name, number = queue(proxy, [f"{a}:1", f"{b}:1", f"{c}:2"], strategy="linear")
    proxy.kemictl("agent", "logout", b, name)
    a_phone = proxy.phone(a, pa, "answer")
    b_phone = proxy.phone(b, pb, "answer")
    c_phone = proxy.phone(c, pc, "answer")
    other, opw = proxy.subscriber()
    other_phone = proxy.phone(other, opw, "answer")

    # a is busy talking to someone else: the queue call must go to c (tier 2), not a or b
    talk = threading.Thread(target=proxy.call, args=(a, pa, other), kwargs={"hold_ms": 4000})
    talk.start()
    wait_until(lambda: other_phone.uas.received("ACK"))
    caller, cpw = proxy.subscriber()
    call = proxy.call(caller, cpw, number)
    talk.join()

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert a_phone.invites() == [], "a busy agent must not be rung"
    assert b_phone.invites() == [], "a logged-out agent must not be rung"
    assert len(c_phone.invites()) == 1


def test_three_callers_wait_for_one_agent_in_arrival_order(proxy):
    agent, apw = proxy.subscriber()
    _name, number = queue(proxy, [agent], strategy="linear")
    agent_phone = proxy.phone(agent, apw, "answer", calls=3, ring_ms=100)
    callers = [proxy.subscriber() for _ in range(3)]
    results = {}

    def place(index, number_, password):
        results[index] = proxy.call(number_, password, number, hold_ms=1500, timeout=30)

    threads = []
    for index, (n, p) in enumerate(callers):
        threads.append(threading.Thread(target=place, args=(index, n, p)))
        threads[-1].start()
        time.sleep(0.4)        # arrival order: caller 0, 1, 2
    for t in threads:
        t.join()

    for index in range(3):
        assert results[index].proc.returncode == 0, explain(results[index], proxy.logs())
    assert [from_user(i) for i in agent_phone.invites()] == [n for n, _ in callers]
    assert results[2].received("SIP/2.0 182"), "a waiting caller hears 182 Queued"


def test_queue_timeout_goes_to_the_timeout_destination(proxy):
    agent, _apw = proxy.subscriber()        # never registers: nobody is ever free
    backup, bpw = proxy.subscriber()
    _name, number = queue(proxy, [agent], max_wait=2, timeout_target=backup)
    backup_phone = proxy.phone(backup, bpw, "answer")
    _name2, number2 = queue(proxy, [backup], max_wait=1, timeout_code=486)
    proxy.kemictl("agent", "logout", backup, _name2)
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, number, timeout=15)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert len(backup_phone.invites()) == 1

    call = proxy.call(caller, cpw, number2, expect=486, timeout=15)
    assert call.proc.returncode == 0, explain(call, proxy.logs())


def test_routing_by_call_history_prefers_the_last_agent(proxy):
    (a, pa), (b, pb) = proxy.subscriber(), proxy.subscriber()
    name, number = queue(proxy, [a, b], strategy="linear", sticky_window=3600)
    known, kpw = proxy.subscriber()
    stranger, spw = proxy.subscriber()
    proxy.kemictl("agent", "logout", a, name)
    b_phone = proxy.phone(b, pb, "answer", calls=2)
    assert proxy.call(known, kpw, number).proc.returncode == 0        # b takes it (a logged out)
    proxy.kemictl("agent", "login", a, name)
    a_phone = proxy.phone(a, pa, "answer")

    again = proxy.call(known, kpw, number)                           # linear says a; history says b
    first_time = proxy.call(stranger, spw, number)                   # no history: a

    assert again.proc.returncode == 0 and first_time.proc.returncode == 0, explain(again, first_time, proxy.logs())
    assert [from_user(i) for i in b_phone.invites()] == [known, known]
    assert [from_user(i) for i in a_phone.invites()] == [stranger]


def test_hunt_group_overflows_into_a_queue(proxy):
    member, mpw = proxy.subscriber()
    agent, apw = proxy.subscriber()
    _qname, qnumber = queue(proxy, [agent])
    group = f"ov{next(_ids)}"
    service = f"5{member[1:]}9"
    proxy.kemictl("hunt", "import", group, "-", stdin=f"{member}\t0000\t{service}\t{member}\n")
    proxy.kemictl("hunt", "overflow", group, qnumber)
    busy = proxy.phone(member, mpw, "reject", code=486, phrase="Busy Here")
    agent_phone = proxy.phone(agent, apw, "answer")
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, service)

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert len(busy.invites()) == 1 and len(agent_phone.invites()) == 1


def test_caller_hanging_up_while_waiting_leaves_the_queue(proxy):
    agent, apw = proxy.subscriber()
    _name, number = queue(proxy, [agent])          # the agent is not registered yet
    caller, cpw = proxy.subscriber()
    call = proxy.call(caller, cpw, number, cancel_after_ms=1000, timeout=15)
    assert call.proc.returncode == 0, explain(call, proxy.logs())

    agent_phone = proxy.phone(agent, apw, "answer")
    second, spw = proxy.subscriber()
    call = proxy.call(second, spw, number)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert [from_user(i) for i in agent_phone.invites()] == [second], "the cancelled caller must not be offered"


# ------------------------------------------------------------------ the journal of real calls

def test_journal_shows_ringall_answered_elsewhere_and_queue_waits(proxy):
    (a, pa), (b, pb), (c, _pc) = [proxy.subscriber() for _ in range(3)]
    name, number = ringall(proxy, [a, b, c])
    proxy.phone(a, pa, "answer", ring_ms=800)
    proxy.phone(b, pb, "noanswer")
    caller, cpw = proxy.subscriber()
    assert proxy.call(caller, cpw, number).proc.returncode == 0

    def journal_of(member):
        return proxy.kemictl("journal", member).stdout

    wait_until(lambda: "answered elsewhere by " + a in journal_of(b), timeout=15)
    assert f"ring-all {name}" in journal_of(b)
    wait_until(lambda: "not registered" in journal_of(c), timeout=15)
    row = next(line for line in journal_of(a).splitlines() if caller in line)
    assert "answered" in row

    agent, apw = proxy.subscriber()
    qname, qnumber = queue(proxy, [agent])
    caller2, cpw2 = proxy.subscriber()
    waiting = threading.Thread(target=proxy.call, args=(caller2, cpw2, qnumber), kwargs={"timeout": 20})
    waiting.start()
    time.sleep(6)   # waits in line longer than tm's 4 s fr_timer, until the agent registers
    proxy.phone(agent, apw, "answer")
    waiting.join()
    wait_until(lambda: f"queue {qname}" in journal_of(agent), timeout=15)
    row = next(line for line in journal_of(agent).splitlines() if caller2 in line)
    _ring_seconds, wait_seconds = (float(v) for v in re.findall(r"(\d+(?:\.\d+)?)s\b", row)[:2])
    assert "answered" in row and wait_seconds >= 6.0, row
