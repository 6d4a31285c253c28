"""The callback extension (seed 002), pure: who is called back, what a session does next,
and what a call may cost. No I/O; the media service (media/callback.py) applies the actions.

    caller rings the callback number --return_target()--> Return(number) | Refuse(reason)
    (rings `trigger_seconds`, released unanswered)         the system calls `number` back (leg A)
    leg A answered --step()--> password? -> credit menu? -> dial within `dial_seconds`
        -> Quote(number) (rate by longest prefix, credit) -> Dial(number, max_seconds) (leg B)
        -> Bridge(max_seconds) -> credit runs out: PlayAndEnd(out_sound)

Session table (phase, event) -> (phase, action); any phase + HungUp -> done, End.
  answered   Answered            -> auth: Ask(password) | menu: Ask(menu) | dial: Ask(dial)
  auth       Entered(d)          -> auth: CheckPassword(d)
  auth       PasswordChecked ok  -> menu | dial (as above)
  auth       PasswordChecked bad -> auth: Ask(wrong, password) | done: PlayAndEnd(locked) after MAX_TRIES
  menu       Entered("1")        -> menu: Ask(credit, menu)
  menu       Entered("2")        -> dial: Ask(dial)
  dial       Entered(number)     -> quoting: Quote(number)      (bad number: Ask(invalid, dial))
  dial       TimedOut            -> done: PlayAndEnd(timeout)    (not dialled within x seconds)
  quoting    Rated(None)         -> done: PlayAndEnd(no-route)
  quoting    Rated(0)            -> done: PlayAndEnd(out_sound)  (no credit left)
  quoting    Rated(n)            -> calling: Dial(number, n)
  calling    CalleeAnswered      -> talking: Bridge(n)
  calling    CalleeFailed(code)  -> done: PlayAndEnd(failed)
  talking    CreditExhausted     -> done: PlayAndEnd(out_sound)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import ROUND_UP, Decimal

MODES = ("authorized", "caller", "fixed")
NUMBER = re.compile(r"[0-9]{2,32}")
DIALLED = re.compile(r"[0-9]{2,24}")
MAX_TRIES = 3                 # wrong passwords / menu choices in one session
MAX_CALL_SECONDS = 4 * 3600   # a free destination still ends
PROMPT_SECONDS = 10           # time to enter a password or a menu choice


@dataclass(frozen=True)
class Policy:
    """One callback account's options (seed 002)."""
    number: str                        # the callback number
    mode: str = "authorized"           # authorized | caller | fixed
    authorized: tuple[str, ...] = ()   # authorised caller IDs
    fixed_number: str | None = None
    trigger_seconds: int = 5
    dial_seconds: int = 20
    password: bool = False             # a password on callback (the account's)
    per_id_password: bool = False      # the authorised caller ID's own password instead
    credit_query: bool = False         # the user can interrogate the credit
    out_sound: str = "cb-credit-out"   # played before disconnecting when credit runs out
    locked: bool = False               # too many wrong passwords lately


@dataclass(frozen=True)
class Return:
    number: str          # where leg A goes
    caller: str | None   # the authorised caller ID it was for (per-ID password), if any


@dataclass(frozen=True)
class Refuse:
    reason: str


def is_hidden(number: str | None, privacy: str | None = None) -> bool:
    """A withheld caller ID: anonymous, not a number, or Privacy: id."""
    if privacy and any(p.strip().lower() in ("id", "user") for p in privacy.split(";")):
        return True
    return not number or not NUMBER.fullmatch(number)


def return_target(policy: Policy, caller: str | None, hidden: bool) -> Return | Refuse:
    """Whether (and where) a ringing caller is called back."""
    if policy.locked:
        return Refuse("account locked after wrong passwords")
    if policy.mode == "fixed":
        if not policy.fixed_number:
            return Refuse("no fixed number set")
        return Return(policy.fixed_number, None if hidden else caller)
    if hidden or caller is None:
        return Refuse("caller ID hidden")
    if policy.mode == "caller":
        return Return(caller, caller)
    if caller in policy.authorized:
        return Return(caller, caller)
    return Refuse(f"caller ID {caller} not authorised")


# ---------------------------------------------------------------- money

def rate_for(rates: dict[str, Decimal], number: str) -> Decimal | None:
    """Per-minute rate of the longest matching prefix; None: the destination is not allowed."""
    best = None
    for prefix in rates:
        if number.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else rates[best]


def max_seconds(credit: Decimal, per_minute: Decimal) -> int:
    """How long a call may last on this credit (whole seconds, rounded down)."""
    if credit <= 0:
        return 0
    if per_minute <= 0:
        return MAX_CALL_SECONDS
    return min(MAX_CALL_SECONDS, int(credit * 60 / per_minute))


def cost(seconds: float, per_minute: Decimal) -> Decimal:
    """Charged per second at the per-minute rate, rounded up to 1/10000."""
    if seconds <= 0:
        return Decimal(0)
    raw = per_minute * Decimal(str(round(seconds, 3))) / 60
    return raw.quantize(Decimal("0.0001"), rounding=ROUND_UP)


def credit_digits(credit: Decimal) -> tuple[str, ...]:
    """How the credit is said: whole units, 'point', two decimals ('12', 'point', '50')."""
    value = max(Decimal(0), credit).quantize(Decimal("0.01"))
    whole, _, cents = f"{value:.2f}".partition(".")
    return (*whole, "point", *cents)


# ---------------------------------------------------------------- the session

