"""Validation of one hunt group's table against what is already provisioned. Pure.

Every error names the line, the field and the rule it breaks; all errors are collected so an
operator can fix a file in one go. The caller writes nothing unless the list is empty.
"""
from __future__ import annotations

from dataclasses import replace

from kemi import hunt
from kemi.directory import Directory, HuntMember
from provision.hunt_table import HEADER, HuntRow

SIP, NEXT, SERVICE, START = HEADER


def problem(row: HuntRow, field: str, rule: str) -> str:
    return f"line {row.line}, field '{field}': {rule}"


def validate_group(rows: list[HuntRow], group_id: int, directory: Directory) -> list[str]:
    """`directory` is the current state; the group's own old members and services are
    ignored, since an import replaces the whole group."""
    errors: list[str] = []
    if not rows:
        return ["the table has no rows: a group needs at least one SIP number"]

    others_members = {n: m for n, m in directory.members.items() if m.group_id != group_id}
    others_services = {n: s for n, s in directory.services.items() if s.group_id != group_id}
    sip_numbers = [r.sip_number for r in rows]
    seen_sip: set[str] = set()
    seen_service: set[str] = set()

    for row in rows:
        sip = row.sip_number
        if sip in seen_sip:
            errors.append(problem(row, SIP, f"{sip} appears twice; a SIP number has one next number"))
        seen_sip.add(sip)
        if directory.active_subscriber(sip) is None:
            errors.append(problem(row, SIP, f"{sip} is not an existing active SIP number (add it with 'kemictl subscriber add')"))
        elif sip in others_members:
            other = directory.groups[others_members[sip].group_id].name
            errors.append(problem(row, SIP, f"{sip} is already a member of group '{other}'; a SIP number belongs to one group"))

        nxt = row.next_number
        if nxt is not None:
            if nxt == sip:
                errors.append(problem(row, NEXT, f"{sip} cannot be its own next number"))
            elif directory.active_subscriber(nxt) is None:
                errors.append(problem(row, NEXT, f"{nxt} is not an existing active SIP number "
                                                 "(a next number must be an active SIP number or 0000)"))

        if (row.service_number is None) != (row.start_number is None):
            if row.service_number is not None:
                errors.append(problem(row, START, f"service number {row.service_number} needs a start number"))
            else:
                errors.append(problem(row, SERVICE, f"start number {row.start_number} is given without a service number"))
            continue
        if row.service_number is None:
            continue
        service = row.service_number
        if service in directory.subscribers:
            errors.append(problem(row, SERVICE, f"{service} is a SIP number; a service number must differ from every SIP number"))
        if service in seen_service:
            errors.append(problem(row, SERVICE, f"{service} appears twice"))
        seen_service.add(service)
        if service in directory.dids or service in directory.ringall or service in directory.queues:
            errors.append(problem(row, SERVICE, f"{service} is already a DID, ring-all group or queue number"))
        if service in others_services:
            other = directory.groups[others_services[service].group_id].name
            errors.append(problem(row, SERVICE, f"{service} already belongs to group '{other}'"))
        if row.start_number not in sip_numbers:
            errors.append(problem(row, START, f"{row.start_number} is not a SIP number of this group (a start number must be an active member)"))
        elif directory.active_subscriber(row.start_number) is None:
            errors.append(problem(row, START, f"{row.start_number} is not active (a start number must be an active member)"))

    if len(seen_service) > len(seen_sip):
        errors.append(f"the group has {len(seen_service)} service numbers but only {len(seen_sip)} SIP numbers; "
                      "a group may not have more service numbers than SIP numbers")
    if not errors:
        errors.extend(_chain_errors(rows, group_id, directory, others_members))
    return errors


def _chain_errors(rows, group_id, directory, others_members) -> list[str]:
    """Chains are followed across groups, as calls would follow them."""
    members = dict(others_members)
    for row in rows:
        members[row.sip_number] = HuntMember(row.sip_number, group_id, row.next_number)
    merged = replace(directory, members=members)
    errors, reported = [], set()
    for row in rows:
        order, loop = hunt.chain_numbers(merged, row.sip_number)
        if loop:
            key = frozenset(loop)
            if key not in reported:
                reported.add(key)
                errors.append(problem(row, NEXT, "the chain loops back on itself: " + " -> ".join(loop)))
        elif len(order) > hunt.MAX_STEPS:
            errors.append(problem(row, NEXT, f"the chain from {row.sip_number} has {len(order)} steps; at most {hunt.MAX_STEPS} are allowed"))
    return errors
