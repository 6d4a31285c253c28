"""The proxy's side of whisper (5#), barge (6#) and listen (4#) on supervised queue calls
(issue 14 section 2).

Design: a queue with `supervised` on (`kemictl queue supervision NAME on`) does not ring the
offered agent's phone itself; it sends the customer's INVITE to the media service
(`X-Kemi-App: supervised;agent=N;caller=C;ring=S`), which calls the agent back through this
proxy (`X-Kemi-Origin: supervise;agent=N`, trusted only from the media service's own SIP
address and port, like callback legs), relays the agent's ringing and answers the customer
only when the agent answered. The two legs meet in the media service's bridge, so when a
supervisor arrives there is already something that can mix.

A supervisor's 4#/5#/6# + agent is authorised by kemi.routing exactly as 4# always was (the
supervisor of a group or queue of the agent). Then, by the agent's current call:
  * none                         480
  * a bridged call (marked)      the supervisor's INVITE goes to the media service,
                                 `X-Kemi-App: spy;call=<call-id>;mode=listen|whisper|barge`
  * any other call, 4#           rtpengine's subscription, as before (kemi/listen.py)
  * any other call, 5#/6#        501, naming what is missing (supervision on for the queue)

Shared memory: htable `calls` "sup:<call-id>" = agent, for both legs of a bridged call
(set when the leg is answered, removed with the call's BYE in kemi/listen.forget_call).

Pure part first (`spy_decision`, headers, `parse_origin`); the KSR adapter below `# ---- KSR`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

ORIGIN_HEADER = "X-Kemi-Origin"
ORIGIN = "supervise"
AGENT = re.compile(r"[0-9]{1,32}")
BRIDGE_AVP = "$avp(sup_agent)"
MARK = "sup:"
NEEDS_BRIDGE = ("Not Implemented - {mode} needs the call to pass through the media service: "
                "only calls from queues with supervision on (kemictl queue supervision NAME on); "
                "use 4# to listen")


@dataclass(frozen=True)
class ToMedia:
    header: str


@dataclass(frozen=True)
class Listen:
    """Today's rtpengine listen-in (kemi/listen.py)."""


@dataclass(frozen=True)
class Refuse:
    status: int
    reason: str


def spy_decision(agent: str, mode: str, agent_call: str | None, bridged: bool) -> ToMedia | Listen | Refuse:
    if agent_call is None:
        return Refuse(480, f"Temporarily Unavailable - {agent} has no current call")
    if bridged:
        return ToMedia(spy_header(agent_call, mode))
    if mode == "listen":
        return Listen()
    code = "5#" if mode == "whisper" else "6#"
    return Refuse(501, NEEDS_BRIDGE.format(mode=f"{mode} ({code})"))


def spy_header(call_id: str, mode: str) -> str:
    return f"spy;call={quote(call_id, safe='@.:+-_')};mode={mode}"


def supervised_header(agent: str, caller: str, ring: int) -> str:
    caller = caller if AGENT.fullmatch(caller or "") else ""
    return f"supervised;agent={agent};caller={caller};ring={ring}"


def parse_origin(header: str | None) -> str | None:
    """The agent of a `supervise;agent=N` origin header, None when it is not one or malformed."""
    if not header:
        return None
    name, _, rest = header.strip().partition(";")
    if name.strip() != ORIGIN:
        return None
    params = dict(p.strip().partition("=")[::2] for p in rest.split(";") if p.strip())
    agent = params.get("agent", "")
    return agent if AGENT.fullmatch(agent) else None


def is_supervise_origin(header: str | None) -> bool:
    return bool(header) and header.strip().split(";", 1)[0].strip() == ORIGIN


# ---- KSR adapter ------------------------------------------------------------------------

def _get(table: str, key: str) -> str | None:
    import KSR
    value = KSR.htable.sht_get(table, key)
    return None if value is None else str(value)


