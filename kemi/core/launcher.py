"""The conference launcher's escalation (seed 003, issue 14 section 4): pure, no I/O.

An alert scheme is data: steps at seconds after the launch, each either calling one of a
contact's numbers (work, home, mobile) or sending notifications (SMS, email) with the
dial-in number and the PIN. The default "CONFCALL" scheme of the seed:

    t = 0    call every contact's work number
    t = 60   call the home number of those who have not joined
    t = 120  SMS + email with the number to call and the PIN (to everyone, "in any case")

The machine: `step(scheme, state, event) -> (state, actions)`. Events: `Tick(elapsed)` from the
runner's clock, `Joined(contact, how)` (an answered call where 1 was pressed, or a dial-in
recognised by its caller number), `CallEnded(contact)`, `Stop()`. Actions: `PlaceCall`,
`Notify`, `Finish`. A contact is never called twice at once, and a joined contact is never
called again by a `not-joined` step. Validation of schemes and launch requests lives here
too, so kemictl and the HTTP endpoint give the same answers (`LaunchError(field, rule)`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Union

MEDIA = ("work", "home", "mobile")
CHANNELS = ("sms", "email")
WHO = ("not-joined", "all")
HOW = ("work", "home", "mobile", "dial-in")
MAX_STEPS = 10
MAX_CONTACTS = 50
MAX_SECONDS = 86400
NAME_RULE = re.compile(r"[A-Za-z0-9_-]{1,32}")
NUMBER_RULE = re.compile(r"[0-9]{2,32}")
PIN_RULE = re.compile(r"[0-9]{4,8}")
EMAIL_RULE = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+")
AUDIO_RULE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class LaunchError(ValueError):
    """Bad input: `field` names what is wrong, `rule` the rule it breaks."""

    def __init__(self, field_name: str, rule: str):
        super().__init__(f"field '{field_name}': {rule}")
        self.field = field_name
        self.rule = rule


# ---------------------------------------------------------------- the scheme

@dataclass(frozen=True)
class Step:
    at: int                                  # seconds after the launch
    call: str = ""                           # work | home | mobile, or "" for a notify step
    notify: tuple[str, ...] = ()             # sms, email
    who: str = "not-joined"                  # not-joined | all


@dataclass(frozen=True)
class Scheme:
    name: str
    steps: tuple[Step, ...]
    ring_seconds: int = 45                   # how long a launch call rings
    end_after: int = 3600                    # the launch is over after this (or when all joined)

    def to_dict(self) -> dict[str, Any]:
        steps: list[dict[str, Any]] = []
        for s in self.steps:
            d: dict[str, Any] = {"at": s.at, "who": s.who}
            if s.call:
                d["call"] = s.call
            else:
                d["notify"] = list(s.notify)
            steps.append(d)
        return {"name": self.name, "ring_seconds": self.ring_seconds, "end_after": self.end_after, "steps": steps}


CONFCALL = Scheme("CONFCALL", (Step(0, call="work"), Step(60, call="home"),
                               Step(120, notify=("sms", "email"), who="all")))


def _int(data: dict[str, Any], key: str, where: str, low: int, high: int, default: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise LaunchError(where, f"must be a whole number from {low} to {high}")
    return value


def parse_scheme(data: Any) -> Scheme:
    """A scheme from its JSON/YAML form (see `Scheme.to_dict`)."""
    if not isinstance(data, dict):
        raise LaunchError("scheme", "must be an object with name, steps")
    unknown = set(data) - {"name", "steps", "ring_seconds", "end_after"}
    if unknown:
        raise LaunchError(sorted(unknown)[0], "unknown field")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        raise LaunchError("name", "must be 1-32 letters, digits, _ or -")
    steps_in = data.get("steps")
    if not isinstance(steps_in, list) or not 1 <= len(steps_in) <= MAX_STEPS:
        raise LaunchError("steps", f"must be a list of 1 to {MAX_STEPS} steps")
    steps: list[Step] = []
    for i, raw in enumerate(steps_in):
        where = f"steps[{i}]"
        if not isinstance(raw, dict):
            raise LaunchError(where, "must be an object")
        extra = set(raw) - {"at", "call", "notify", "who"}
        if extra:
            raise LaunchError(f"{where}.{sorted(extra)[0]}", "unknown field")
        at = _int(raw, "at", f"{where}.at", 0, MAX_SECONDS)
        if steps and at < steps[-1].at:
            raise LaunchError(f"{where}.at", "steps must be in time order")
        who = raw.get("who", "not-joined")
        if who not in WHO:
            raise LaunchError(f"{where}.who", "must be not-joined or all")
        if ("call" in raw) == ("notify" in raw):
            raise LaunchError(where, "needs exactly one of call or notify")
        if "call" in raw:
            if raw["call"] not in MEDIA:
                raise LaunchError(f"{where}.call", "must be work, home or mobile")
            steps.append(Step(at, call=raw["call"], who=who))
        else:
            notify = raw["notify"]
            if (not isinstance(notify, list) or not notify or any(n not in CHANNELS for n in notify)
                    or len(set(notify)) != len(notify)):
                raise LaunchError(f"{where}.notify", "must be a list of sms and/or email")
            steps.append(Step(at, notify=tuple(notify), who=who))
    ring = _int(data, "ring_seconds", "ring_seconds", 5, 120, 45)
    end = _int(data, "end_after", "end_after", 1, MAX_SECONDS, max(3600, steps[-1].at))
    if end < steps[-1].at:
        raise LaunchError("end_after", "must not be before the last step")
    return Scheme(name, tuple(steps), ring, end)


# ---------------------------------------------------------------- a launch request

@dataclass(frozen=True)
class Contact:
    name: str
    work: str = ""
    home: str = ""
    mobile: str = ""
    email: str = ""

    def number(self, medium: str) -> str:
        return str(getattr(self, medium)) if medium in MEDIA else ""

    def how_for(self, caller: str) -> str | None:
        """Which of this contact's numbers `caller` is (a dial-in), or None."""
        for medium in MEDIA:
            if caller and self.number(medium) == caller:
                return medium
        return None


