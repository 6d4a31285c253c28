"""Monitoring for phones (issue 12, item 7): Kamailio's own SIP statistics in /metrics with
Prometheus names, answers and seizures of the same calls, MOS coverage. (Every dashboard panel,
the new ones included, is checked against a real Prometheus in test_monitoring.py.)

The stack is shared with other test modules running at the same time, so this test counts only
what it can tell apart: its own calls go to two ring-all groups of its own, and the call
metrics are read for those group names; Kamailio's statistics (one counter for the whole
proxy) are checked as lower bounds."""
from __future__ import annotations

import uuid

from tests.e2e.helpers import explain, wait_until
from tests.e2e.test_monitoring import exporter_samples, total


def ringall(proxy, member: str) -> tuple[str, str]:
    name, number = f"pmon{uuid.uuid4().hex[:8]}", f"7{member[1:]}"
    proxy.kemictl("ringall", "add", name, number)
    proxy.kemictl("ringall", "members", name, member)
    return name, number


def test_kamailio_sip_statistics_and_same_call_asr(proxy):
    url = proxy.stack.exporter.url
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    c, pc = proxy.subscriber()
    answering, answering_number = ringall(proxy, b)
    busy, busy_number = ringall(proxy, c)
    proxy.phone(b, pb, "answer")
    proxy.phone(c, pc, "reject", code=486)
    before = exporter_samples(url)
    answered = proxy.call(a, pa, answering_number)
    assert answered.proc.returncode == 0, explain(answered, proxy.logs())
    missed = proxy.call(a, pa, busy_number, expect=486)
    assert missed.proc.returncode == 0, explain(missed, proxy.logs())
    after = exporter_samples(url)

    def new(metric, **labels):
        return total(after, metric, **labels) - total(before, metric, **labels)

    # two INVITEs (each twice: 407 first), ACKs and the BYE, as Kamailio counted them (other
    # modules' calls on this stack only add to these)
    assert new("kamailio_sip_requests_received_total", method="INVITE") >= 4
    assert new("kamailio_sip_requests_received_total", method="BYE") >= 1
    assert new("kamailio_sip_replies_sent_total", **{"class": "4xx"}) >= 2      # 407, 407
    assert new("kamailio_sip_replies_received_total", **{"class": "4xx"}) >= 1  # the busy member's 486
    assert new("kamailio_sip_replies_received_total", **{"class": "2xx"}) >= 2  # 200 INVITE, 200 BYE
    # tmx computes its transaction totals at most once a second per process (a cached sum):
    # scrape again until they include these calls
    wait_until(lambda: total(exporter_samples(url), "kamailio_tm_transactions_total", side="UAS")
               - total(before, "kamailio_tm_transactions_total", side="UAS") >= 2, timeout=15)
    assert total(after, "kamailio_shm_bytes", kind="real_used") > 0
    assert "kamailio_tcp_connections_open{}" in after
    # nobody watches these numbers: their calls cost no BLF PUBLISH (no presentity for them)
    presentities = proxy.stack.kamailio.rpc("presence.presentity_list")
    assert not any(f"sip:{n}@" in presentities for n in (a, b, c)), presentities
    # ASR from the same calls: one answered, one not, each under its own group's name
    assert new("kemi_call_results_total", kind="ringall", name=answering, answered="yes") == 1
    assert new("kemi_call_results_total", kind="ringall", name=answering, answered="no") == 0
    assert new("kemi_call_results_total", kind="ringall", name=busy, answered="no") == 1
    assert new("kemi_call_results_total", kind="ringall", name=busy, answered="yes") == 0
    # the answered call hung up: counted for MOS coverage (SIPp sends no RTCP: no MOS)
    assert new("kemi_call_quality_reports_total", kind="ringall", name=answering) == 1
    assert new("kemi_call_quality_reports_total", kind="ringall", name=busy) == 0
