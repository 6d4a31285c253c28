"""Kamailio's own statistics (core and modules, `kamcmd stats.get_statistics all`) as
Prometheus metrics with Prometheus names, as users of xhttp_prom and kamailio_exporter expect.
Pure: a dict of 'group:name' -> value in, metric families out (tools/exporter.py serves them).

The SIP ones get labels and types:
  kamailio_sip_requests_received_total{method}       core:rcv_requests_<method>
  kamailio_sip_replies_received_total{class}         core:rcv_replies_<N>xx
  kamailio_sip_replies_sent_total{class}             sl:<N>xx_replies and sl:<NNN>_replies (stateless)
                                                     + tmx:<N>xx_transactions (stateful)
  kamailio_tm_transactions_total{side}               tmx:UAS_transactions / UAC_transactions
  kamailio_tm_transactions_active                    tmx:active_transactions
  kamailio_tcp_connections_open                      tcp:current_opened_connections
  kamailio_shm_bytes{kind}                           shmem:<kind>_size (used, real_used, max_used, free, total)
Every other statistic is a gauge named kamailio_<group>_<name> (characters outside
[a-zA-Z0-9_] become _), so nothing Kamailio counts is hidden.
"""
from __future__ import annotations

import re

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

_REQ = re.compile(r"^core:rcv_requests_([a-z]+)$")
_RPL_RCV = re.compile(r"^core:rcv_replies_([1-6])xx$")
_RPL_SL = re.compile(r"^sl:([1-6])(?:xx|[0-9]{2})_replies$")   # 4xx_replies: the 4xx without a counter of their own
_RPL_TM = re.compile(r"^tmx:([1-6])xx_transactions$")
_SHM = re.compile(r"^shmem:(used|real_used|max_used|free|total)_size$")
_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def families(stats: dict[str, float]) -> list:
    requests = CounterMetricFamily("kamailio_sip_requests_received", "SIP requests Kamailio received, "
                                   "by method (core statistics)", labels=["method"])
    replies_in = CounterMetricFamily("kamailio_sip_replies_received", "SIP replies Kamailio received, by "
                                     "class", labels=["class"])
    replies_out = CounterMetricFamily("kamailio_sip_replies_sent", "Final SIP replies Kamailio sent, by "
                                      "class (stateless sl replies plus transactions ended with that class)",
                                      labels=["class"])
    transactions = CounterMetricFamily("kamailio_tm_transactions", "SIP transactions created, by side",
                                       labels=["side"])
    shm = GaugeMetricFamily("kamailio_shm_bytes", "Kamailio shared memory, by kind", labels=["kind"])
    sent: dict[str, float] = {}
    other = []
    for key, value in sorted(stats.items()):
        if m := _REQ.match(key):
            requests.add_metric([m.group(1).upper()], value)
        elif m := _RPL_RCV.match(key):
            replies_in.add_metric([f"{m.group(1)}xx"], value)
        elif (m := _RPL_SL.match(key)) or (m := _RPL_TM.match(key)):
            sent[f"{m.group(1)}xx"] = sent.get(f"{m.group(1)}xx", 0.0) + value
        elif key in ("tmx:UAS_transactions", "tmx:UAC_transactions"):
            transactions.add_metric([key[4:7]], value)
        elif m := _SHM.match(key):
            shm.add_metric([m.group(1)], value)
        elif key == "tmx:active_transactions":
            other.append(GaugeMetricFamily("kamailio_tm_transactions_active", "SIP transactions in "
                                           "progress now", value=value))
        elif key == "tcp:current_opened_connections":
            other.append(GaugeMetricFamily("kamailio_tcp_connections_open", "TCP connections open now",
                                           value=value))
        else:
            group, _, name = key.partition(":")
            metric = _UNSAFE.sub("_", f"kamailio_{group}_{name}")
            other.append(GaugeMetricFamily(metric, f"Kamailio statistic {key}", value=value))
    for cls, value in sorted(sent.items()):
        replies_out.add_metric([cls], value)
    return [f for f in (requests, replies_in, replies_out, transactions, shm, *other) if f.samples]
