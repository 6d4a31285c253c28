"""tools/media_metrics.py: the media service's statistics file as Prometheus families."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from tools import media_metrics

STATS = {"time": 1000.0, "legs": 7, "active": 7, "lateness_ms_p50": 0.5, "lateness_ms_p99": 2.0,
         "lateness_ms_max": 3.0, "jitter_ms_p50": 1.0, "jitter_ms_p99": 4.0,
         "counters": {"calls": 12, "full": 1, "info_digits": 3, "bad name!": 5}}


def text(stats, now):
    class C:
        def collect(self):
            return media_metrics.families(stats, 500, now)
    reg = CollectorRegistry()
    reg.register(C())
    return generate_latest(reg).decode()


def test_fresh_statistics_become_metrics():
    out = text(STATS, 1003.0)
    assert "kemi_media_up 1.0" in out and "kemi_media_legs 7.0" in out and "kemi_media_max_legs 500.0" in out
    assert 'kemi_media_send_lateness_seconds{quantile="0.99"} 0.002' in out
    assert 'kemi_media_send_lateness_seconds{quantile="1"} 0.003' in out
    assert 'kemi_media_receive_jitter_seconds{quantile="0.99"} 0.004' in out
    assert 'kemi_media_events_total{event="calls"} 12.0' in out
    assert 'kemi_media_events_total{event="full"} 1.0' in out
    assert "bad name" not in out        # only [a-z_] event names become labels


def test_stale_or_missing_statistics_say_down():
    for stats in (STATS, None, {}):
        out = text(stats, 1000.0 + media_metrics.STALE_SECONDS + 1)
        assert "kemi_media_up 0.0" in out and "kemi_media_legs" not in out


def test_unreadable_file_is_none(tmp_path):
    path = tmp_path / "media-stats.json"
    assert media_metrics.read_stats(path) is None
    path.write_text("{not json")
    assert media_metrics.read_stats(path) is None
    path.write_text("[1, 2]")
    assert media_metrics.read_stats(path) is None
