"""Node types as data (the h11 way): for each type, its settings, its outcomes and how the
engine runs it. Adding a node type is adding a row here and, if it acts, one adapter case.

run:
  "pure"     decided inside the state machine at once (time, caller change, reject, goto);
  "ring"     rings phones / trunks through today's adapters; the call ends when answered;
  "http"     an HTTP request made by the helper process outside the SIP workers;
  "media"    an INVITE to the media service (see kemi.core.media);
  "notify"   fire-and-forget side effects (HTTP notification, email); the flow goes on at once.
"""
from __future__ import annotations

from dataclasses import dataclass

DIGIT_OUTCOMES = tuple(str(d) for d in range(10)) + ("*", "#")


@dataclass(frozen=True)
class NodeType:
    name: str
    run: str
    outcomes: tuple[str, ...]              # every outcome name the node can take
    required_outcomes: tuple[str, ...]     # those that must lead somewhere (or the node is refused)
    required: tuple[str, ...] = ()         # settings that must be present
    optional: tuple[str, ...] = ()         # settings that may be present
    terminal: bool = False                 # the call ends in this node (answered or replied)
    summary: str = ""


TYPES: dict[str, NodeType] = {t.name: t for t in (
    NodeType("sip", "ring", ("no_answer", "busy", "failed"), (), ("number",), ("ring_timeout",),
             summary="ring a SIP number of this proxy (its devices at once), own ring timeout"),
    NodeType("external", "ring", ("failed",), (), ("number",), ("ring_timeout",),
             summary="forward to an external number through the trunks (today's caller-ID policy)"),
    NodeType("hunt", "ring", ("exhausted",), (), ("number",), (),
             summary="a hunt group by its service or member number (seed 000 behaviour)"),
    NodeType("ringall", "ring", ("exhausted",), (), ("number",), (),
             summary="a ring-all group by its number"),
    NodeType("queue", "ring", ("timeout", "no_agents"), (), ("number",), (),
             summary="a queue by its number; timeout = its maximum wait passed"),
    NodeType("history", "ring", ("not_found", "no_answer"), ("not_found",), ("window",), ("ring_timeout",),
             summary="ring the member or agent who last talked with this caller within `window` seconds"),
    NodeType("time", "pure", ("open", "closed", "holiday"), ("open", "closed"), ("hours",),
             ("exceptions",), summary="office hours: open / closed / holiday (time zone of the flow)"),
    NodeType("caller", "pure", ("next",), ("next",), (), ("prefix", "suffix", "display_tag", "strip_prefix"),
             summary="change the caller's number (prefix/suffix) and display tag"),
    NodeType("reject", "pure", (), (), ("code",), ("reason",), terminal=True,
             summary="end the call with a SIP code and reason"),
    NodeType("lookup", "http", ("next",), ("next",), ("url",), ("header", "token", "ttl", "timeout"),
             summary="caller name lookup (HTTP GET); the answer becomes the display name"),
    NodeType("http_route", "http", ("1", "2", "3", "4", "5", "error"), ("error",), ("url",),
             ("header", "token", "timeout"),
             summary="HTTP routing: the answer's body 1..5 picks the outcome, anything else `error`"),
    NodeType("notify", "notify", ("next",), ("next",), ("url",), ("header", "token"),
             summary="HTTP notification: JSON POST of the call's facts, fire-and-forget"),
    NodeType("email", "notify", ("next",), (), ("to",), ("subject",),
             summary="email notification through the configured SMTP server (retried)"),
    NodeType("voicemail", "media", (), (), ("box",), (), terminal=True,
             summary="leave a message in a box (media service)"),
    NodeType("vmaccess", "media", (), (), (), ("box",), terminal=True,
             summary="listen to voicemail (media service)"),
    NodeType("play", "media", ("done", "error"), ("done",), ("audio",), ("loop",),
             summary="play an audio file on early media, then `done`"),
    NodeType("menu", "media", DIGIT_OUTCOMES + ("timeout", "invalid", "error"), (),
             ("prompt",), ("invalid", "digits", "valid", "timeout", "retries"),
             summary="voice menu: the digits pressed pick the outcome"),
)}

RING_FAILURES = {"sip": "no_answer", "external": "failed", "hunt": "exhausted", "ringall": "exhausted",
                 "queue": "timeout", "history": "no_answer"}
