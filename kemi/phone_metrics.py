"""Metrics of the phone features (issue 12): BLF subscriptions, feature codes, auto-pause.
No KSR; label values come from the fixed sets below (and provisioned queue names)."""
from __future__ import annotations

from prometheus_client import Counter

from kemi.metrics import PREFIX, name_label, safe

BLF_RESULTS = ("accepted", "bad_event", "unknown_target", "rate_limited", "forbidden", "error")
FEATURE_RESULTS = ("ok", "refused", "bad_input")

BLF_SUBSCRIBES = Counter(f"{PREFIX}_blf_subscribes", "SUBSCRIBE requests for the dialog event "
                         "package (busy lamp keys), by result", ["result"])
FEATURE_CODES = Counter(f"{PREFIX}_feature_codes", "Agent feature codes dialled from phones, by "
                        "action and result", ["action", "result"])
AUTO_PAUSES = Counter(f"{PREFIX}_agent_auto_pauses", "Agents paused automatically after too many "
                      "unanswered queue offers in a row, by queue", ["queue"])


@safe
def blf_subscribe(result: str) -> None:
    BLF_SUBSCRIBES.labels(result if result in BLF_RESULTS else "error").inc()


@safe
def feature_code(action: str, result: str) -> None:
    FEATURE_CODES.labels(action[:32], result if result in FEATURE_RESULTS else "bad_input").inc()


@safe
def auto_pause(queue: str) -> None:
    AUTO_PAUSES.labels(name_label(queue)).inc()
