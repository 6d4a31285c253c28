"""Routing calls to the media service's voicemail (issue 13, section 2).

Pure part (no KSR): the per-subscriber rule (`BoxRule`), what a rule says for a call
(`divert_on`, `ring_timeout_for`), and the contract's X-Kemi-App header (`app_header`).
Adapter part: the functions below `# ---- KSR` apply it; handler.py and ring.py call them
in a few clearly marked lines.

  voicemail access number (KEMI_VOICEMAIL_NUMBER)  -> vmaccess;box=<caller> if the
      authenticated caller owns a box (no PIN), else vmaccess (box number + PIN by DTMF)
  direct call to a number whose box says `always`  -> voicemail;box=<number> at once
  ... `no answer after N s`                        -> the number rings N s, then voicemail
  ... `on busy`                                    -> voicemail when every device was busy
  a number that is not registered, with any rule    -> voicemail
The media service is reached through Kamailio with rtpengine in front, like any callee; if
it sends no reply within MEDIA_NO_RESPONSE_MS (it is down), the caller gets 503 with a reason.
"""
from __future__ import annotations

import dataclasses
from urllib.parse import quote

from kemi.directory import BoxRule

MEDIA_NO_RESPONSE_MS = 800     # no 100 Trying from the service in this time: it is down
# The media service speaks G.711 only: rtpengine adds PCMU/PCMA to the offer and transcodes
# for callers that offered something else (G.722, opus, ...).
TRANSCODE_FLAGS = "codec-transcode=PCMU codec-transcode=PCMA"
FAILURE_ROUTE = "ksr_failure_media"
APP_HEADER = "X-Kemi-App"




def divert_on(rule: BoxRule | None, event: str) -> bool:
    """event: 'call' (before ringing), 'busy', 'no_answer', 'unregistered'."""
    if rule is None:
        return False
    if event == "call":
        return rule.always
    if event == "busy":
        return rule.on_busy
    if event == "no_answer":
        return rule.no_answer_seconds is not None
    if event == "unregistered":
        return rule.on_busy or rule.no_answer_seconds is not None
    return False


def ring_timeout_for(plan, rules: dict[str, BoxRule]):
    """A direct call to a number whose box diverts on no answer rings that many seconds."""
    rule = rules.get(getattr(plan, "dialled", ""))
    if getattr(plan, "kind", None) != "direct" or rule is None or rule.no_answer_seconds is None:
        return plan
    steps = tuple(dataclasses.replace(s, ring_timeout=rule.no_answer_seconds) for s in plan.steps)
    return dataclasses.replace(plan, steps=steps)


def app_header(app: str, **params: str) -> str:
    return ";".join([app] + [f"{k}={quote(str(v), safe='')}" for k, v in params.items() if v is not None])


def load_rules(conn) -> dict[str, BoxRule]:
    with conn.cursor() as cur:
        cur.execute("SELECT number, always, on_busy, no_answer_seconds FROM voicemail_box")
        return {r[0]: BoxRule(*r) for r in cur}


# ---- KSR adapter ------------------------------------------------------------------------

class Rules:
    """The boxes' rules, part of the directory snapshot the loader writes (kemi/store.py):
    the per-call path makes no query."""

    def __init__(self, cache, log):
        self.cache, self.log = cache, log

    def get(self) -> dict[str, BoxRule]:
        directory = self.cache.get()
        return directory.voicemail_rules if directory is not None else {}


def strip_app_header() -> None:
    """Phones must never choose a media app themselves (e.g. someone else's box)."""
    import KSR
    if KSR.hdr.is_present(APP_HEADER) > 0:
        KSR.hdr.remove(APP_HEADER)


