"""Where a new call goes: dial string + caller + directory -> plan. Pure: no I/O, no KSR."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from kemi import dialstring, hunt, identity, trunks
from kemi.directory import Directory, Subscriber


@dataclass(frozen=True)
class Reject:
    status: int
    reason: str


@dataclass(frozen=True)
class RingPlan:
    """Ring these members one after another (one member: a direct call), or all at once
    (`parallel`, a ring-all group)."""
    dialled: str
    kind: str                      # "direct", "hunt", "service" or "ringall"
    steps: tuple[hunt.Step, ...]
    identity: identity.Identity | None = None   # None: the caller's From goes through as sent
    parallel: bool = False
    group: str | None = None       # the hunt or ring-all group's name
    display_format: str | None = None   # ring-all: what members see, from {group} and {caller}
    fallback: str | None = None    # where the call goes when nobody answered (timeout destination)


@dataclass(frozen=True)
class QueuePlan:
    """Wait in a queue until an agent is free (kemi.queue picks the agent)."""
    dialled: str
    queue: str                     # the queue's number


@dataclass(frozen=True)
class TrunkPlan:
    """Send an external call out, trunk after trunk until one does not fail."""
    dialled: str
    steps: tuple[trunks.TrunkStep, ...]
    identities: dict[int, identity.Identity] = field(default_factory=dict)   # per trunk id


@dataclass(frozen=True)
class SpyPlan:
    """A supervisor listens in on (4#), whispers to (5#) or barges into (6#) an agent's
    current call; how is decided by the agent's call (kemi/supervise_route.py)."""
    agent: str
    mode: str = "listen"


Plan = RingPlan | QueuePlan | TrunkPlan | SpyPlan | Reject

NO_MIXING = ("Not Implemented - {mode} needs audio mixing, which rtpengine 10.5 does not have; "
             "use 4# to listen")


def plan_call(ruri_user: str, directory: Directory, default_timeout: int,
              caller: Subscriber | None = None, caller_display: str | None = None,
              rng: random.Random | None = None, exclude: str | None = None) -> Plan:
    """`caller` is the authenticated subscriber, or None for a call that came in on a trunk.
    `exclude`: a SIP number no group may ring (the caller's own devices; default: the
    caller's number). Group numbers take no suffixes: one rule for every group kind."""
    if exclude is None and caller is not None:
        exclude = caller.number
    try:
        dial = dialstring.parse(ruri_user)
    except dialstring.DialError as err:
        return Reject(err.status, err.reason)
    if dial.spy:
        return _spy(dial, directory, caller)
    if caller is None and (dial.anonymous or dial.caller_id_index is not None):
        return Reject(484, "Address Incomplete - suffixes h and cN are for calls from phones")
    try:
        if directory.is_local(dial.number):
            return _local(dial, directory, default_timeout, caller, caller_display, exclude)
        return _external(dial, directory, caller, rng)
    except identity.IdentityError as err:
        return Reject(err.status, err.reason)


def _spy(dial, directory, caller) -> Plan:
    if caller is None:
        return Reject(403, "Forbidden - listen-in, whisper and barge are for supervisors' phones")
    if directory.active_subscriber(dial.number) is None:
        return Reject(404, f"Not Found - no agent {dial.number}")
    if not directory.supervisors.get(caller.number, frozenset()) & directory.groups_of(dial.number):
        return Reject(403, f"Forbidden - {caller.number} does not supervise a group or queue of {dial.number}")
    return SpyPlan(dial.number, dial.spy)


GROUP_SUFFIX = "Address Incomplete - suffixes T, h and cN do not apply to group and queue numbers"


def _local(dial, directory, default_timeout, caller, caller_display, exclude=None) -> Plan:
    # phones: one suffix rule for every group kind (hunt service numbers, ring-all, queues)
    is_group = (dial.number in directory.ringall or dial.number in directory.queues
                or dial.number in directory.services)
    if is_group and (dial.ring_only or dial.anonymous or dial.caller_id_index is not None):
        return Reject(484, GROUP_SUFFIX)
    if dial.number in directory.ringall or dial.number in directory.queues:
        if dial.number in directory.queues:
            return QueuePlan(dial.number, dial.number)
        return _ringall(directory.ringall[dial.number], directory, default_timeout, exclude)
    service = directory.services.get(dial.number)
    if service is not None:
        start, kind = service.start_number, "service"
    else:
        if directory.active_subscriber(dial.number) is None:
            return Reject(480, "Temporarily Unavailable - number disabled")
        start = dial.number
        kind = "hunt" if dial.number in directory.members and not dial.ring_only else "direct"

    steps = hunt.hunt_steps(directory, start, default_timeout, ring_only=dial.ring_only)
    if not steps:
        return Reject(480, "Temporarily Unavailable - no active member")
    who = None
    if caller is not None and (dial.anonymous or dial.caller_id_index is not None):
        who = identity.internal_identity(caller, dial.anonymous, dial.caller_id_index, caller_display)
    member = directory.members.get(start)
    group = directory.groups.get(member.group_id) if member and kind != "direct" else None
    if kind != "direct" and exclude:
        # phones: a group never rings the caller's own devices
        steps = [step for step in steps if step.number != exclude]
        if not steps and not (group and group.timeout_target):
            return Reject(480, "Temporarily Unavailable - no other member in the group")
    return RingPlan(dial.number, kind, tuple(steps), who, group=group.name if group else None,
                    fallback=group.timeout_target if group else None)


def _snapshot_logged_in(group_number: str, number: str, logged_in: bool) -> bool:
    return logged_in


# agents (issue 11): a member's state is runtime state in shared memory; the adapter installs
# kemi.agent_keys.ringall_logged_in here. (group number, member, snapshot's value) -> logged in
member_logged_in = _snapshot_logged_in


def _ringall(group, directory, default_timeout, exclude=None) -> Plan:
    timeout = group.ring_timeout or default_timeout
    steps = tuple(hunt.Step(number, timeout) for number, logged_in in group.members
                  if member_logged_in(group.number, number, logged_in)
                  and directory.active_subscriber(number) and number != exclude)
    if not steps and not group.timeout_target:
        if any(number == exclude for number, _logged_in in group.members):
            return Reject(480, f"Temporarily Unavailable - no other member of {group.name} available")
        return Reject(480, f"Temporarily Unavailable - nobody logged in to {group.name}")
    return RingPlan(group.number, "ringall", steps, parallel=True, group=group.name,
                    display_format=group.display_format, fallback=group.timeout_target)


def _external(dial, directory, caller, rng) -> Plan:
    if caller is None:
        # A trunk may only reach this proxy's own numbers: never relay trunk to trunk.
        return Reject(404, "Not Found - unknown number")
    if dial.ring_only:
        return Reject(484, "Address Incomplete - suffix T is for SIP numbers of this proxy")
    steps = trunks.outbound_steps(directory, dial.number)
    if not steps:
        return Reject(404, f"Not Found - no route for {dial.number}")
    ids = {}
    for step in steps:
        if step.trunk_id not in ids:
            trunk = directory.trunks[step.trunk_id]
            ids[step.trunk_id] = identity.trunk_identity(
                caller, trunk, trunks.trunk_dids(directory, trunk.id), dial.anonymous, dial.caller_id_index, rng)
    return TrunkPlan(dial.number, tuple(steps), ids)
