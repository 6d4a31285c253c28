"""The media-service contract (contract.md), encoded and decoded in one place. Pure.

Request: R-URI `sip:<app>@<media_sip>` and `X-Kemi-App: <app>;<key>=<value>;...` with values
percent-encoded. Answer of a non-terminal app: `302` with `X-Kemi-Outcome: <outcome>` (and
`X-Kemi-Digits` for `digits`); any other failure of that branch means outcome `error`.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from kemi.core.flow import Node

OUTCOMES = frozenset({"done", "digits", "timeout", "invalid", "error"})
APP_KEYS = {
    "voicemail": ("box",),
    "vmaccess": ("box",),
    "play": ("audio", "loop"),
    "menu": ("prompt", "invalid", "digits", "valid", "timeout", "retries"),
}
MENU_DEFAULTS = {"digits": "1-1", "timeout": "5", "retries": "2", "invalid": "invalid", "valid": ""}


@dataclass(frozen=True)
class MediaRequest:
    ruri: str
    header: str           # the X-Kemi-App header line without CRLF


@dataclass(frozen=True)
class MediaResult:
    outcome: str
    digits: str = ""


def params(node: Node) -> tuple[tuple[str, str], ...]:
    s = node.settings
    out = []
    for key in APP_KEYS[node.type]:
        value = s.get(key)
        if node.type == "menu" and value is None:
            value = MENU_DEFAULTS.get(key)
        if node.type == "play" and key == "loop" and value is None:
            value = 1
        if value is None:
            continue
        out.append((key, ",".join(map(str, value)) if isinstance(value, list) else str(value)))
    return tuple(out)


def request(app: str, values: tuple[tuple[str, str], ...], media_sip: str) -> MediaRequest:
    encoded = "".join(f";{k}={quote(v, safe='')}" for k, v in values)
    return MediaRequest(f"sip:{app}@{media_sip}", f"X-Kemi-App: {app}{encoded}")


def result(status: int, outcome_header: str | None, digits_header: str | None) -> MediaResult:
    """The media branch's final reply -> the flow outcome (anything unexpected is `error`)."""
    if status != 302 or not outcome_header:
        return MediaResult("error")
    outcome = outcome_header.strip().lower()
    if outcome not in OUTCOMES:
        return MediaResult("error")
    if outcome == "digits":
        digits = (digits_header or "").strip()
        if not digits or len(digits) > 32 or any(c not in "0123456789*#" for c in digits):
            return MediaResult("error")
        return MediaResult("digits", digits)
    return MediaResult(outcome)
