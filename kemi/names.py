"""Every AVP and htable name the flow engine uses, and the encoding of every value stored
there, in one place (round-trip tests in tests/unit/test_flow_names.py). Pure: no KSR.

Transaction AVPs (failure and reply routes may run in other workers):
  $avp(flow)          "<number>|<version>" the flow this call runs (fixed at call start)
  $avp(flow_doc)      the flow document (canonical JSON) as it was when the call started,
                      so a change made meanwhile applies to the next call only
  $avp(flow_state)    the per-call machine state (encode_state)
  $avp(flow_caller)   the caller's number as it arrived (routing by call history)
  $avp(flow_from)     1 once the From was rewritten for this call (uac does it once)
  $avp(flow_wait)     the kind of thing the call waits for: ring / media / http
  $avp(flow_media)    the X-Kemi-App header of the media branch being sent (branch route)
  $avp(flow_journal)  1 once the call's start is in the journal
  $avp(hunt_steps)    "<number>:<seconds>,..." a hunt's steps ("*:<seconds>" for ring-all)
  $avp(hunt_i)        the step ringing now;  $avp(hunt_busy) 1 once a device was busy
  $avp(hunt_fallback) where the call goes when nobody answered (dial string or "flow:<outcome>")
  $avp(trunk_steps)   "<trunk id> <uri>,..." an outbound call's attempts; $avp(trunk_i) the current one
  $avp(trunk_overflow) a flow's "flow:failed" when every trunk failed
  $avp(queue_overflow) a flow's "flow:timeout" when the queue's maximum wait passed
Htables:
  qwait "<queue>:<seq>"       a caller in line: encode_entry (kemi/core/queue_entry.py)
  qstat "flowlast:<caller>"   "<agent>|<unix time>" who last talked with a caller in a flow
  flowhttp "<tindex>:<tlabel>" the helper's answer for a suspended call (encode_answer)
  subs "<number>"             a subscriber's per-call data (kemi/subscriber_codec.py), loaded by
                              Kamailio from the view kemi_subscriber_htable (sql/012)
"""
from __future__ import annotations

from dataclasses import dataclass

from kemi.core.machine import State
from kemi.core.queue_entry import OFFERED, WAITING, QueueEntry
from kemi.core.ringing import HuntState, HuntStep, TrunkAttempt, TrunkState
from kemi import subscriber_codec  # scale
from kemi.directory import Subscriber  # scale

FLOW = "$avp(flow)"
FLOW_DOC = "$avp(flow_doc)"
FLOW_STATE = "$avp(flow_state)"
FLOW_CALLER = "$avp(flow_caller)"
FLOW_FROM = "$avp(flow_from)"
FLOW_WAIT = "$avp(flow_wait)"
FLOW_MEDIA = "$avp(flow_media)"
FLOW_JOURNAL = "$avp(flow_journal)"
HUNT_STEPS = "$avp(hunt_steps)"
HUNT_I = "$avp(hunt_i)"
HUNT_BUSY = "$avp(hunt_busy)"
HUNT_FALLBACK = "$avp(hunt_fallback)"
TRUNK_STEPS = "$avp(trunk_steps)"
TRUNK_I = "$avp(trunk_i)"
TRUNK_OVERFLOW = "$avp(trunk_overflow)"
QUEUE_OVERFLOW = "$avp(queue_overflow)"
HISTORY_TABLE = "qstat"
HTTP_TABLE = "flowhttp"
FLOW_TARGET = "flow:"      # a fallback/overflow "dial string" that means: continue the flow
MEDIA_FAILURE_ROUTE = "ksr_failure_flow_media"
MEDIA_BRANCH_ROUTE = "ksr_branch_flow_media"
HTTP_RESUME_ROUTE = "ksr_flow_http_resume"
_VERSION = "1"


class DecodeError(ValueError):
    pass


def encode_state(state: State) -> str:
    return "|".join((_VERSION, str(state.steps), "1" if state.ended else "0", state.node, state.caller,
                     "" if state.display is None else "=" + state.display))


def decode_state(text: str | None) -> State:
    if not text:
        raise DecodeError("no flow state")
    parts = text.split("|", 5)
    if len(parts) != 6 or parts[0] != _VERSION or not parts[1].isdigit() or parts[2] not in ("0", "1"):
        raise DecodeError(f"bad flow state {text[:60]!r}")
    display = parts[5][1:] if parts[5].startswith("=") else None
    return State(caller=parts[4], display=display, node=parts[3], steps=int(parts[1]), ended=parts[2] == "1")


def encode_flow_ref(number: str, version: int) -> str:
    return f"{number}|{version}"


def decode_flow_ref(text: str | None) -> tuple[str, int]:
    number, _, version = (text or "").partition("|")
    if not number or not version.isdigit():
        raise DecodeError(f"bad flow reference {text!r}")
    return number, int(version)


def history_key(caller: str) -> str:
    return f"flowlast:{caller}"


def encode_history(agent: str, when: float) -> str:
    return f"{agent}|{when:.0f}"


def decode_history(text: str | None) -> tuple[str, float] | None:
    if not text:
        return None
    agent, _, when = text.partition("|")
    try:
        return (agent, float(when)) if agent else None
    except ValueError:
        return None


def txn_key(tindex: int | str, tlabel: int | str) -> str:
    return f"{tindex}:{tlabel}"


