"""Monitoring for phones (issue 12, item 7): Kamailio's own SIP statistics in /metrics with
Prometheus names, answers and seizures of the same calls, MOS coverage. (Every dashboard panel,
the new ones included, is checked against a real Prometheus in test_monitoring.py.)"""
from __future__ import annotations

from tests.e2e.helpers import explain
from tests.e2e.test_monitoring import exporter_samples, total


def test_kamailio_sip_statistics_and_same_call_asr(proxy):
    url = proxy.stack.exporter.url
    before = exporter_samples(url)
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    proxy.phone(b, pb, "answer")
    answered = proxy.call(a, pa, b)
    assert answered.proc.returncode == 0, explain(answered, proxy.logs())
    missed = proxy.call(a, pa, "999999999", expect=404)
    assert missed.proc.returncode == 0, explain(missed, proxy.logs())
    after = exporter_samples(url)

    def new(metric, **labels):
        return total(after, metric, **labels) - total(before, metric, **labels)

    # the REGISTER, two INVITEs (each twice: 407 first), ACKs and the BYE, as Kamailio counted them
    assert new("kamailio_sip_requests_received_total", method="INVITE") >= 4
    assert new("kamailio_sip_requests_received_total", method="REGISTER") >= 1
    assert new("kamailio_sip_requests_received_total", method="BYE") >= 1
    # nobody watches these numbers: their calls cost no BLF PUBLISH
    assert new("kamailio_sip_requests_received_total", method="PUBLISH") == 0
    assert new("kamailio_sip_replies_sent_total", **{"class": "4xx"}) >= 3      # 407, 407, 404
    assert new("kamailio_sip_replies_received_total", **{"class": "2xx"}) >= 2  # 200 INVITE, 200 BYE
    assert new("kamailio_tm_transactions_total", side="UAS") >= 2
    assert total(after, "kamailio_shm_bytes", kind="real_used") > 0
    assert "kamailio_tcp_connections_open{}" in after
    # ASR from the same calls: one answered, one not
    assert new("kemi_call_results_total", answered="yes") == 1
    assert new("kemi_call_results_total", answered="no") == 1
    # the answered call hung up: counted for MOS coverage (SIPp sends no RTCP: no MOS)
    assert new("kemi_call_quality_reports_total") == 1
