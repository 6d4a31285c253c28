"""The proxy's side of the callback extension (seed 002, issue 14 section 3).

Two kinds of calls:
  * a caller rings a DID whose target is a callback number: the call goes to the media
    service, `X-Kemi-App: callback;number=<callback number>;caller=<caller ID>;hidden=0|1`;
    the service lets it ring, releases it unanswered and calls back (media/callback.py);
  * the media service's own outgoing legs (media/uac.py): an INVITE from the media service's
    SIP address (KEMI_MEDIA_SIP, source address AND port) carrying
    `X-Kemi-Origin: callback;number=<callback number>` goes out through the trunks with the
    caller-ID policy (seed 002) of the account's `caller_id_of` SIP number, without digest.
    From anywhere else the header is removed before anything reads it: a phone or trunk
    cannot claim to be the media service (it is then routed as what it really is).

Pure part: `parse_origin`, `plan_out`, `app_header`; the adapter below `# ---- KSR`.
"""
from __future__ import annotations

import re
from urllib.parse import quote

from kemi import routing
from kemi.directory import Directory, Subscriber

ORIGIN_HEADER = "X-Kemi-Origin"
NUMBER = re.compile(r"[0-9]{2,32}")


def load_numbers(conn) -> dict[str, str | None]:
    """callback number -> caller-ID subscriber (part of the directory snapshot)."""
    with conn.cursor() as cur:
        cur.execute("SELECT number, caller_id_of FROM callback_account")
        return {r[0]: r[1] for r in cur}


def parse_origin(header: str | None) -> str | None:
    """The callback number of a trusted X-Kemi-Origin header, or None if malformed."""
    if not header:
        return None
    name, _, rest = header.strip().partition(";")
    if name.strip() != "callback":
        return None
    params = dict(p.strip().partition("=")[::2] for p in rest.split(";") if p.strip())
    number = params.get("number", "")
    return number if NUMBER.fullmatch(number) else None


def plan_out(directory: Directory, dialled: str, callback_number: str, default_timeout: int):
    """Where a media-service leg goes: public numbers only, through the trunks, presented
    with the caller-ID policy of the account's subscriber (or the trunks' defaults)."""
    if callback_number not in directory.callbacks:
        return routing.Reject(403, f"Forbidden - no callback account {callback_number}")
    if not NUMBER.fullmatch(dialled or ""):
        return routing.Reject(484, "Address Incomplete - a callback leg dials 2-32 digits")
    if directory.is_local(dialled):
        return routing.Reject(403, "Forbidden - callback legs go to public numbers only")
    owner = directory.callbacks[callback_number]
    sub = directory.subscribers.get(owner) if owner else None
    if sub is None:   # no subscriber: the trunk's default caller ID, else the callback number
        sub = Subscriber(callback_number, "", default_caller_id=None)
    return routing.plan_call(dialled, directory, default_timeout, caller=sub)


def app_header(callback_number: str, caller: str, hidden: bool) -> str:
    return (f"callback;number={quote(callback_number, safe='')};caller={quote(caller, safe='')};"
            f"hidden={int(hidden)}")


def is_hidden(number: str, privacy: str | None) -> bool:
    from kemi.core.callback import is_hidden as hidden
    return hidden(number, privacy)


# ---- KSR adapter ------------------------------------------------------------------------

def trusted_origin(media_sip: str):
    """The callback number of an INVITE the media service placed (launcher: a
    launch_route.LaunchOrigin), or None. The header is
    removed from every other request (and from this one once read)."""
    import KSR
    from kemi.ksr import log_info, pv
    if KSR.hdr.is_present(ORIGIN_HEADER) <= 0:
        return None
    header = pv(f"$hdr({ORIGIN_HEADER})")
    KSR.hdr.remove(ORIGIN_HEADER)
    source = f"{pv('$si')}:{pv('$sp')}"
    if source != media_sip:
        log_info(f"{ORIGIN_HEADER} from {source} removed: only the media service ({media_sip}) may send it")
        from kemi import instrument
        instrument.auth_failure("forged_origin")
        return None
    number = parse_origin(header)
    if number is None:
        from kemi import launch_route   # launcher: `launch;id=N`, the same trust rule
        launch = launch_route.parse(header)
        if launch is not None:
            return launch
        log_info(f"malformed {ORIGIN_HEADER} {header!r} from the media service ignored")
    return number


def route_out(handler, directory: Directory, callback_number: str) -> int:
    """A media-service leg: no digest (trusted by address + header), trunks only."""
    from kemi.ksr import EXIT, log_info, pv, strip_identity_headers
    strip_identity_headers()
    plan = plan_out(directory, pv("$rU") or "", callback_number, handler.settings.ring_timeout)
    log_info(f"callback {callback_number}: media service leg to {pv('$rU')}: {type(plan).__name__}")
    if isinstance(plan, routing.Reject):
        import KSR
        KSR.sl.sl_send_reply(plan.status, plan.reason)
        return EXIT
    return handler._start(plan, callback_number)


def relay_inbound(settings, callback_number: str, caller: str, sent_number: str) -> int:
    """A caller rings the callback number: to the media service (never answered here)."""
    from kemi import voicemail_route
    from kemi.ksr import pv
    hidden = is_hidden(sent_number, pv("$hdr(Privacy)"))
    header = app_header(callback_number, "" if hidden else caller, hidden)
    return voicemail_route.relay(settings.media_sip, header, True)
