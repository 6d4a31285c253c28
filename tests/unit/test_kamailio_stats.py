"""Kamailio statistics -> Prometheus families (names, labels, types)."""
from kemi.kamailio_stats import families

STATS = {
    "core:rcv_requests": 12, "core:rcv_requests_invite": 5, "core:rcv_requests_register": 7,
    "core:rcv_replies_1xx": 3, "core:rcv_replies_2xx": 4, "core:rcv_replies_1xx_invite": 3,
    "sl:2xx_replies": 7, "sl:4xx_replies": 2, "sl:407_replies": 5, "sl:200_replies": 1,
    "tmx:2xx_transactions": 4, "tmx:4xx_transactions": 1,
    "tmx:UAS_transactions": 5, "tmx:UAC_transactions": 6, "tmx:active_transactions": 2,
    "tcp:current_opened_connections": 3, "shmem:real_used_size": 1000, "shmem:total_size": 4000,
    "shmem:fragments": 9, "dialog:active_dialogs": 1, "usrloc:location-contacts": 4,
}


def samples():
    out = {}
    for family in families(STATS):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_sip_statistics_get_prometheus_names_and_labels():
    s = samples()
    assert s[("kamailio_sip_requests_received_total", (("method", "INVITE"),))] == 5
    assert s[("kamailio_sip_requests_received_total", (("method", "REGISTER"),))] == 7
    assert s[("kamailio_sip_replies_received_total", (("class", "2xx"),))] == 4
    assert s[("kamailio_sip_replies_sent_total", (("class", "2xx"),))] == 7 + 1 + 4   # sl (class and code counters) + tm
    assert s[("kamailio_sip_replies_sent_total", (("class", "4xx"),))] == 2 + 5 + 1
    assert s[("kamailio_tm_transactions_total", (("side", "UAS"),))] == 5
    assert s[("kamailio_tm_transactions_active", ())] == 2
    assert s[("kamailio_tcp_connections_open", ())] == 3
    assert s[("kamailio_shm_bytes", (("kind", "real_used"),))] == 1000


def test_every_other_statistic_is_kept_with_a_safe_name():
    s = samples()
    assert s[("kamailio_core_rcv_requests", ())] == 12
    assert s[("kamailio_core_rcv_replies_1xx_invite", ())] == 3
    assert s[("kamailio_shmem_fragments", ())] == 9
    assert s[("kamailio_usrloc_location_contacts", ())] == 4
    names = [name for name, _ in s]
    assert all(n.replace("_", "").isalnum() for n in names)


def test_no_statistics_no_samples():
    assert families({}) == []
