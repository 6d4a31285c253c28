"""Agent keys (issue 12, item 5): feature codes from the agent's own phone log in and out,
pause with a reason, unpause and toggle do not disturb, with an immediate final answer; and
auto-pause after unanswered queue offers, visible in kemictl, metrics and the journal."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from kemi import journal
from tests.e2e.helpers import explain, header
from tests.e2e.rawphone import RawPhone
from tests.e2e.test_monitoring import exporter_samples, total

_ids = itertools.count(1)


def agent_in_queue(proxy, **options):
    agent, password = proxy.subscriber()
    name, number = f"ak{next(_ids)}", f"6{agent[1:]}"
    args = ["queue", "add", name, number]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    proxy.kemictl(*args)
    proxy.kemictl("queue", "agents", name, agent)
    phone = RawPhone(proxy.address, agent, password)
    proxy.phones.append(phone)
    return phone, name, number


def dial(phone: RawPhone, code: str):
    return phone.request("INVITE", f"sip:{code}@{phone.domain}", body=phone.sdp())


def state(proxy, number: str) -> str:
    return proxy.kemictl("agent", "show", number).stdout


def test_agent_keys_change_state_with_an_immediate_answer(proxy):
    phone, name, queue_number = agent_in_queue(proxy)
    steps = [
        ("*62", "logged out of all queues", "logged out"),
        (f"*61{queue_number}", f"logged in to queue {queue_number}", "logged in"),
        ("*6312", "paused (12)", "paused"),
        ("*64", "unpaused in 1 queue", "logged in"),
        ("*65", "do not disturb on", "dnd"),
        ("*65", "do not disturb off", "logged in"),
        (f"*62{queue_number}", f"logged out of queue {queue_number}", "logged out"),
    ]
    for code, words, shown in steps:
        reply = dial(phone, code)
        assert reply.status == 603 and words in reply.reason, (code, reply.first)
        assert shown in state(proxy, phone.number), (code, state(proxy, phone.number))
    assert not phone.requests("INVITE"), "a feature code never rings anyone"
    samples = exporter_samples(proxy.stack.exporter.url)
    assert total(samples, "kemi_feature_codes_total", action="pause", result="ok") >= 1


@pytest.mark.parametrize("code,status,words", [
    ("*61999999", 404, "no queue"),
    ("*64x", 484, "takes no number"),
    ("*8abc", 484, "digits only"),
])
def test_bad_agent_keys(proxy, code, status, words):
    phone, _name, _number = agent_in_queue(proxy)
    reply = dial(phone, code)
    assert reply.status == status and words in reply.reason, reply.first


def test_agent_keys_are_for_agents_and_need_credentials(proxy):
    number, password = proxy.subscriber()
    nobody = RawPhone(proxy.address, number, password)
    proxy.phones.append(nobody)
    reply = dial(nobody, "*63")
    assert reply.status == 403 and "no agent" in reply.reason, reply.first
    phone, _name, _number = agent_in_queue(proxy)
    impostor = RawPhone(proxy.address, phone.number, "wrong-password")
    proxy.phones.append(impostor)
    assert dial(impostor, "*62").status == 407, "no state change without the agent's password"
    assert "logged in" in state(proxy, phone.number)


def test_auto_pause_after_unanswered_offers(proxy):
    agent, password = proxy.subscriber()
    name, number = f"ap{next(_ids)}", f"6{agent[1:]}"
    proxy.kemictl("queue", "add", name, number, "--max-wait", "12", "--ring-timeout", "2")
    proxy.kemictl("queue", "agents", name, agent)
    out = proxy.kemictl("queue", "auto-pause", name, "2").stdout
    assert "after 2 unanswered" in out
    phone = proxy.phone(agent, password, "noanswer", calls=3)
    caller, cpw = proxy.subscriber()
    call = proxy.call(caller, cpw, number, expect=480, timeout=30)
    assert call.proc.returncode == 0, explain(call, phone.uas, proxy.logs())
    offers = {header(invite, "Via").split("branch=")[1].split(";")[0] for invite in phone.invites()}
    assert len(offers) == 2, "paused after the second unanswered offer, never offered again"
    shown = state(proxy, agent)
    assert "paused" in shown and "auto" in shown, shown
    records = "".join(p.read_text() for p in Path(journal.directory(proxy.settings.var_dir)).glob("*"))
    assert '"event":"agent_paused"' in records.replace(" ", "") and agent in records
    samples = exporter_samples(proxy.stack.exporter.url)
    assert total(samples, "kemi_agent_auto_pauses_total", queue=name) == 1
    # agents (issue 11): the pause reaches the database through the agent shipper
    from tests.e2e.test_agent_state import db_states, wait_until
    wait_until(lambda: db_states(proxy, {agent}) == {f"q:{number}:{agent}": "p:auto"}, what="p:auto stored")
    assert "nothing to unpause" not in proxy.kemictl("agent", "unpause", agent).stdout
    assert "logged in" in state(proxy, agent)


def test_kemictl_agent_commands_check_their_input(proxy):
    number, _ = proxy.subscriber()
    bad = proxy.kemictl("agent", "pause", number, "Bad Reason!", check=False)
    assert bad.returncode == 2 and "field 'reason'" in bad.stderr
    nobody = proxy.kemictl("agent", "show", number, check=False)
    assert nobody.returncode == 2 and "no member" in nobody.stderr
    limit = proxy.kemictl("queue", "auto-pause", "no-such-queue", "3", check=False)
    assert limit.returncode == 2 and "no queue named" in limit.stderr
    limit = proxy.kemictl("queue", "auto-pause", "x", "0", check=False)
    assert limit.returncode == 2 and "1..100" in limit.stderr
