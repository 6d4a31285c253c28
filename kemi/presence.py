"""BLF adapter (issue 12): SUBSCRIBE and PUBLISH for the dialog event package through Kamailio's
presence module, and the AVPs that make pua_dialoginfo publish a new call's state. KSR adapter;
the rules are in kemi.blf."""
from __future__ import annotations

import time

import KSR  # provided by app_python3

from kemi import blf, phone_metrics
from kemi.ksr import EXIT, log_info, new_transaction, pv

RATE_TABLE = "blfrate"
WATCH_TABLE = "blfwatch"    # number -> unix time its last BLF subscription expires


def subscribe(directory, authenticate) -> int:
    """A SUBSCRIBE (new or refresh): authenticated subscribers only, dialog package only."""
    user = authenticate(directory, "$fU")
    if user is None:
        phone_metrics.blf_subscribe("forbidden")
        return EXIT
    key = f"{user}:{int(time.time() // 60)}"
    count = KSR.htable.sht_inc(RATE_TABLE, key)
    if count <= 1 and KSR.htable.sht_get(RATE_TABLE, key) is None:   # sht_inc does not create
        KSR.htable.sht_seti(RATE_TABLE, key, 1)
        count = 1
    target = pv("$rU")
    refusal = blf.check_subscribe(pv("$hdr(Event)"), target,
                                  bool(target) and directory.active_subscriber(target) is not None, count)
    if refusal is not None:
        log_info(f"blf: SUBSCRIBE from {user} to {target!r} ({pv('$hdr(Event)')!r}): {refusal.status} {refusal.reason}")
        phone_metrics.blf_subscribe(refusal.result)
        if refusal.headers:
            KSR.hdr.append_to_reply(refusal.headers)
        KSR.sl.sl_send_reply(refusal.status, refusal.reason)
        return EXIT
    KSR.auth.consume_credentials()
    if not new_transaction():
        return EXIT
    if KSR.presence.handle_subscribe() < 0:
        phone_metrics.blf_subscribe("error")
    else:
        phone_metrics.blf_subscribe("accepted")
        _watched(target, pv("$hdr(Expires)"))
    KSR.tm.t_release()
    return EXIT


def publish(sip_address: str, sip_port: int) -> int:
    """PUBLISH is only taken from this proxy itself (pua_dialoginfo): phones cannot fake a
    colleague's lamp."""
    if pv("$si") != sip_address or int(pv("$sp") or 0) != sip_port:
        log_info(f"blf: PUBLISH from {pv('$si')}:{pv('$sp')} refused")
        KSR.sl.sl_send_reply(403, "Forbidden - PUBLISH is for the proxy's own presence agent")
        return EXIT
    if not new_transaction():
        return EXIT
    KSR.presence.handle_publish()
    KSR.tm.t_release()
    return EXIT


def _watched(target: str, expires: str | None) -> None:
    """Remember until when `target` has a watcher, so calls of numbers nobody watches cost
    no PUBLISH at all. An unsubscribe leaves the entry to expire (a few extra PUBLISHes)."""
    until = blf.watch_until(time.time(), expires)
    current = KSR.htable.sht_get(WATCH_TABLE, target)
    if until > int(current or 0):
        KSR.htable.sht_seti(WATCH_TABLE, target, until)


def _is_watched(number: str, now: float) -> bool:
    until = KSR.htable.sht_get(WATCH_TABLE, number)
    return until is not None and int(until) >= now


def publish_call(plan, caller: str | None, host: str, port: int) -> None:
    """Before dlg_manage(): whose lamps this call lights (pua_dialoginfo reads the AVPs when the
    dialog is created). Only numbers someone watches: every state is a PUBLISH."""
    callers, callees = blf.publish_targets(plan, caller)
    now = time.time()
    for number in callers:
        if _is_watched(number, now):
            KSR.pv.sets("$avp(blf_caller)", blf.presentity_uri(number, host, port))
    for number in callees:
        if _is_watched(number, now):
            KSR.pv.sets("$avp(blf_callee)", blf.presentity_uri(number, host, port))
