"""What operators provisioned, as an immutable snapshot the routing core reads. Pure data.

The data layer (kemi/store.py) builds one `Directory` from PostgreSQL and replaces it whole
when a provisioning change is notified, so a call always sees one consistent version.
"""
from __future__ import annotations

from dataclasses import dataclass, field

TERMINATORS = frozenset({"0000", "00000"})


@dataclass(frozen=True)
class Subscriber:
    number: str
    ha1: str
    active: bool = True
    display_name: str | None = None


@dataclass(frozen=True)
class HuntGroup:
    id: int
    name: str
    ring_timeout: int | None = None


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
class Directory:
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    groups: dict[int, HuntGroup] = field(default_factory=dict)
    members: dict[str, HuntMember] = field(default_factory=dict)
    services: dict[str, ServiceNumber] = field(default_factory=dict)

    def active_subscriber(self, number: str) -> Subscriber | None:
        sub = self.subscribers.get(number)
        return sub if sub is not None and sub.active else None