@dataclass(frozen=True)
class Request:
    room: str
    pin: str | None
    contacts: tuple[Contact, ...]
    title: str = ""
    welcome: str = ""
    record: bool = False
    scheme: str = "CONFCALL"
    dial_in: str = ""


def _text(value: Any, where: str, limit: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise LaunchError(where, "must be text")
    if required and not value:
        raise LaunchError(where, "must not be empty")
    if len(value) > limit or not value.isprintable():
        raise LaunchError(where, f"must be printable text of at most {limit} characters")
    return value


def parse_contact(raw: Any, where: str) -> Contact:
    if not isinstance(raw, dict):
        raise LaunchError(where, "must be an object with name, work, home, mobile, email")
    extra = set(raw) - {"name", "work", "home", "mobile", "email"}
    if extra:
        raise LaunchError(f"{where}.{sorted(extra)[0]}", "unknown field")
    name = _text(raw.get("name"), f"{where}.name", 64, required=True)
    numbers = {}
    for medium in MEDIA:
        value = _text(raw.get(medium), f"{where}.{medium}", 32)
        if value and not NUMBER_RULE.fullmatch(value):
            raise LaunchError(f"{where}.{medium}", "must be 2-32 digits")
        numbers[medium] = value
    email = _text(raw.get("email"), f"{where}.email", 254)
    if email and not EMAIL_RULE.fullmatch(email):
        raise LaunchError(f"{where}.email", "must be an address like name@example.org")
    if not any(numbers.values()):
        raise LaunchError(where, "needs at least one of work, home, mobile")
    return Contact(name, numbers["work"], numbers["home"], numbers["mobile"], email)


def parse_request(data: Any) -> Request:
    """A launch from kemictl's options or the HTTP endpoint's JSON body."""
    if not isinstance(data, dict):
        raise LaunchError("body", "must be a JSON object")
    extra = set(data) - {"room", "pin", "contacts", "title", "welcome", "record", "scheme", "dial_in"}
    if extra:
        raise LaunchError(sorted(extra)[0], "unknown field")
    room = data.get("room")
    if not isinstance(room, str) or not NUMBER_RULE.fullmatch(room):
        raise LaunchError("room", "must be a conference number of 2-32 digits")
    pin = data.get("pin")
    if pin is not None and (not isinstance(pin, str) or not PIN_RULE.fullmatch(pin)):
        raise LaunchError("pin", "must be 4 to 8 digits")
    contacts_in = data.get("contacts")
    if not isinstance(contacts_in, list) or not 1 <= len(contacts_in) <= MAX_CONTACTS:
        raise LaunchError("contacts", f"must be a list of 1 to {MAX_CONTACTS} contacts")
    contacts = tuple(parse_contact(c, f"contacts[{i}]") for i, c in enumerate(contacts_in))
    welcome = _text(data.get("welcome"), "welcome", 64)
    if welcome and not AUDIO_RULE.fullmatch(welcome):
        raise LaunchError("welcome", "must be the name of a stored audio (letters, digits, _ . -)")
    record = data.get("record", False)
    if not isinstance(record, bool):
        raise LaunchError("record", "must be true or false")
    scheme = data.get("scheme", "CONFCALL")
    if not isinstance(scheme, str) or not NAME_RULE.fullmatch(scheme):
        raise LaunchError("scheme", "must be a scheme name (1-32 letters, digits, _ or -)")
    dial_in = data.get("dial_in") or ""
    if not isinstance(dial_in, str) or (dial_in and not re.fullmatch(r"\+?[0-9]{2,32}", dial_in)):
        raise LaunchError("dial_in", "must be the number to call, 2-32 digits (+ allowed first)")
    return Request(room, pin, contacts, _text(data.get("title"), "title", 64), welcome, record, scheme, dial_in)


def message(title: str, dial_in: str, pin: str) -> str:
    """The SMS / email text (seed 003: the number to call and the PIN)."""
    what = f'the conference call "{title}"' if title else "the conference call"
    return f"To join {what}, please call {dial_in} and enter the PIN code {pin} followed by #."


# ---------------------------------------------------------------- the machine

@dataclass(frozen=True)
class State:
    contacts: tuple[Contact, ...]
    joined: tuple[str | None, ...]           # how each contact first joined (HOW), None: not yet
    calling: frozenset[int] = frozenset()    # contacts with a launch call in progress
    next_step: int = 0
    finished: bool = False


@dataclass(frozen=True)
class Tick:
    elapsed: float


@dataclass(frozen=True)
class Joined:
    contact: int
    how: str


@dataclass(frozen=True)
class CallEnded:
    contact: int


@dataclass(frozen=True)
class Stop:
    reason: str = "stopped"


Event = Union[Tick, Joined, CallEnded, Stop]


@dataclass(frozen=True)
class PlaceCall:
    contact: int
    medium: str
    number: str


@dataclass(frozen=True)
class Notify:
    contact: int
    channels: tuple[str, ...]                # the channels this contact has an address for


@dataclass(frozen=True)
class Finish:
    reason: str


Action = Union[PlaceCall, Notify, Finish]


def start(contacts: tuple[Contact, ...]) -> State:
    return State(contacts, tuple(None for _ in contacts))


def _fire(s: Step, state: State) -> tuple[State, list[Action]]:
    actions: list[Action] = []
    calling = set(state.calling)
    for i, contact in enumerate(state.contacts):
        if s.who == "not-joined" and state.joined[i] is not None:
            continue
        if s.call:
            number = contact.number(s.call)
            if number and i not in calling:
                calling.add(i)
                actions.append(PlaceCall(i, s.call, number))
        else:
            channels = tuple(c for c in s.notify if (contact.mobile if c == "sms" else contact.email))
            if channels:
                actions.append(Notify(i, channels))
    return replace(state, calling=frozenset(calling)), actions


def step(scheme: Scheme, state: State, event: Event) -> tuple[State, tuple[Action, ...]]:
    if state.finished:
        return state, ()
    actions: list[Action] = []
    if isinstance(event, Stop):
        return replace(state, finished=True), (Finish(event.reason),)
    if isinstance(event, Joined):
        if 0 <= event.contact < len(state.contacts) and state.joined[event.contact] is None:
            joined = list(state.joined)
            joined[event.contact] = event.how
            state = replace(state, joined=tuple(joined))
    elif isinstance(event, CallEnded):
        state = replace(state, calling=state.calling - {event.contact})
    elif isinstance(event, Tick):
        while state.next_step < len(scheme.steps) and scheme.steps[state.next_step].at <= event.elapsed:
            state, fired = _fire(scheme.steps[state.next_step], state)
            state = replace(state, next_step=state.next_step + 1)
            actions.extend(fired)
        if event.elapsed >= scheme.end_after:
            return replace(state, finished=True), (*actions, Finish("deadline"))
    steps_done = state.next_step >= len(scheme.steps)
    if all(j is not None for j in state.joined) and (steps_done or not _pending_for_all(scheme, state)):
        return replace(state, finished=True), (*actions, Finish("everyone joined"))
    return state, tuple(actions)


def _pending_for_all(scheme: Scheme, state: State) -> bool:
    """A step still to come reaches joined contacts too (who = all)."""
    return any(s.who == "all" for s in scheme.steps[state.next_step:])


@dataclass(frozen=True)
class Summary:
    joined: int
    total: int
    by: dict[str, int] = field(default_factory=dict)


def summary(state: State) -> Summary:
    by: dict[str, int] = {}
    for how in state.joined:
        if how is not None:
            by[how] = by.get(how, 0) + 1
    return Summary(sum(by.values()), len(state.joined), by)
