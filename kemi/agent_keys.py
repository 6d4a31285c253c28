"""Agent keys (issue 12, item 5): filled in by the next commit."""
from __future__ import annotations

import KSR  # provided by app_python3

from kemi.ksr import EXIT


def apply(feature, number, directory, store) -> int:
    KSR.sl.sl_send_reply(501, "Not Implemented - agent keys")
    return EXIT
