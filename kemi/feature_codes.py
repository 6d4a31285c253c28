"""Feature codes dialled from a phone: call pickup and agent keys. Pure: no I/O, no KSR.

    feature  = code [ argument ]
    code     = one of the configured codes (kemi/config.py `code_*`; defaults *8, *61..*65)
    argument = 1*32 DIGIT          ; a SIP number (pickup), a queue number (login/logout),
                                   ; a reason code (pause); none for unpause and dnd

The codes start with * or # (never a valid dial string, so they cannot shadow a number) and
no code may be a prefix of another. `parse` returns None for anything that is not a feature
code, and raises FeatureError (484 with a reason phrase) for a code with a bad argument.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

ACTIONS = ("pickup", "login", "logout", "pause", "unpause", "dnd")
TAKES_ARGUMENT = {"pickup": True, "login": True, "logout": True, "pause": True, "unpause": False, "dnd": False}
_ARG = re.compile(r"[0-9]{1,32}")


class FeatureError(ValueError):
    def __init__(self, status: int, reason: str):
        super().__init__(f"{status} {reason}")
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Feature:
    action: str
    argument: str | None = None


def codes_from(settings) -> dict[str, str]:
    """code -> action, checked: each starts with * or #, none is a prefix of another."""
    codes = {getattr(settings, f"code_{action}"): action for action in ACTIONS}
    if len(codes) != len(ACTIONS):
        raise ValueError("feature codes must differ from each other")
    for code in codes:
        if not re.fullmatch(r"[*#][0-9*#]{1,8}", code):
            raise ValueError(f"feature code {code!r}: must be * or # and 1-8 digits, * or #")
        clash = [other for other in codes if other != code and other.startswith(code)]
        if clash:
            raise ValueError(f"feature code {code!r} is a prefix of {clash[0]!r}")
    return codes


def parse(raw: str, codes: dict[str, str]) -> Feature | None:
    text = unquote(raw or "")
    if not text or text[0] not in "*#":
        return None
    for code in sorted(codes, key=len, reverse=True):
        if text.startswith(code):
            action, argument = codes[code], text[len(code):]
            if not argument:
                return Feature(action)
            if not TAKES_ARGUMENT[action]:
                raise FeatureError(484, f"Address Incomplete - {code} ({action}) takes no number")
            if not _ARG.fullmatch(argument):
                raise FeatureError(484, f"Address Incomplete - {code} ({action}) takes digits only")
            return Feature(action, argument)
    return None
