"""Feature codes and pickup from phones (issue 12): the one place the handler asks whether a new
INVITE is a feature rather than a call. KSR adapter over kemi.feature_codes (pure), kemi.pickup
and kemi.agent_keys."""
from __future__ import annotations

import KSR  # provided by app_python3

from kemi import agent_keys, feature_codes, phone_metrics, pickup
from kemi.ksr import EXIT, log_info, pv


class Features:
    def __init__(self, settings):
        self.codes = feature_codes.codes_from(settings)   # a bad code stops the start, naming it

    def handle(self, directory, number: str, store) -> int | None:
        """None: not a feature, route the call. Else the route's return value (answered)."""
        if pv("$hdr(Replaces)"):
            handled = pickup.by_replaces(number, directory)
            if handled is not None:
                phone_metrics.feature_code("pickup", "ok")
                return handled
        try:
            feature = feature_codes.parse(pv("$rU") or "", self.codes)
        except feature_codes.FeatureError as err:
            log_info(f"feature code {pv('$rU')!r} from {number}: {err.status} {err.reason}")
            phone_metrics.feature_code("unknown", "bad_input")
            KSR.sl.sl_send_reply(err.status, err.reason)
            return EXIT
        if feature is None:
            return None
        if feature.action == "pickup":
            phone_metrics.feature_code("pickup", "ok")
            return pickup.by_code(feature.argument, number, directory)
        return agent_keys.apply(feature, number, directory, store)
