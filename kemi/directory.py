"""What operators provisioned, as an immutable snapshot the routing core reads. Pure data.

The data layer (kemi/store.py) builds one `Directory` from PostgreSQL and replaces it whole
when a provisioning change of the small tables is notified, so a call always sees one
consistent version. Subscribers are the exception (scale, issue 11): `subscribers` is any
read-only mapping; in a SIP worker it reads Kamailio's shared memory one key at a time
(kemi/subscribers.py), in kemictl the database, and in the snapshot file it is empty.
Per-call lookups (trunk by source address, outbound routes by prefix, groups of a member) use
indexes built once per snapshot (`functools.cached_property`, so only on first use).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

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
class QueueHold:
    """media: what a waiting caller of a queue hears (sql/014): music on early media from the
    media service, and every `interval` seconds (0: never) the position and/or expected wait."""
    music: str
    interval: int = 30
    announce: str = "position"     # none, position, wait or both

    @property
    def position(self) -> bool:
        return self.announce in ("position", "both")

    @property
    def wait(self) -> bool:
        return self.announce in ("wait", "both")


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
    subscribers: Mapping[str, Subscriber] = field(default_factory=dict)
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
    # media: queue number -> what its waiting callers hear (queues with hold music only)
    queue_hold: dict[str, QueueHold] = field(default_factory=dict)
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
        return set(self.member_groups.get(number, ()))

    # scale (issue 11): indexes, built once per snapshot on first use
    @cached_property
    def member_groups(self) -> dict[str, frozenset[tuple[str, str]]]:
        """number -> (kind, name) of every hunt group, ring-all group and queue it is in."""
        out: dict[str, set[tuple[str, str]]] = {}
        for member in self.members.values():
            if member.group_id in self.groups:
                out.setdefault(member.number, set()).add(("hunt", self.groups[member.group_id].name))
        for group in self.ringall.values():
            for number, _ in group.members:
                out.setdefault(number, set()).add(("ringall", group.name))
        for queue in self.queues.values():
            for agent in queue.agents:
                out.setdefault(agent.number, set()).add(("queue", queue.name))
        return {n: frozenset(g) for n, g in out.items()}

    @cached_property
    def trunk_sources(self) -> dict[str, tuple[tuple[int | None, Trunk], ...]]:
        """source IP -> (port or None: any, trunk) of the active trunks, in trunk order."""
        out: dict[str, list[tuple[int | None, Trunk]]] = {}
        for trunk in self.trunks.values():
            if trunk.active:
                for address, port in trunk.addresses:
                    out.setdefault(address, []).append((port, trunk))
        return {ip: tuple(entries) for ip, entries in out.items()}

    @cached_property
    def route_index(self) -> tuple[tuple[int, ...], dict[str, tuple[TrunkRoute, ...]]]:
        """(prefix lengths, longest first; prefix -> its routes by priority, trunk id)."""
        by_prefix: dict[str, list[TrunkRoute]] = {}
        for route in self.routes:
            by_prefix.setdefault(route.prefix, []).append(route)
        index = {p: tuple(sorted(rs, key=lambda r: (r.priority, r.trunk_id))) for p, rs in by_prefix.items()}
        return tuple(sorted({len(p) for p in index}, reverse=True)), index

    def routes_for(self, number: str) -> list[TrunkRoute]:
        """Routes whose prefix `number` starts with: longest prefix first, then priority."""
        lengths, index = self.route_index
        out: list[TrunkRoute] = []
        for length in lengths:
            if length <= len(number):
                out.extend(index.get(number[:length], ()))
        return out

    def is_local(self, number: str) -> bool:
        """A number this proxy serves itself (never sent to a trunk)."""
        return (number in self.subscribers or number in self.services or number in self.ringall
                or number in self.queues or number in self.callbacks)   # callback
