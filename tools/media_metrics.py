"""The media service's statistics as Prometheus metrics (issue 13): the exporter
(tools/exporter.py) reads var/run/media-stats.json, which the service rewrites every 2 s
(media/service.py stats()), on each scrape. Pure apart from reading the file.

  kemi_media_up                      1 if the statistics file is fresh (< STALE_SECONDS old)
  kemi_media_legs                    RTP legs running now
  kemi_media_max_legs                the service's capacity (KEMI_MEDIA_MAX_LEGS)
  kemi_media_send_lateness_seconds   {quantile="0.5|0.99|1"} 20 ms media clock tick lateness, last 10 s
  kemi_media_receive_jitter_seconds  {quantile="0.5|0.99"} RFC 3550 jitter of recently ended legs
  kemi_media_events_total            {event=...} calls, refusals (full, untrusted, bad_request),
                                     digits by INFO, NOTIFYs, voicemail emails, errors, ...
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

STALE_SECONDS = 10.0
EVENT = re.compile(r"[a-z_]{1,40}")


def stats_path(var_dir: str) -> Path:
    return Path(var_dir) / "run" / "media-stats.json"


def read_stats(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def families(stats: dict | None, max_legs: int, now: float | None = None) -> list:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    now = time.time() if now is None else now
    fresh = stats is not None and now - float(stats.get("time", 0) or 0) < STALE_SECONDS
    up = GaugeMetricFamily("kemi_media_up", "1 if the media service wrote its statistics in the last "
                           f"{STALE_SECONDS:.0f} s (var/run/media-stats.json)")
    up.add_metric([], 1.0 if fresh else 0.0)
    capacity = GaugeMetricFamily("kemi_media_max_legs", "Calls the media service carries at once (KEMI_MEDIA_MAX_LEGS)")
    capacity.add_metric([], float(max_legs))
    out = [up, capacity]
    if not fresh:
        return out
    legs = GaugeMetricFamily("kemi_media_legs", "RTP legs of the media service running now")
    legs.add_metric([], float(stats.get("legs", 0) or 0))
    late = GaugeMetricFamily("kemi_media_send_lateness_seconds", "Lateness of the media service's 20 ms send "
                             "clock ticks over the last 10 s, by quantile (1 = maximum)", labels=["quantile"])
    for q, key in (("0.5", "lateness_ms_p50"), ("0.99", "lateness_ms_p99"), ("1", "lateness_ms_max")):
        late.add_metric([q], float(stats.get(key, 0) or 0) / 1000)
    jitter = GaugeMetricFamily("kemi_media_receive_jitter_seconds", "RFC 3550 interarrival jitter of the media "
                               "service's recently ended legs, by quantile", labels=["quantile"])
    for q, key in (("0.5", "jitter_ms_p50"), ("0.99", "jitter_ms_p99")):
        jitter.add_metric([q], float(stats.get(key, 0) or 0) / 1000)
    events = CounterMetricFamily("kemi_media_events", "Media service events since it started: calls, refusals "
                                 "(full = at capacity, untrusted, bad_request), info_digits, notifies, "
                                 "voicemail emails, errors, ...", labels=["event"])
    for name, value in sorted((stats.get("counters") or {}).items()):
        if EVENT.fullmatch(str(name)):
            events.add_metric([str(name)], float(value))
    return out + [legs, late, jitter, events]


class MediaCollector:
    """Registered by the exporter: the media statistics at each scrape."""

    def __init__(self, settings):
        self.path = stats_path(settings.var_dir)
        self.max_legs = settings.media_max_legs

    def collect(self):
        return families(read_stats(self.path), self.max_legs)
