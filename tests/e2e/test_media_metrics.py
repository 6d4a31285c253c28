"""The media service's statistics reach Prometheus (issue 13): the exporter serves them from
var/run/media-stats.json; a voicemail call moves the counters; a stopped service turns
kemi_media_up to 0."""
from __future__ import annotations

import os
import signal

from tests.e2e.edge_helpers import metric
from tests.e2e.helpers import wait_until
from tests.e2e.test_voicemail import box, leave_message, run


def test_media_statistics_are_exported(proxy):
    wait_until(lambda: metric(proxy, "kemi_media_up") == 1.0, timeout=20)
    assert metric(proxy, "kemi_media_max_legs") == proxy.settings.media_max_legs
    before = metric(proxy, "kemi_media_events_total", event="calls")
    owner, _ = box(proxy, "--always", "yes")
    caller, caller_pw = proxy.subscriber()
    run(leave_message(proxy, caller, caller_pw, owner, seconds=1.0))
    wait_until(lambda: metric(proxy, "kemi_media_events_total", event="calls") >= before + 1, timeout=20)
    text_ok = metric(proxy, "kemi_media_send_lateness_seconds", quantile="0.99")
    assert 0 < text_ok < 1.0, text_ok     # a measured lateness, in seconds
    # the ended leg's jitter (counted when the leg is released, in the next statistics file)
    wait_until(lambda: metric(proxy, "kemi_media_receive_jitter_seconds", quantile="0.99") > 0, timeout=20)


def test_a_stopped_media_service_is_reported_down(proxy):
    media = proxy.stack.media
    os.kill(media.proc.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: metric(proxy, "kemi_media_up") == 0.0, timeout=30)
    finally:
        os.kill(media.proc.pid, signal.SIGCONT)
    wait_until(lambda: metric(proxy, "kemi_media_up") == 1.0, timeout=20)