@dataclass(frozen=True)
class HttpAnswer:
    """What the helper hands back for a suspended call: ok=False means error/timeout."""
    ok: bool
    body: str = ""


def encode_answer(answer: HttpAnswer) -> str:
    return ("1|" if answer.ok else "0|") + answer.body


def decode_answer(text: str | None) -> HttpAnswer:
    if not text or text[:2] not in ("1|", "0|"):
        return HttpAnswer(False)
    return HttpAnswer(text[0] == "1", text[2:])


def flow_target(outcome: str) -> str:
    return FLOW_TARGET + outcome


def is_flow_target(target: str | None) -> bool:
    return bool(target) and str(target).startswith(FLOW_TARGET)


def encode_hunt_steps(steps: tuple[HuntStep, ...]) -> str:
    return ",".join(f"{s.number}:{s.ring_timeout}" for s in steps)


def decode_hunt(steps: str | None, index: str | None, busy: str | None, fallback: str | None) -> HuntState:
    parsed = []
    for item in (steps or "").split(","):
        number, _, seconds = item.partition(":")
        if number:
            if not seconds.isdigit():
                raise DecodeError(f"bad hunt step {item!r}")
            parsed.append(HuntStep(number, int(seconds)))
    return HuntState(tuple(parsed), int(index) if index and index.isdigit() else 0, busy == "1", fallback or "")


def encode_trunk_attempts(attempts: tuple[TrunkAttempt, ...]) -> str:
    return ",".join(f"{a.trunk_id} {a.uri}" for a in attempts)


def decode_trunk(attempts: str | None, index: str | None, overflow: str | None) -> TrunkState:
    parsed = []
    for item in (attempts or "").split(","):
        trunk_id, _, uri = item.partition(" ")
        if not trunk_id.isdigit() or not uri:
            raise DecodeError(f"bad trunk attempt {item!r}")
        parsed.append(TrunkAttempt(int(trunk_id), uri))
    return TrunkState(tuple(parsed), int(index) if index and index.isdigit() else 0, overflow or "")


def encode_entry(entry: QueueEntry) -> str:
    # media: a caller on hold (music) is marked by an "H" in front of the state: "HW|...", "HO|..."
    return f"{'H' if entry.hold else ''}{entry.state}|{entry.tindex}|{entry.tlabel}|{entry.arrived:.3f}|{entry.caller}"


def decode_entry(text: str) -> QueueEntry:
    hold = text.startswith("H")   # media: on hold
    parts = text[1 if hold else 0:].split("|", 4)
    if len(parts) != 5 or parts[0] not in (WAITING, OFFERED) or not parts[1].isdigit() or not parts[2].isdigit():
        raise DecodeError(f"bad queue entry {text[:60]!r}")
    try:
        arrived = float(parts[3])
    except ValueError:
        raise DecodeError(f"bad queue entry time {parts[3]!r}") from None
    return QueueEntry(parts[0], int(parts[1]), int(parts[2]), arrived, parts[4], hold)


# scale (issue 11): subscribers live once per machine in this htable (kamailio.cfg); the
# value encoding is kemi/subscriber_codec.py (decode_subscriber / encode_subscriber).
SUBSCRIBER_TABLE = "subs"
SUBSCRIBER_VIEW = "kemi_subscriber_htable"


def encode_subscriber(sub: Subscriber) -> str:
    return subscriber_codec.encode(sub)


def decode_subscriber(number: str, value: object) -> Subscriber | None:
    return subscriber_codec.decode(number, value)


# ---------------------------------------------------------------- agent state (issue 11)
# htable agentst  "<kind>:<group number>:<agent>" -> membership state (kemi.core.agent_machine
#                 encode_state: "in", "out", "p:<reason>"); kind "q" queue, "g" ring-all group.
#                 Loaded at Kamailio start from the view agent_state_ht (sql/013).
# htable agentev  "<unique>" -> agent number: agents whose state or calls changed, for the
#                 dispatcher to look at again (it removes what it read); written by workers,
#                 kemictl (RPC) and at every call end
# htable agentstat "<field>:<queue>:<agent>" queue statistics: ans (calls answered), talk
#                 (seconds talked), end (unix time the last call ended), miss (unanswered offers)
# $dlg_var(qagent) "<queue>|<agent>|<answered at>" on a queue call's dialog, for its end
AGENT_STATE_TABLE = "agentst"
AGENT_EVENT_TABLE = "agentev"
AGENT_STAT_TABLE = "agentstat"
AGENT_DLG_VAR = "$dlg_var(qagent)"
STAT_FIELDS = ("ans", "talk", "end", "miss")


def agent_key(kind: str, group: str, agent: str) -> str:
    return f"{kind}:{group}:{agent}"


def split_agent_key(key: str) -> tuple[str, str, str] | None:
    parts = key.split(":")
    if len(parts) != 3 or parts[0] not in ("q", "g") or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def stat_key(field: str, queue: str, agent: str) -> str:
    return f"{field}:{queue}:{agent}"


def encode_queue_call(queue: str, agent: str, answered: float) -> str:
    return f"{queue}|{agent}|{answered:.3f}"


def decode_queue_call(text: str | None) -> tuple[str, str, float] | None:
    parts = (text or "").split("|")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return None
    try:
        return parts[0], parts[1], float(parts[2])
    except ValueError:
        return None
