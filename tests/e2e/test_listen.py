"""Supervisor listen-in (4#, seed 001) through rtpengine's subscriptions, with RTP streamed by
the agent's and the client's SIPp phones and counted where the supervisor receives it."""
from __future__ import annotations

import itertools
import socket
import threading

from tests.e2e import sipp
from tests.e2e.helpers import explain, wait_until

_ids = itertools.count(1)


class RtpCounter:
    """Receives on one UDP port and counts RTP packets per sending address."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.sources: dict[tuple, int] = {}
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data, source = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            if len(data) >= 12 and data[0] >> 6 == 2:     # RTP version 2
                self.sources[source] = self.sources.get(source, 0) + 1

    def stop(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def supervised_agent(proxy, kind: str = "queue"):
    agent, apw = proxy.subscriber()
    boss, bpw = proxy.subscriber()
    name = f"sup{next(_ids)}"
    proxy.kemictl("queue", "add", name, f"6{agent[1:]}1")
    proxy.kemictl("queue", "agents", name, agent)
    proxy.kemictl("supervisor", "add", boss, "queue", name)
    return (agent, apw), (boss, bpw)


def test_supervisor_hears_both_sides_and_nobody_hears_the_supervisor(proxy):
    (agent, apw), (boss, bpw) = supervised_agent(proxy)
    client, cpw = proxy.subscriber()
    agent_phone = proxy.phone(agent, apw, "answer", rtp=True)
    results = {}
    talk = threading.Thread(target=lambda: results.setdefault(
        "call", proxy.call(client, cpw, agent, hold_ms=8000, rtp=True, timeout=30)))
    talk.start()
    wait_until(lambda: agent_phone.uas.received("ACK"))
    side_a, side_b = RtpCounter(), RtpCounter()
    try:
        spy = sipp.listen(proxy.address, boss, bpw, agent, proxy.workdir, (side_a.port, side_b.port), hold_ms=3000)
    finally:
        side_a.stop()
        side_b.stop()
    talk.join()

    assert spy.proc.returncode == 0, explain(spy, proxy.logs())
    assert results["call"].proc.returncode == 0, "the supervisor's BYE must end only the listening"
    assert len(agent_phone.uas.received("BYE")) == 1
    offer = spy.received("SIP/2.0 200")[0]
    assert offer.count("m=audio") == 2 and offer.count("a=sendonly") == 2, offer
    counts = [sum(side_a.sources.values()), sum(side_b.sources.values())]
    assert min(counts) > 20, f"RTP packets per side: {counts}"
    # one stream per side: each port hears exactly one sender, and not the same one
    assert len(side_a.sources) == 1 and len(side_b.sources) == 1, (side_a.sources, side_b.sources)
    assert set(side_a.sources) != set(side_b.sources)


def test_only_supervisors_may_listen(proxy):
    (agent, apw), (boss, bpw) = supervised_agent(proxy)
    stranger, spw = proxy.subscriber()
    client, cpw = proxy.subscriber()
    agent_phone = proxy.phone(agent, apw, "answer")
    talk = threading.Thread(target=proxy.call, args=(client, cpw, agent), kwargs={"hold_ms": 3000})
    talk.start()
    wait_until(lambda: agent_phone.uas.received("ACK"))
    refused = proxy.call(stranger, spw, f"4%23{agent}", expect=403)
    talk.join()
    assert refused.proc.returncode == 0, explain(refused, proxy.logs())
    assert "does not supervise" in refused.received("SIP/2.0 403")[0]


def test_listen_without_a_current_call_and_whisper_barge(proxy):
    (agent, _apw), (boss, bpw) = supervised_agent(proxy)
    idle = proxy.call(boss, bpw, f"4%23{agent}", expect=480)
    assert idle.proc.returncode == 0, explain(idle, proxy.logs())
    assert "has no current call" in idle.received("SIP/2.0 480")[0]
    for code in ("5", "6"):   # whisper and barge: authorised like 4#, then the same answer
        idle = proxy.call(boss, bpw, f"{code}%23{agent}", expect=480)
        assert idle.proc.returncode == 0, explain(idle)
        assert "has no current call" in idle.received("SIP/2.0 480")[0]