@dataclass(frozen=True)
class Session:
    phase: str = "answered"   # answered auth menu dial quoting calling talking done
    tries: int = 0
    number: str = ""
    seconds: int = 0


@dataclass(frozen=True)
class Answered:
    pass


@dataclass(frozen=True)
class Entered:
    digits: str


@dataclass(frozen=True)
class TimedOut:
    pass


@dataclass(frozen=True)
class PasswordChecked:
    ok: bool


@dataclass(frozen=True)
class Rated:
    seconds: int | None     # None: no rate for the destination


@dataclass(frozen=True)
class CalleeAnswered:
    pass


@dataclass(frozen=True)
class CalleeFailed:
    code: int


@dataclass(frozen=True)
class CreditExhausted:
    pass


@dataclass(frozen=True)
class HungUp:
    pass


Event = (Answered | Entered | TimedOut | PasswordChecked | Rated | CalleeAnswered | CalleeFailed
         | CreditExhausted | HungUp)


@dataclass(frozen=True)
class Ask:
    """Say the prompts ("credit" = the credit value), then collect up to `max_digits`
    ('#' ends) within `seconds`."""
    prompts: tuple[str, ...]
    max_digits: int
    seconds: int


@dataclass(frozen=True)
class CheckPassword:
    digits: str


@dataclass(frozen=True)
class Quote:
    number: str


@dataclass(frozen=True)
class Dial:
    number: str
    max_seconds: int


@dataclass(frozen=True)
class Bridge:
    max_seconds: int


@dataclass(frozen=True)
class PlayAndEnd:
    sound: str
    reason: str


@dataclass(frozen=True)
class End:
    reason: str


Action = Ask | CheckPassword | Quote | Dial | Bridge | PlayAndEnd | End

ASK_PASSWORD = Ask(("cb-enter-password",), 12, PROMPT_SECONDS)
ASK_MENU = Ask(("cb-menu",), 1, PROMPT_SECONDS)


def _ask_dial(policy: Policy, before: tuple[str, ...] = ()) -> Ask:
    return Ask((*before, "cb-dial"), 24, policy.dial_seconds)


def _after_auth(policy: Policy) -> tuple[Session, Action]:
    if policy.credit_query:
        return Session("menu"), ASK_MENU
    return Session("dial"), _ask_dial(policy)


def needs_password(policy: Policy) -> bool:
    return policy.password or policy.per_id_password


def step(policy: Policy, state: Session, event: Event) -> tuple[Session, Action]:
    """The callback session's next move (table in the module docstring)."""
    if isinstance(event, HungUp):
        return replace(state, phase="done"), End("hung up")
    phase = state.phase
    if phase == "answered" and isinstance(event, Answered):
        if needs_password(policy):
            return Session("auth"), ASK_PASSWORD
        return _after_auth(policy)
    if phase == "auth":
        if isinstance(event, Entered) and event.digits:
            return state, CheckPassword(event.digits)
        if isinstance(event, PasswordChecked) and event.ok:
            return _after_auth(policy)
        if isinstance(event, (PasswordChecked, Entered, TimedOut)):
            tries = state.tries + 1
            if tries >= MAX_TRIES or isinstance(event, TimedOut):
                return Session("done", tries), PlayAndEnd("cb-goodbye", "no valid password")
            return Session("auth", tries), Ask(("cb-wrong-password", "cb-enter-password"), 12, PROMPT_SECONDS)
    if phase == "menu":
        if isinstance(event, Entered) and event.digits == "1":
            return state, Ask(("cb-credit-is", "credit", "cb-menu"), 1, PROMPT_SECONDS)
        if isinstance(event, Entered) and event.digits == "2":
            return Session("dial"), _ask_dial(policy)
        if isinstance(event, (Entered, TimedOut)):
            tries = state.tries + 1
            if tries >= MAX_TRIES:
                return Session("done", tries), PlayAndEnd("cb-goodbye", "no menu choice")
            return Session("menu", tries), Ask(("invalid", "cb-menu"), 1, PROMPT_SECONDS)
    if phase == "dial":
        if isinstance(event, TimedOut):
            return Session("done"), PlayAndEnd("cb-timeout", "no number dialled in time")
        if isinstance(event, Entered):
            if DIALLED.fullmatch(event.digits):
                return Session("quoting", number=event.digits), Quote(event.digits)
            tries = state.tries + 1
            if tries >= MAX_TRIES:
                return Session("done", tries), PlayAndEnd("cb-goodbye", "no valid number")
            return Session("dial", tries), _ask_dial(policy, ("invalid",))
    if phase == "quoting" and isinstance(event, Rated):
        if event.seconds is None:
            return replace(state, phase="done"), PlayAndEnd("cb-no-route", "destination not allowed")
        if event.seconds <= 0:
            return replace(state, phase="done"), PlayAndEnd(policy.out_sound, "no credit")
        return replace(state, phase="calling", seconds=event.seconds), Dial(state.number, event.seconds)
    if phase == "calling":
        if isinstance(event, CalleeAnswered):
            return replace(state, phase="talking"), Bridge(state.seconds)
        if isinstance(event, CalleeFailed):
            return replace(state, phase="done"), PlayAndEnd("cb-failed", f"callee failed ({event.code})")
    if phase == "talking" and isinstance(event, CreditExhausted):
        return replace(state, phase="done"), PlayAndEnd(policy.out_sound, "credit exhausted")
    return replace(state, phase="done"), End(f"unexpected {type(event).__name__} in {phase}")
