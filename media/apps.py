"""The X-Kemi-App header of the flow/media contract, parsed into frozen app requests. Pure.

    X-Kemi-App: <app>;<key>=<value>;...      values percent-encoded
    voicemail;box=N | vmaccess[;box=N] | play;audio=A;loop=n |
    menu;prompt=A;invalid=A;digits=min-max;valid=1,2,3;timeout=s;retries=n
A bad header raises AppError(status, reason): the service answers it as a SIP reply.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

AUDIO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
BOX = re.compile(r"[0-9]{1,32}")
ROOM = re.compile(r"[0-9]{2,32}")


class AppError(ValueError):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Voicemail:
    box: str


@dataclass(frozen=True)
class VmAccess:
    box: str | None = None    # given: the proxy authenticated the caller as the box's owner


@dataclass(frozen=True)
class Play:
    audio: str
    loop: int = 1


@dataclass(frozen=True)
class Menu:
    prompt: str
    invalid: str | None = None
    min_digits: int = 1
    max_digits: int = 1
    valid: tuple[str, ...] = ()     # empty: any input of the right length
    timeout: float = 5.0
    retries: int = 2


@dataclass(frozen=True)
class Hold:
    """A waiting queue caller (issue 13, section 4): music on early media, and every
    `interval` seconds the caller's position (0: never). Ends only when the proxy CANCELs
    the branch (an agent is free) or the caller hangs up. The proxy updates the position
    with an INFO (Content-Type application/x-kemi-position, body: the number)."""
    music: str
    interval: int = 30
    position: int = 0
    max_seconds: int = 3600   # ends by itself (302 timeout) after this, should the proxy forget it


@dataclass(frozen=True)
class Mwi:
    """Not a call: a SUBSCRIBE to a box's message-summary (RFC 3842), relayed by the proxy."""
    box: str


@dataclass(frozen=True)
class Conference:
    """A conference room (issue 14): 200, PIN by DTMF, then the room's mix until hang-up/kick."""
    room: str


@dataclass(frozen=True)
class Callback:
    """callback (seed 002): a caller rings the callback number; the service lets it ring,
    releases it unanswered and calls back (media/callback.py). `caller` is empty when hidden."""
    number: str
    caller: str = ""
    hidden: bool = False


@dataclass(frozen=True)
class Supervised:
    """A call from a queue with supervision on, offered to `agent` (media/supervise.py): the
    service calls the agent, relays the ringing, answers when the agent answers, bridges."""
    agent: str
    caller: str = ""
    ring: int = 15


@dataclass(frozen=True)
class Spy:
    """A supervisor joining a supervised call (`call`: either leg's Call-ID)."""
    call: str
    mode: str = "listen"


App = Voicemail | VmAccess | Play | Menu | Hold | Mwi | Conference | Callback | Supervised | Spy
TERMINAL = (Voicemail, VmAccess, Conference, Supervised, Spy)
CALL_ID = re.compile(r"[A-Za-z0-9._@:+-]{1,128}")


