"""Long calls (issue 12, item 6): waiting queue callers hear 182 again and again; a dialog
whose phone died is ended by in-dialog keepalives and its agent freed."""
from __future__ import annotations

import itertools

from tests.e2e.helpers import explain, wait_until
from tests.e2e.rawphone import RawPhone

_ids = itertools.count(1)


def test_waiting_caller_gets_182_repeatedly(proxy):
    agent, _ = proxy.subscriber()
    name, number = f"lc{next(_ids)}", f"6{agent[1:]}"
    proxy.kemictl("queue", "add", name, number, "--max-wait", "6")
    proxy.kemictl("queue", "agents", name, agent)          # never registered: nobody to offer
    out = proxy.kemictl("queue", "progress-interval", name, "1").stdout
    assert "every 1 s" in out
    caller, cpw = proxy.subscriber()
    call = proxy.call(caller, cpw, number, expect=480, timeout=30)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    queued = call.received("SIP/2.0 182")
    assert len(queued) >= 4, f"one 182 on arrival, then about one a second: {len(queued)}"
    bad = proxy.kemictl("queue", "progress-interval", name, "0", check=False)
    assert bad.returncode == 2 and "1..600" in bad.stderr


def test_dead_phone_dialog_is_ended_by_keepalives(proxy):
    (a, pa), (b, pb) = proxy.subscriber(), proxy.subscriber()
    caller = RawPhone(proxy.address, a, pa, media_port=4010)
    agent = RawPhone(proxy.address, b, pb, media_port=4012)
    proxy.phones.extend([caller, agent])
    assert agent.register().status == 200
    answer = caller.call(b)
    assert answer.status == 200, answer.text()
    caller.ack(answer)
    call_id = answer.get("Call-ID")
    assert call_id in proxy.stack.kamailio.rpc("dlg.list")
    agent.stop()                 # the agent's phone dies mid-call: no BYE, no answers
    wait_until(lambda: caller.requests("BYE"), timeout=90)   # ka_interval 30 s + 408 + 10 s
    assert caller.requests("OPTIONS"), "the live end was asked too (and answered)"
    wait_until(lambda: call_id not in proxy.stack.kamailio.rpc("dlg.list"), timeout=15)
