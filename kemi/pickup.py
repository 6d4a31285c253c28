"""Call pickup (issue 12): a colleague takes a call that is ringing at someone else's phone.

A proxy cannot join two INVITEs, so pickup uses RFC 3891 the way BLF phones expect: the
picker's INVITE goes to the *caller* with `Replaces: <call-id>;to-tag=..;from-tag=..;early-only`
naming the caller's ringing (early) dialog; the caller's phone answers it and CANCELs its
first INVITE, so the phone that rang stops. Ways in:
- the BLF key: the picker's phone sends its own INVITE with Replaces (from the dialog-info
  NOTIFY, which carries call-id and tags) to any URI; the proxy sends it to the caller;
- the pickup code (`*8` + number, kemi/config.py `code_pickup`): the call ringing at that number;
- the pickup code alone: a call ringing in one of the picker's hunt or ring-all groups.
The picker must share a group (hunt, ring-all, queue) with the phone that rings.

Shared memory (htable `pickup`, entries expire after 5 minutes):
  c:<call-id>        "caller contact|caller address|from-tag|member,member..." while it rings
  t:<call-id>        the to-tag of the first 18x (the early dialog to replace)
  m:<number>         call-id of the latest call ringing at that number
  g:<kind>:<group>   call-id of the latest call ringing in that group
KSR adapter; the caller's phone must support Replaces (most desk and softphones do; trunks
usually do not, so calls from trunks cannot be picked up this way).
"""
from __future__ import annotations

import re

import KSR  # provided by app_python3

from kemi import blf, nat
from kemi.ksr import EXIT, log_info, new_transaction, pv

TABLE = "pickup"
REPLY_ROUTE = "ksr_reply_media"


def _get(key: str) -> str | None:
    value = KSR.htable.sht_get(TABLE, key)
    return None if value is None else str(value)


def remember(plan, caller: str) -> None:
    """A new call from a subscriber's phone starts ringing: note what pickup needs."""
    _callers, members = blf.publish_targets(plan, caller)
    if not members:
        return
    contact = re.search(r"<?(sips?:[^>;]+(?:;[^>]*)?)>?", pv("$ct") or "")
    if contact is None:
        return
    call_id = pv("$ci")
    address = f"sip:{pv('$si')}:{pv('$sp')};transport={pv('$pr') or 'udp'}"
    KSR.htable.sht_sets(TABLE, f"c:{call_id}", "|".join((contact.group(1), address, pv("$ft") or "",
                                                           ",".join(members))))
    for member in members:
        KSR.htable.sht_sets(TABLE, f"m:{member}", call_id)
    if getattr(plan, "group", None) and plan.kind in ("ringall", "hunt", "service"):
        kind = "ringall" if plan.kind == "ringall" else "hunt"
        KSR.htable.sht_sets(TABLE, f"g:{kind}:{plan.group}", call_id)


def on_reply(status: int) -> None:
    """Reply route: the first 18x names the early dialog; an answer ends pickup."""
    call_id = pv("$ci")
    if 100 < status < 200:
        if _get(f"t:{call_id}") is None and _get(f"c:{call_id}") is not None and pv("$tt"):
            KSR.htable.sht_sets(TABLE, f"t:{call_id}", pv("$tt"))
    elif status >= 200:
        KSR.htable.sht_rm(TABLE, f"c:{call_id}")


def by_code(argument: str | None, picker: str, directory) -> int:
    """*8 [number]: find the ringing call and send the picker's INVITE to its caller."""
    if argument:
        if directory.active_subscriber(argument) is None:
            return _refuse(404, f"Not Found - no SIP number {argument}")
        if not directory.groups_of(picker) & directory.groups_of(argument):
            return _refuse(403, f"Forbidden - {argument} is in no group of yours")
        call_id = _get(f"m:{argument}")
        what = argument
    else:
        call_id, what = None, "your groups"
        for kind, name in sorted(directory.groups_of(picker)):
            candidate = _get(f"g:{kind}:{name}") if kind in ("hunt", "ringall") else None
            if candidate and _get(f"c:{candidate}") is not None:
                call_id = candidate
                break
    entry = _get(f"c:{call_id}") if call_id else None
    to_tag = _get(f"t:{call_id}") if call_id else None
    if entry is None or to_tag is None:
        return _refuse(480, f"Temporarily Unavailable - no call ringing in {what}")
    contact, address, from_tag, _members = entry.split("|", 3)
    return _to_caller(contact, address, f"{call_id};to-tag={to_tag};from-tag={from_tag};early-only")


def by_replaces(picker: str, directory) -> int | None:
    """An INVITE with Replaces from a BLF key. None: not a ringing call this proxy knows (an
    attended transfer, say): route it as usual."""
    call_id = (pv("$hdr(Replaces)") or "").split(";")[0].strip()
    entry = _get(f"c:{call_id}") if call_id else None
    if entry is None:
        return None
    contact, address, _from_tag, members = entry.split("|", 3)
    mine = directory.groups_of(picker)
    if not any(mine & directory.groups_of(m) for m in members.split(",") if m):
        return _refuse(403, "Forbidden - that call rings outside your groups")
    return _to_caller(contact, address, None)


def _refuse(status: int, reason: str) -> int:
    log_info(f"pickup by {pv('$fU')}: {status} {reason}")
    KSR.sl.sl_send_reply(status, reason)
    return EXIT


def _to_caller(contact: str, address: str, replaces: str | None) -> int:
    if not new_transaction():
        return EXIT
    if replaces:
        KSR.hdr.remove("Replaces")
        KSR.hdr.append(f"Replaces: {replaces}\r\n")
    log_info(f"pickup by {pv('$fU')}: INVITE with Replaces to the caller at {contact}")
    KSR.pv.sets("$ru", contact)
    KSR.pv.sets("$du", address)
    KSR.rr.record_route()
    nat.media_request("INVITE")
    KSR.tm.t_on_reply(REPLY_ROUTE)
    if KSR.tm.t_relay() < 0:
        KSR.tm.t_reply(500, "Server Internal Error - could not forward")
    return EXIT