def relay(media_sip: str, header: str, fresh: bool, add_rr: bool | None = None) -> int:
    """Send the call (new, or in a failure route) to the media service. `add_rr`: record-route
    here (default: when fresh; the ring path has done it already)."""
    import KSR
    from kemi import instrument
    from kemi.ksr import EXIT, log_info, new_transaction, pv
    app = header.split(";", 1)[0]
    log_info(f"call {pv('$ci')}: to the media service, {header}")
    if fresh if add_rr is None else add_rr:
        KSR.rr.record_route()
    if fresh:
        if not new_transaction():
            return EXIT
        if KSR.sdpops.sdp_content() > 0:
            KSR.rtpengine.rtpengine_manage(TRANSCODE_FLAGS)
    KSR.hdr.append(f"{APP_HEADER}: {header}\r\n")
    KSR.pv.sets("$ru", f"sip:{app}@{media_sip}")
    KSR.pv.sets("$du", f"sip:{media_sip}")
    KSR.tm.t_set_fr(120000, MEDIA_NO_RESPONSE_MS)
    KSR.tm.t_on_failure(FAILURE_ROUTE)
    KSR.tm.t_on_reply("ksr_reply_media")
    if KSR.tm.t_relay() < 0:
        KSR.tm.t_reply(503, "Service Unavailable - media service unreachable")
        instrument.call_ended(503)
    return EXIT


def divert(rules: Rules, media_sip: str, number: str | None, event: str, fresh: bool) -> int | None:
    """Voicemail for `number` if its rule says so for `event`; None: not diverted."""
    if not number or not divert_on(rules.get().get(number), event):
        return None
    return relay(media_sip, app_header("voicemail", box=number), fresh, add_rr=fresh and event == "call")


def on_failure() -> int:
    """The media service's branch failed: a clear answer to the caller."""
    import KSR
    from kemi import instrument
    from kemi.ksr import EXIT, log_info, pv
    if KSR.tm.t_is_canceled() > 0:
        KSR.rtpengine.rtpengine_delete0()
        return EXIT
    code = int(pv("$T_reply_code") or 0)
    KSR.rtpengine.rtpengine_delete0()
    if code == 408 or code >= 500 or code == 0:
        log_info(f"call {pv('$ci')}: media service did not answer ({code}): 503")
        KSR.tm.t_reply(503, "Service Unavailable - voicemail is not reachable")
        instrument.call_ended(503)
    else:
        reason = pv("$T_reply_reason") or "Media service refused"
        KSR.tm.t_reply(code, reason)
        instrument.call_ended(code)
    return EXIT


def is_mwi() -> bool:
    """A SUBSCRIBE for message-summary (other events keep the proxy's 405)."""
    from kemi.ksr import pv
    return (pv("$hdr(Event)") or "").split(";", 1)[0].strip().lower() == "message-summary"


def subscribe(settings, number: str) -> int:
    """A phone subscribes to its own box's message-summary (R-URI: its own number or the
    voicemail number); the media service is the notifier, through this proxy."""
    import KSR
    from kemi.ksr import EXIT, log_info, new_transaction, pv
    event = (pv("$hdr(Event)") or "").split(";", 1)[0].strip().lower()
    if event != "message-summary":
        KSR.hdr.append_to_reply("Allow-Events: dialog, message-summary\r\n")
        KSR.sl.sl_send_reply(489, "Bad Event - only message-summary is supported")
        return EXIT
    if (pv("$rU") or "") not in (number, settings.voicemail_number):
        KSR.sl.sl_send_reply(403, "Forbidden - subscribe to your own mailbox")
        return EXIT
    KSR.auth.consume_credentials()
    strip_app_header()
    log_info(f"{number} subscribes to message-summary")
    KSR.rr.record_route()
    if not new_transaction():
        return EXIT
    KSR.hdr.append(f"{APP_HEADER}: {app_header('mwi', box=number)}\r\n")
    KSR.pv.sets("$ru", f"sip:mwi@{settings.media_sip}")
    KSR.pv.sets("$du", f"sip:{settings.media_sip}")
    KSR.tm.t_set_fr(2000, MEDIA_NO_RESPONSE_MS)
    KSR.tm.t_on_failure(FAILURE_ROUTE)
    if KSR.tm.t_relay() < 0:
        KSR.tm.t_reply(503, "Service Unavailable - media service unreachable")
    return EXIT