def offer(q, agents: list[str], domain: str, media_sip: str) -> int:
    """queueing.offer for a supervised queue: the call goes to the media service, which
    rings the first offered agent who is registered (the others are not offered)."""
    import KSR
    from kemi import journal, queueing
    from kemi.ksr import EXIT, log_info, pv
    from kemi.voicemail_route import APP_HEADER
    chosen = next((a for a in agents if a and queueing.registered(a, domain)), None)
    if chosen is None:
        return queueing.requeue("offered agents are gone")
    queueing.mark_busy(chosen)
    journal.offered(pv("$ci"), chosen)
    KSR.pv.sets("$avp(queue_offer)", chosen)
    KSR.pv.sets(BRIDGE_AVP, chosen)
    header = supervised_header(chosen, pv("$avp(queue_caller)") or "", q.ring_timeout)
    log_info(f"queue {q.name}: offering {pv('$ci')} to {chosen} through the media service ({header})")
    KSR.hdr.append(f"{APP_HEADER}: {header}\r\n")
    KSR.pv.sets("$ru", f"sip:supervised@{media_sip}")
    KSR.pv.sets("$du", f"sip:{media_sip}")
    # the service answers within 0.8 s (100 Trying); the agent rings at most ring_timeout
    KSR.tm.t_set_fr((q.ring_timeout + 10) * 1000, 800)
    KSR.tm.t_on_failure(queueing.FAILURE_ROUTE)
    KSR.tm.t_on_reply("ksr_reply_media")
    if KSR.tm.t_relay() < 0:
        return queueing.requeue("media service unreachable")
    return EXIT


def answered_agent() -> str | None:
    """Reply route, 2xx: the agent of a bridged leg (customer's or agent's), marking the call."""
    import KSR
    from kemi.ksr import pv
    agent = pv(BRIDGE_AVP)
    if agent:
        KSR.htable.sht_sets("calls", MARK + (pv("$ci") or ""), agent)
    return agent or None


def trusted_leg(handler, directory, media_sip: str) -> int | None:
    """The media service's call to an agent of a supervised call: routed to that SIP number
    only (no hunt, no digest). None when this INVITE is no such leg (and then any forged
    `supervise` origin header is removed, logged and counted)."""
    import KSR
    from kemi import instrument, queueing, routing
    from kemi.ksr import EXIT, log_info, pv, strip_identity_headers
    if KSR.hdr.is_present(ORIGIN_HEADER) <= 0:
        return None
    header = pv(f"$hdr({ORIGIN_HEADER})")
    if not is_supervise_origin(header):
        return None       # a callback origin: kemi/callback_route.py
    KSR.hdr.remove(ORIGIN_HEADER)
    source = f"{pv('$si')}:{pv('$sp')}"
    if source != media_sip:
        log_info(f"{ORIGIN_HEADER} supervise from {source} removed: only the media service may send it")
        instrument.auth_failure("forged_origin")
        return None
    agent = parse_origin(header)
    if agent is None or directory.active_subscriber(agent) is None:
        KSR.sl.sl_send_reply(404, "Not Found - no such agent")
        return EXIT
    strip_identity_headers()
    plan = routing.plan_call(agent + "T", directory, handler.settings.ring_timeout)
    KSR.pv.sets("$avp(call_from)", "")
    KSR.pv.sets(BRIDGE_AVP, agent)
    if not isinstance(plan, routing.Reject):
        KSR.dialog.dlg_manage()
        queueing.mark_busy(agent)
    log_info(f"supervised call: media service leg {pv('$ci')} to agent {agent}")
    return handler._start(plan, pv("$fU") or "")


def start(plan, ng, media_sip: str) -> int:
    """A supervisor's 4#/5#/6#, already authorised (routing.SpyPlan)."""
    import KSR
    from kemi import listen
    from kemi.ksr import EXIT, log_info, new_transaction, pv
    from kemi.voicemail_route import APP_HEADER
    agent_call = _get("calls", plan.agent)
    bridged = agent_call is not None and _get("calls", MARK + agent_call) is not None
    decision = spy_decision(plan.agent, plan.mode, agent_call, bridged)
    if isinstance(decision, Refuse):
        log_info(f"supervisor {pv('$fU')} {plan.mode} on {plan.agent}: {decision.status} {decision.reason}")
        KSR.sl.sl_send_reply(decision.status, decision.reason)
        return EXIT
    if isinstance(decision, Listen):
        return listen.start(plan, ng)
    log_info(f"supervisor {pv('$fU')} {plan.mode} on {plan.agent}: to the media service ({decision.header})")
    KSR.rr.record_route()
    if not new_transaction():
        return EXIT
    if KSR.sdpops.sdp_content() > 0:
        KSR.rtpengine.rtpengine_manage("codec-transcode=PCMU codec-transcode=PCMA")
    KSR.hdr.append(f"{APP_HEADER}: {decision.header}\r\n")
    KSR.pv.sets("$ru", f"sip:spy@{media_sip}")
    KSR.pv.sets("$du", f"sip:{media_sip}")
    KSR.tm.t_set_fr(120000, 800)
    KSR.tm.t_on_reply("ksr_reply_media")
    if KSR.tm.t_relay() < 0:
        KSR.tm.t_reply(503, "Service Unavailable - media service unreachable")
    return EXIT
