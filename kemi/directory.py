"""What operators provisioned, as an immutable snapshot the routing core reads. Pure data.

The data layer (kemi/store.py) builds one `Directory` from PostgreSQL and replaces it whole
when a provisioning change is notified, so a call always sees one consistent version.
"""
from __future__ import annotations

from dataclasses import dataclass, field

TERMINATORS = frozenset({"0000", "00000"})


@dataclass(frozen=True)
class BoxRule:
    """A voicemail box's divert rule (kemi/voicemail_route.py applies it)."""
    number: str
    always: bool = False
    on_busy: bool = True
    no_answer_seconds: int | None = None


@dataclass(frozen=True)
class Subscriber:
    number: str
    ha1: str
    active: bool = True
    display_name: str | None = None
    # caller-ID management for public (trunk) calls, seed 002
    public_name: str | None = None
    default_caller_id: str | None = None
    hide_caller_id: bool = False
    send_pai: bool = False
    caller_ids: tuple[str, ...] = ()     # c1, c2, ... in order


@dataclass(frozen=True)
class HuntGroup:
    id: int
    name: str
    ring_timeout: int | None = None
    timeout_target: str | None = None     # where the call goes when nobody answered


@dataclass(frozen=True)
class HuntMember:
    number: str
    group_id: int
    next_number: str | None = None      # None: the chain ends here (0000)
    ring_timeout: int | None = None


@dataclass(frozen=True)
class ServiceNumber:
    number: str
    group_id: int
    start_number: str


@dataclass(frozen=True)
class RingAllGroup:
    id: int
    name: str
    number: str
    display_format: str = "{group}: {caller}"
    ring_timeout: int | None = None
    timeout_target: str | None = None
    members: tuple[tuple[str, bool], ...] = ()     # (number, logged in)


@dataclass(frozen=True)
class QueueAgent:
    number: str
    tier: int = 1
    logged_in: bool = True


@dataclass(frozen=True)
class Queue:
    id: int
    name: str
    number: str
    strategy: str = "ringall"
    ring_timeout: int = 15
    max_wait: int = 300
    timeout_target: str | None = None
    timeout_code: int = 480
    sticky_window: int | None = None
    max_calls: int = 1
    agents: tuple[QueueAgent, ...] = ()            # in listed order


@dataclass(frozen=True)
class Trunk:
    id: int
    name: str
    transport: str = "udp"
    trusted: bool = False
    send_pai: bool = False
    default_caller_id: str | None = None
    active: bool = True
    addresses: tuple[tuple[str, int | None], ...] = ()   # (ip, port or None: any port)


@dataclass(frozen=True)
class TrunkRoute:
    prefix: str
    trunk_id: int
    priority: int = 0


@dataclass(frozen=True)
class Did:
    number: str
    trunk_id: int
    target: str
    caller_prefix: str = ""
    caller_suffix: str = ""
    display_tag: str | None = None


@dataclass(frozen=True)
class Directory:
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    groups: dict[int, HuntGroup] = field(default_factory=dict)
    members: dict[str, HuntMember] = field(default_factory=dict)
    services: dict[str, ServiceNumber] = field(default_factory=dict)
    trunks: dict[int, Trunk] = field(default_factory=dict)
    routes: tuple[TrunkRoute, ...] = ()
    dids: dict[str, Did] = field(default_factory=dict)
    ringall: dict[str, RingAllGroup] = field(default_factory=dict)   # by group number
    queues: dict[str, Queue] = field(default_factory=dict)           # by queue number
    supervisors: dict[str, frozenset[tuple[str, str]]] = field(default_factory=dict)  # number -> {(kind, name)}
    # flows: number -> (version, the flow document as canonical JSON); kemi.flow_engine parses it
    flows: dict[str, tuple[int, str]] = field(default_factory=dict)
    # media: voicemail boxes' divert rules by box number (kemi.voicemail_route.BoxRule)
    voicemail_rules: dict[str, BoxRule] = field(default_factory=dict)
    # phones: queue name -> unanswered offers in a row that pause an agent; queue number ->
    # seconds between repeated 182s for its waiting callers (queues that set them)
    auto_pause: dict[str, int] = field(default_factory=dict)
    progress_intervals: dict[str, int] = field(default_factory=dict)
    # conference rooms: room number -> media node "host:port" ('' = KEMI_MEDIA_SIP)
    conferences: dict[str, str] = field(default_factory=dict)
    # callback: callback number -> the SIP number whose caller-ID policy its outgoing legs use
    callbacks: dict[str, str | None] = field(default_factory=dict)
    # whisper and barge: names of the queues whose calls are bridged through the media service
    supervised: frozenset[str] = frozenset()

    def active_subscriber(self, number: str) -> Subscriber | None:
        sub = self.subscribers.get(number)
        return sub if sub is not None and sub.active else None

    def groups_of(self, number: str) -> set[tuple[str, str]]:
        """(kind, name) of every hunt group, ring-all group and queue `number` belongs to."""
        out = set()
        member = self.members.get(number)
        if member and member.group_id in self.groups:
            out.add(("hunt", self.groups[member.group_id].name))
        out.update(("ringall", g.name) for g in self.ringall.values() if any(n == number for n, _ in g.members))
        out.update(("queue", q.name) for q in self.queues.values() if any(a.number == number for a in q.agents))
        return out

    def is_local(self, number: str) -> bool:
        """A number this proxy serves itself (never sent to a trunk)."""
        return (number in self.subscribers or number in self.services or number in self.ringall
                or number in self.queues or number in self.callbacks)   # callback