def parse(header: str | None) -> App:
    if not header:
        raise AppError(400, "Bad Request - X-Kemi-App header missing")
    name, *pairs = [p.strip() for p in header.split(";")]
    params: dict[str, str] = {}
    for pair in pairs:
        if not pair:
            continue
        key, eq, value = pair.partition("=")
        if not eq or not re.fullmatch(r"[a-z]{1,16}", key):
            raise AppError(400, f"Bad Request - X-Kemi-App parameter {pair[:20]!r} is not key=value")
        params[key] = unquote(value)
    try:
        if name == "voicemail":
            return Voicemail(_box(params.get("box"), required=True))
        if name == "vmaccess":
            return VmAccess(_box(params.get("box"), required=False))
        if name == "hold":
            return Hold(_audio(params, "music"), _int(params, "interval", 30, 0, 3600),
                        _int(params, "position", 0, 0, 100000), _int(params, "max", 3600, 1, 90000))
        if name == "mwi":
            return Mwi(_box(params.get("box"), required=True))
        if name == "play":
            return Play(_audio(params, "audio"), _int(params, "loop", 1, 1, 100))
        if name == "menu":
            return _menu(params)
        if name == "conference":   # conference rooms (issue 14)
            room = params["room"]
            if not ROOM.fullmatch(room):
                raise AppError(400, "Bad Request - conference room must be 2-32 digits")
            return Conference(room)
        if name == "callback":   # callback
            return _callback(params)
        if name == "supervised":   # whisper and barge
            caller = params.get("caller", "")
            if caller and not re.fullmatch(r"[0-9]{1,32}", caller):
                raise AppError(400, "Bad Request - supervised caller must be 1-32 digits or empty")
            return Supervised(_box(params.get("agent"), required=True), caller, _int(params, "ring", 15, 1, 600))
        if name == "spy":   # whisper and barge
            if not CALL_ID.fullmatch(params["call"]):
                raise AppError(400, "Bad Request - spy call must be a Call-ID of 1-128 safe characters")
            if params.get("mode", "listen") not in ("listen", "whisper", "barge"):
                raise AppError(400, "Bad Request - spy mode must be listen, whisper or barge")
            return Spy(params["call"], params.get("mode", "listen"))
    except KeyError as err:
        raise AppError(400, f"Bad Request - X-Kemi-App {name}: {err.args[0]} is required") from None
    raise AppError(404, f"Not Found - no media app {name[:20]!r}")


def parse_hold_info(body: str) -> tuple[int, int] | None:
    """The body of the proxy's hold INFO: `end` -> None; `position=N;wait=S` -> (N, S)."""
    text = (body or "").strip()
    if text == "end":
        return None
    values: dict[str, int] = {}
    for pair in text.split(";"):
        key, eq, value = pair.strip().partition("=")
        if key not in ("position", "wait") or not eq or not value.isdigit() or len(value) > 6:
            raise AppError(400, "Bad Request - hold INFO body must be 'end' or position=N;wait=S")
        values[key] = int(value)
    if "position" not in values:
        raise AppError(400, "Bad Request - hold INFO body must be 'end' or position=N;wait=S")
    return values["position"], values.get("wait", 0)


def _menu(params: dict[str, str]) -> Menu:
    low, high = 1, 1
    if "digits" in params:
        m = re.fullmatch(r"(\d{1,2})-(\d{1,2})", params["digits"])
        if not m or not 1 <= int(m.group(1)) <= int(m.group(2)) <= 20:
            raise AppError(400, "Bad Request - menu digits must be min-max with 1 <= min <= max <= 20")
        low, high = int(m.group(1)), int(m.group(2))
    valid = tuple(v for v in params.get("valid", "").split(",") if v)
    for choice in valid:
        if not re.fullmatch(r"[0-9*#]{1,20}", choice):
            raise AppError(400, f"Bad Request - menu choice {choice[:20]!r} is not made of 0-9 * #")
    invalid = _audio(params, "invalid") if params.get("invalid") else None
    return Menu(_audio(params, "prompt"), invalid, low, high, valid,
                float(_int(params, "timeout", 5, 1, 120)), _int(params, "retries", 2, 0, 10))


def _audio(params: dict[str, str], key: str) -> str:
    value = params[key]
    if not AUDIO_NAME.fullmatch(value):
        raise AppError(400, f"Bad Request - {key} {value[:20]!r} is not an audio name")
    return value


def _box(value: str | None, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise KeyError("box")
        return None
    if not BOX.fullmatch(value):
        raise AppError(400, "Bad Request - box must be 1-32 digits")
    return value


def _int(params: dict[str, str], key: str, default: int, low: int, high: int) -> int:
    value = params.get(key)
    if value is None or value == "":
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise AppError(400, f"Bad Request - {key} must be a whole number from {low} to {high}")
    return int(value)


def _callback(params: dict[str, str]) -> Callback:
    number = _box(params.get("number"), required=True)
    caller = params.get("caller", "")
    if caller and not re.fullmatch(r"[0-9]{1,32}", caller):
        raise AppError(400, "Bad Request - callback caller must be 1-32 digits or empty")
    hidden = params.get("hidden", "0")
    if hidden not in ("0", "1"):
        raise AppError(400, "Bad Request - callback hidden must be 0 or 1")
    return Callback(number, caller, hidden == "1" or not caller)
