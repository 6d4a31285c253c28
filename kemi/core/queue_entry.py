"""A caller's entry in a queue as a pure state machine: waiting -> offered -> (answered or
left: the entry is removed) or back to waiting. The dispatcher and the queue adapter
(kemi/queueing.py) keep it in the shared htable `qwait` (encoding in kemi/names.py) and
apply the `Resume` action with t_continue; which agent gets an offer is kemi.queue_strategy's.

    arrive ──► WAITING ──Offer──► OFFERED ──Requeue (no answer)──► WAITING
                  │  └──TimeOut/Cancel──► OFFERED (resumed in the timeout route) ──► left
                  └──Progress──► OFFERED (182 again in the progress route) ──Requeue──► WAITING
Events on an entry that is not waiting do nothing: an offer in progress is never doubled.

A caller who hears music (`hold`: the queue has hold music and the media service took the
call) is not suspended but has a branch to the media service's `hold` app: Offer and
TimeOut then end that branch (`EndHold`: an INFO to the service, which answers the branch
302) and the hold branch's failure route rings the agents or times the caller out; a
Cancel needs nothing (tm forwards the caller's CANCEL to the branch); Progress is not
needed (the caller has early media, and the 183 keeps upstream proxies waiting).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

WAITING = "W"
OFFERED = "O"
OFFER_ROUTE = "ksr_queue_offer"
TIMEOUT_ROUTE = "ksr_queue_timeout"
PROGRESS_ROUTE = "ksr_queue_progress"   # 182 again, then Requeue (kemi/long_calls.py)


@dataclass(frozen=True)
class QueueEntry:
    state: str           # WAITING or OFFERED
    tindex: int          # the suspended transaction
    tlabel: int
    arrived: float       # unix time; kept when the caller goes back in line
    caller: str
    hold: bool = False   # the caller has a hold branch (music) instead of a suspended transaction

    @property
    def waiting(self) -> bool:
        return self.state == WAITING


@dataclass(frozen=True)
class Offer:
    pass


@dataclass(frozen=True)
class TimeOut:
    pass


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Requeue:
    pass


@dataclass(frozen=True)
class Progress:
    """A waiting caller's next 182 is due: resumed briefly, then back in line (Requeue)."""


QueueEvent = Offer | TimeOut | Cancel | Requeue | Progress


@dataclass(frozen=True)
class Resume:
    """t_continue the entry's transaction in this route."""
    route: str


@dataclass(frozen=True)
class EndHold:
    """Tell the media service to end the entry's hold branch; its failure route then does
    `outcome` ('offer': ring the agents; 'timeout': the timeout destination)."""
    outcome: str


QueueAction = Resume | EndHold


def arrive(tindex: int, tlabel: int, now: float, caller: str, hold: bool = False) -> QueueEntry:
    return QueueEntry(WAITING, tindex, tlabel, now, caller, hold)


def on_event(entry: QueueEntry, event: QueueEvent) -> tuple[QueueEntry, QueueAction | None]:
    if isinstance(event, Requeue):
        return (replace(entry, state=WAITING), None) if not entry.waiting else (entry, None)
    if not entry.waiting:
        return entry, None
    if entry.hold:
        if isinstance(event, (Cancel, Progress)):
            return entry, None
        return replace(entry, state=OFFERED), EndHold("offer" if isinstance(event, Offer) else "timeout")
    route = (OFFER_ROUTE if isinstance(event, Offer) else PROGRESS_ROUTE if isinstance(event, Progress)
             else TIMEOUT_ROUTE)
    return replace(entry, state=OFFERED), Resume(route)
