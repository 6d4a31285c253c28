"""Who hears whom on a supervised call (issue 14 section 2). Pure: no I/O, no numpy.

A supervised call is a customer leg and an agent leg bridged by the media service, plus
any number of supervisors, each in their own mode:

    listen   (4)  the supervisor hears agent and customer; nobody hears the supervisor
    whisper  (5)  as listen, and the agent hears the supervisor (the customer does not)
    barge    (6)  as listen, and agent and customer both hear the supervisor

Supervisors never hear each other (each hears the call, not the coaching of a colleague).
The same meaning as `media.mixer.supervision_matrix` for one supervisor, per supervisor here.

During the supervision the supervisor's DTMF keys switch the mode: 4 listen, 5 whisper,
6 barge (the same digits as the dial codes 4#, 5#, 6#); other keys are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass

LISTEN, WHISPER, BARGE = "listen", "whisper", "barge"
MODES = (LISTEN, WHISPER, BARGE)
KEYS = {"4": LISTEN, "5": WHISPER, "6": BARGE}
CUSTOMER, AGENT = "customer", "agent"


@dataclass(frozen=True)
class Supervisor:
    key: str
    mode: str


def on_key(mode: str, digit: str) -> str:
    """The mode after a supervisor pressed `digit` (unchanged for any other key)."""
    return KEYS.get(digit, mode)


def hearing(supervisors: tuple[Supervisor, ...]) -> dict[str, frozenset[str]]:
    """key -> the keys it hears; the customer and agent legs are CUSTOMER and AGENT."""
    for s in supervisors:
        if s.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
    agent = {CUSTOMER} | {s.key for s in supervisors if s.mode in (WHISPER, BARGE)}
    customer = {AGENT} | {s.key for s in supervisors if s.mode == BARGE}
    out = {AGENT: frozenset(agent), CUSTOMER: frozenset(customer)}
    for s in supervisors:
        out[s.key] = frozenset({AGENT, CUSTOMER})
    return out
