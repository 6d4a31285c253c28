"""The KSR entry points: Kamailio calls the ksr_* methods of this object.

It reads facts from the message, asks the pure core (kemi.routing and friends) what to do
and hands the plan to the adapter that applies it: kemi.ring (phones, hunt and ring-all
groups), kemi.queueing (queues and their dispatcher), kemi.outbound (trunks), kemi.listen
(supervisor listen-in). kemi.instrument and kemi.journal record what happened. Every route catches every exception at the boundary: the caller
gets a 500 and the log the traceback, never a hung transaction (app_python3 itself would
only log and return -1).
"""
from __future__ import annotations

import traceback

import KSR  # provided by app_python3

from kemi import hunt, instrument, journal, listen, media, outbound, queueing, ring, routing, trunks
from kemi import flow_engine, names  # flows:
from kemi import voicemail_route  # media
from kemi import conference_route  # conference rooms
from kemi import callback_route  # callback (seed 002)
from kemi import supervise_route  # whisper and barge
from kemi import launch_route  # launcher (seed 003)
from kemi import agent_keys, long_calls, nat, pickup, presence  # phones: NAT, SDP in every offer/answer order, BLF, pickup
from kemi.features import Features  # phones: feature codes (pickup, agent keys)
from kemi.config import Settings
from kemi.guard import Guard
from kemi.ksr import (EXIT, apply_identity, from_display, log_error, log_info, pv, replace_from,
                      strip_identity_headers)
from kemi.store import DirectoryCache
from kemi import subscribers  # scale: subscribers in shared memory
from rtpengine.ng import NgClient


AUTH_INVALID_PASSWORD = -2   # pv_auth_check(): the response did not match (auth/api.h)


class Handler:
    def __init__(self):
        self.settings = Settings.from_env()
        # scale: subscribers from Kamailio's shared memory, one key per lookup (kemi/subscribers.py)
        self.cache = DirectoryCache(self.settings.database_url, log=log_error, subscribers=subscribers.shared(log_error))
        self.dispatcher = queueing.Dispatcher()
        self.ng = NgClient(self.settings.rtpengine_ng, timeout=0.5, retries=1)
        journal.configure(self.settings.var_dir, log=log_error)
        self.guard = Guard(self.settings)
        self.flows = flow_engine.FlowEngine(self.settings)  # flows:
        self.vm_rules = voicemail_route.Rules(self.cache, log_error)   # media
        ring.UNANSWERED = self._voicemail_unanswered                   # media
        queueing.MEDIA_SIP = self.settings.media_sip                   # media: music on hold
        self.features = Features(self.settings)   # phones
        routing.member_logged_in = agent_keys.ringall_logged_in   # agents: state in shared memory

    def child_init(self, rank: int) -> int:
        # Load the snapshot in every SIP worker at start, so each one can keep routing
        # from cache if the database goes away before it served its first call.
        if rank > 0:
            self.cache.get()
        return 0

    # ---------------------------------------------------------------- routes

    def ksr_request_route(self, msg) -> int:
        try:
            return self._request()
        except Exception:
            return self._internal_error("request route")

    def ksr_pre_routing(self, msg, evname: str = "") -> int:
        """Every message first (kamailio.cfg kemi.pre_routing_callback): the edge's checks.
        A message they stop is dropped here (after a reply where one is due)."""
        try:
            self.guard.mark_stream()
            if pv("$mt") == "2":      # a reply
                stop = self.guard.reply_dropped()
            else:
                stop = not self.guard.admit(self._is_trunk)
        except Exception:
            if pv("$mt") == "1":
                self._internal_error("edge")       # a request: 500, counted
            else:
                log_error("edge (reply): " + traceback.format_exc())
            stop = True
        if stop:
            KSR.set_drop()
            return EXIT
        return 1

    def ksr_failure_hunt(self, msg) -> int:
        try:
            result = ring.on_failure(self.settings.hunt_on_decline)
            return self._overflow(result) if isinstance(result, str) else result
        except Exception:
            return self._internal_error("hunt failure route", stateful=True)

    def ksr_queue_dispatch(self, msg, evname: str = "") -> int:
        """rtimer, every 100 ms: offer waiting callers to free agents, time out the rest."""
        try:
            directory = self.cache.get()
            if directory is not None and directory.queues:
                long_calls.refresh(self.cache)   # phones: per-queue 182 intervals
                self.dispatcher.run(directory, self.settings.domain)
        except Exception:
            log_error("queue dispatcher: " + traceback.format_exc())
            instrument.handler_error("queue dispatch", replied=False)
        return 1

    def ksr_tcp_guard(self, msg, evname: str = "") -> int:
        """rtimer, every second: the TCP guard (kemi/guard.py)."""
        try:
            self.guard.tcp_sweep()
        except Exception:
            log_error("tcp guard: " + traceback.format_exc())
            instrument.handler_error("tcp guard", replied=False)
        return 1

    def ksr_queue_offer(self, msg) -> int:
        try:
            return queueing.offer(self.cache.get(), self.settings.domain)
        except Exception:
            return self._internal_error("queue offer", stateful=True)

    def ksr_queue_timeout(self, msg) -> int:
        try:
            result = queueing.on_timeout(self.cache.get())
            return self._overflow(result) if isinstance(result, str) else result
        except Exception:
            return self._internal_error("queue timeout", stateful=True)

    def ksr_queue_progress(self, msg) -> int:   # phones: 182 again for a waiting caller
        try:
            return long_calls.on_progress(queueing.requeue)
        except Exception:
            return self._internal_error("queue progress", stateful=True)

    def ksr_failure_queue(self, msg) -> int:
        try:
            agent_keys.on_offer_failed(self.cache)   # phones: auto-pause after unanswered offers
            return queueing.on_failure()
        except Exception:
            return self._internal_error("queue failure route", stateful=True)

    # media: the media service's branch failed (down, refused), and calls nobody answered
    def ksr_failure_media(self, msg) -> int:
        try:
            return voicemail_route.on_failure()
        except Exception:
            return self._internal_error("media failure route", stateful=True)

    def ksr_failure_queue_hold(self, msg) -> int:   # media: a queue caller's music on hold ended
        try:
            result = queueing.on_hold_failure(self.cache.get(), self.settings.domain)
            return self._overflow(result) if isinstance(result, str) else result
        except Exception:
            return self._internal_error("queue hold failure route", stateful=True)

    def ksr_branch_queue_hold(self, msg) -> int:
        try:
            return queueing.on_hold_branch()
        except Exception:
            log_error("queue hold branch route: " + traceback.format_exc())
            instrument.handler_error("queue hold branch route", replied=False)
            return 1

    def _voicemail_unanswered(self, event: str, fresh: bool) -> int | None:
        return voicemail_route.divert(self.vm_rules, self.settings.media_sip, pv("$avp(vm_box)"), event, fresh)
    # media: end

    def ksr_failure_conference(self, msg) -> int:   # conference rooms: the room's node failed
        try:
            return conference_route.on_failure()
        except Exception:
            return self._internal_error("conference failure route", stateful=True)

    def ksr_failure_trunk(self, msg) -> int:
        try:
            result = outbound.on_failure()
            return self._overflow(result) if isinstance(result, str) else result
        except Exception:
            return self._internal_error("trunk failure route", stateful=True)

    # flows: the media service's answer, and the flow helper's HTTP answer (or its timeout)
    def ksr_failure_flow_media(self, msg) -> int:
        try:
            return self.flows.on_media_failure(self, self.cache.get())
        except Exception:
            return self._internal_error("flow media failure route", stateful=True)

    def ksr_branch_flow_media(self, msg) -> int:
        try:
            return self.flows.on_media_branch()
        except Exception:
            log_error("flow media branch route: " + traceback.format_exc())
            instrument.handler_error("flow media branch route", replied=False)
            return 1

    def ksr_flow_http_resume(self, msg) -> int:
        try:
            return self.flows.on_http_resume(self, self.cache.get())
        except Exception:
            return self._internal_error("flow HTTP resume", stateful=True)

    def ksr_branch_trunk(self, msg) -> int:
        try:
            return outbound.on_branch(self.settings.domain)
        except Exception:
            log_error("trunk branch route: " + traceback.format_exc())
            instrument.handler_error("trunk branch route", replied=False)
            return 1

    def ksr_reply_media(self, msg) -> int:
        """Every reply of every branch: SDP answers go through rtpengine, and a busy device
        marks a hunt busy (the failure route only sees the step's best reply, which may
        be another device's 408)."""
        try:
            nat.media_reply(nat.on_reply())   # phones: NAT alias + late offer / UPDATE answers
            if pv("$rm") == "INVITE":
                pickup.on_reply(int(pv("$rs") or 0))   # phones: the early dialog a pickup replaces
            status = int(pv("$rs") or 0)
            instrument.on_reply()
            if status in hunt.BUSY_CODES:
                KSR.pv.seti("$avp(hunt_busy)", 1)
            elif 200 <= status < 300 and pv("$avp(call_from)") is not None and not pv("$avp(answered)"):
                self._answered(ring.member_of_reply() if pv("$avp(branch_members)") else None)
        except Exception:
            log_error("reply route: " + traceback.format_exc())
            instrument.handler_error("reply route", replied=False)
        return 1

    @staticmethod
    def _answered(member: str | None) -> None:
        """The first 2xx of a new call: the member who took it is busy for queues until the
        dialog ends, and both ends can be listened in on."""
        KSR.pv.seti("$avp(answered)", 1)   # once per call, not per 2xx retransmission
        member = member or supervise_route.answered_agent()   # whisper and barge: a bridged leg
        call_id = pv("$ci")
        if member:
            journal.leg_ended(call_id, member, "answered", 200)
            journal.answered(call_id, member)
        if pv("$avp(queue)"):
            agent_keys.on_offer_answered(member)   # phones: resets the unanswered offers
            queueing.on_answer(member)
        elif member:
            queueing.mark_busy(member)
            if (pv("$avp(hunt_steps)") or "").startswith("*:"):   # a ring-all step
                for other in ring.ringing_members():
                    if other != member:     # tm cancels them: Reason "Call completed elsewhere"
                        journal.leg_ended(call_id, other, "answered_elsewhere", 487)
        listen.track_answered([pv("$avp(call_from)") or "", member or ""])
        flow_engine.on_answered(member)  # flows: routing by call history

    def _internal_error(self, where: str, stateful: bool = False) -> int:
        """The catch-all: it cannot fail itself (pv and the log are safe for any bytes)."""
        try:
            log_error(f"{where} failed on {pv('$rm')} {pv('$ru')} call-id {pv('$ci')}: {traceback.format_exc()}")
            instrument.handler_error(where)
        except Exception:
            pass
        try:
            if pv("$rm") != "ACK":
                if stateful:
                    KSR.tm.t_reply(500, "Server Internal Error - routing failed")
                else:
                    KSR.sl.send_reply(500, "Server Internal Error - routing failed")
        except Exception:
            pass
        return EXIT

    # ---------------------------------------------------------------- request

    def _is_trunk(self, ip: str, port: int) -> bool:
        directory = self.cache.snapshot
        return directory is not None and trunks.trunk_for_source(directory, ip, port) is not None

    def _request(self) -> int:
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return EXIT
        if KSR.sanity.sanity_check(17895, 7) < 0:
            log_info(f"malformed {pv('$rm')} from {pv('$si')}:{pv('$sp')} dropped by sanity check")
            return EXIT

        method = pv("$rm")
        nat.on_request(method)   # phones: force_rport, NAT detection, Contact alias
        if method == "PUBLISH" or (method == "SUBSCRIBE" and not voicemail_route.is_mwi()):   # phones: BLF
            return self._presence(method)
        if KSR.siputils.has_totag() > 0:
            return self._in_dialog(method)
        if method == "CANCEL":
            if KSR.tm.t_check_trans() > 0:
                KSR.rtpengine.rtpengine_delete0()
                KSR.tm.t_relay()
                queueing.cancel_waiting(pv("$ci"))
            return EXIT
        if method == "ACK":
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            return EXIT
        # A retransmission of a request in progress: tm resends the last reply. In KEMI a
        # 0 ("stop") from these functions does not end the route by itself: return here, or
        # the retransmission would be authenticated and routed again (and answered 500).
        if KSR.tmx.t_precheck_trans() > 0:
            KSR.tm.t_check_trans()
            return EXIT
        if KSR.tm.t_check_trans() == 0:
            return EXIT

        if method == "OPTIONS" and not pv("$rU"):
            # Keepalives also keep this worker's snapshot fresh while no calls come in.
            self.cache.get()
            KSR.sl.sl_send_reply(200, "OK")
            return EXIT
        if method == "MESSAGE" and self.flows.is_helper_message():  # flows:
            return self.flows.helper_message()
        if method == "REGISTER":
            return self._register()
        if method == "INVITE":
            return self._invite()
        if method == "SUBSCRIBE" and voicemail_route.is_mwi():   # media: message waiting (RFC 3842)
            directory = self._directory()
            number = self._authenticate(directory, "$fU") if directory is not None else None
            return EXIT if number is None else voicemail_route.subscribe(self.settings, number)
        KSR.hdr.append_to_reply("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, SUBSCRIBE\r\n")
        KSR.sl.sl_send_reply(405, "Method Not Allowed")
        return EXIT

    def _presence(self, method: str) -> int:   # phones: BLF keys (kemi/presence.py)
        if method == "PUBLISH":
            return presence.publish(self.settings.sip_address, self.settings.sip_port)
        directory = self._directory()
        return EXIT if directory is None else presence.subscribe(directory, self._authenticate)

    def _in_dialog(self, method: str) -> int:
        handled = listen.in_dialog(method, self.ng)
        if handled is not None:
            return handled
        if KSR.rr.loose_route() > 0:
            nat.on_loose_route()   # phones: in-dialog requests reach a NATed phone
            if method == "BYE":
                agent_keys.on_call_end()   # agents: talk time, free for queues again
                listen.forget_call()
                journal.call_ended(pv("$ci"), 200, "hung up")
                KSR.rtpengine.rtpengine_delete0()
                instrument.call_quality()
            else:   # phones: SDP in INVITE, ACK, PRACK and UPDATE (late offer) via rtpengine
                nat.media_request(method)
            if method != "ACK":
                KSR.tm.t_on_reply("ksr_reply_media")
            KSR.tm.t_relay()
            return EXIT
        if method == "ACK":
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            return EXIT
        KSR.sl.sl_send_reply(404, "Not Here")
        return EXIT

    # ---------------------------------------------------------------- auth

    def _directory(self):
        directory = self.cache.get()
        if directory is None:
            KSR.hdr.append_to_reply("Retry-After: 5\r\n")
            KSR.sl.sl_send_reply(503, "Service Unavailable - routing data not loaded")
        return directory

    def _authenticate(self, directory, identity_pv: str) -> str | None:
        """Digest-authenticate the request against the cached HA1. Returns the
        authenticated number, or None after replying (challenge, 403)."""
        realm = self.settings.realm
        user = pv("$au")
        if user and self.guard.locked_out(user):
            # Locked out after too many failures: challenged like a wrong password, so the
            # lock-out itself tells a guesser nothing.
            log_info(f"auth: {user!r} is locked out ({pv('$rm')} from {pv('$si')})")
            instrument.auth_failure("locked_out")
            KSR.auth.auth_challenge(realm, 1)
            return None
        sub = directory.active_subscriber(user) if user else None
        if sub is None:
            # No or unknown credentials: challenge (again). Unknown users are not told apart
            # from wrong passwords, so numbers cannot be probed.
            if user:
                log_info(f"auth: unknown or disabled user {user!r} from {pv('$si')}")
                instrument.auth_failure("unknown_user")
                self.guard.auth_failed(user)
            KSR.auth.auth_challenge(realm, 1)
            return None
        # The nonce is bound to the challenged request's R-URI, Call-ID, From tag and source
        # address and good for one use (kamailio.cfg, auth module): a captured header fails
        # here with another R-URI, a new Call-ID or a second use.
        rc = KSR.auth.pv_auth_check(realm, sub.ha1, 1, 0)
        if rc < 0:
            log_info(f"auth: {pv('$rm')} from {user} at {pv('$si')} failed ({rc})")
            if rc == AUTH_INVALID_PASSWORD:
                instrument.auth_failure("wrong_password")
                self.guard.auth_failed(user)
            else:   # a stale, reused or misbound nonce: a replay or a late retransmission
                instrument.auth_failure("replay")
            KSR.auth.auth_challenge(realm, 1)
            return None
        # ... and the credentials' uri= must name the R-URI itself (kemi/edge.py), so a header
        # cannot be moved to another destination even if the nonce's binding changes.
        moved = self.guard.digest_uri_mismatch()
        if moved is not None:
            log_info(f"auth: {pv('$rm')} from {user} at {pv('$si')}: digest uri {moved!r} "
                     f"is not the R-URI {pv('$ou')!r}")
            instrument.auth_failure("uri_mismatch")
            KSR.auth.auth_challenge(realm, 1)
            return None
        claimed = pv(identity_pv)
        if claimed != user:
            log_info(f"auth: {user} tried to act as {claimed!r} ({pv('$rm')})")
            instrument.auth_failure("identity_mismatch")
            KSR.sl.sl_send_reply(403, f"Forbidden - authenticated as {user}, not {claimed}")
            return None
        return user

    # ---------------------------------------------------------------- register

    def _register(self) -> int:
        directory = self._directory()
        if directory is None:
            return EXIT
        if self._authenticate(directory, "$tU") is None:
            return EXIT
        if self.guard.self_contact():
            return EXIT
        if pv("$pr") != "udp" or nat.nated():
            # Keep the connection / NAT binding the phone registered from (phones: and ping it).
            nat.on_register()
        saved = KSR.registrar.save(ring.LOCATION, 0) >= 0
        instrument.registration(saved)
        if not saved:
            KSR.sl.sl_reply_error()
        return EXIT

    # ---------------------------------------------------------------- invite

    def _invite(self) -> int:
        instrument.invite_received()
        voicemail_route.strip_app_header()   # media
        directory = self._directory()
        if directory is None:
            return EXIT
        bridged_leg = supervise_route.trusted_leg(self, directory, self.settings.media_sip)   # whisper and barge
        if bridged_leg is not None:
            return bridged_leg
        origin = callback_route.trusted_origin(self.settings.media_sip)   # callback: removed unless from the media service
        if isinstance(origin, launch_route.LaunchOrigin):   # launcher: the media service's launch call
            return launch_route.route_out(self, directory, origin)
        if origin is not None:   # callback: the media service's outgoing leg, out through the trunks
            return callback_route.route_out(self, directory, origin)
        trunk = trunks.trunk_for_source(directory, pv("$si"), int(pv("$sp") or 0))
        if trunk is not None:
            return self._from_trunk(directory, trunk)
        # Not a trunk: digest authentication, with the same challenge whether the From
        # number exists or not (numbers cannot be probed); never an open relay.
        number = self._authenticate(directory, "$fU")
        if number is None:
            return EXIT
        KSR.auth.consume_credentials()
        strip_identity_headers()
        display = from_display()
        handled = self.features.handle(directory, number, self.cache)   # phones: pickup, agent keys
        if handled is not None:
            return handled
        if (pv("$rU") or "") == self.settings.voicemail_number:   # media: voicemail access number
            own = number if number in self.vm_rules.get() else None
            return voicemail_route.relay(self.settings.media_sip, voicemail_route.app_header("vmaccess", box=own), True)
        conference = conference_route.route(directory, pv("$rU") or "", self.settings.media_sip)
        if conference is not None:   # conference rooms: a room's dial-in number
            return conference
        if self.flows.has_flow(directory, pv("$rU") or ""):  # flows: the number runs a flow
            KSR.pv.sets("$avp(call_from)", number)
            return self.flows.start(self, directory, pv("$rU") or "", number, display)
        plan = routing.plan_call(pv("$rU") or "", directory, self.settings.ring_timeout,
                                 caller=directory.subscribers[number], caller_display=display)
        plan = voicemail_route.ring_timeout_for(plan, self.vm_rules.get())   # media
        if isinstance(plan, routing.SpyPlan):   # whisper and barge: by the agent's call
            return supervise_route.start(plan, self.ng, self.settings.media_sip)
        KSR.pv.sets("$avp(call_from)", number)      # the subscriber end of this call
        if not isinstance(plan, routing.Reject):
            presence.publish_call(plan, number, self.settings.sip_address, self.settings.sip_port)  # phones: BLF
            pickup.remember(plan, number)   # phones: what a pickup needs while it rings
            KSR.dialog.dlg_manage()
            long_calls.keepalive_dialog()   # phones: in-dialog OPTIONS end dead dialogs
            queueing.mark_busy(number)     # an agent who is calling is not offered queue calls
        if isinstance(plan, routing.RingPlan) and plan.display_format:
            self._present(plan, number, display, number, display)
        if isinstance(plan, routing.RingPlan) and plan.kind == "direct":   # media: voicemail rules
            KSR.pv.sets("$avp(vm_box)", plan.dialled)
            diverted = voicemail_route.divert(self.vm_rules, self.settings.media_sip, plan.dialled, "call", True)
            if diverted is not None:
                return diverted
        return self._start(plan, number)

    def _from_trunk(self, directory, trunk) -> int:
        """Trunks are recognised by address, not digest; they may only reach their DIDs."""
        called = pv("$rU") or ""
        did = directory.dids.get(called)
        if did is None or did.trunk_id != trunk.id:
            log_info(f"trunk {trunk.name}: no DID {called!r} on this trunk")
            KSR.sl.sl_send_reply(404, "Not Found - no such number on this trunk")
            return EXIT
        strip_identity_headers()   # toward phones no identity assertion is passed on
        sent_display = from_display()
        number, display = trunks.inbound_caller(did, pv("$fU") or "", sent_display)
        if did.target in directory.callbacks:   # callback: rings, released unanswered, called back
            return callback_route.relay_inbound(self.settings, did.target, number, pv("$fU") or "")
        if self.flows.has_flow(directory, called):  # flows: the DID runs a flow
            KSR.pv.sets("$avp(call_from)", "")
            return self.flows.start(self, directory, called, number, display)
        plan = routing.plan_call(did.target, directory, self.settings.ring_timeout)
        KSR.pv.sets("$avp(call_from)", "")           # no subscriber on the calling end
        if not isinstance(plan, routing.Reject):
            presence.publish_call(plan, None, self.settings.sip_address, self.settings.sip_port)  # phones: BLF
            KSR.dialog.dlg_manage()
            long_calls.keepalive_dialog()   # phones
            self._present(plan, pv("$fU") or "", sent_display, number, display)
        return self._start(plan, number)

    @staticmethod
    def _present(plan, sent_number: str, sent_display: str | None, number: str, display: str | None) -> None:
        """One From rewrite for what members see: DID prefix/suffix and tag, and a ring-all
        group's display format ("Sales: Alice") with a Diversion naming the group number."""
        if isinstance(plan, routing.RingPlan) and plan.display_format:
            display = plan.display_format.format(group=plan.group, caller=display or number)
            KSR.diversion.add_diversion("unconditional")   # R-URI is still the group number
        if number != sent_number or display != sent_display:
            replace_from(display, f"sip:{number}@{pv('$fd')}")

    def _start(self, plan, caller: str, fresh: bool = True) -> int:
        if isinstance(plan, routing.Reject):
            log_info(f"call {caller} -> {pv('$rU')}: {plan.status} {plan.reason}")
            ring.reply(plan.status, plan.reason, fresh)
            return EXIT
        if fresh and media.refuse_malformed_sdp():   # faults: its own 488, rtpengine stays on
            return EXIT
        if fresh:
            nat.on_new_call()   # phones: ;nat=yes on the Record-Route
            KSR.rr.record_route()
        directory = self.cache.snapshot   # polled already for this message (_directory/_overflow)
        instrument.call_started(plan, directory, fresh)
        if fresh:
            journal.call_started(pv("$ci"), caller, plan.dialled, *self._journal_label(plan, directory))
        if isinstance(plan, routing.TrunkPlan):
            return outbound.start(plan, caller)
        if isinstance(plan, routing.QueuePlan):
            return queueing.enqueue(directory.queues[plan.queue], caller, fresh,
                                    hold=directory.queue_hold.get(plan.queue))   # media: music on hold
        if plan.identity is not None:
            apply_identity(plan.identity, self.settings.domain)
        result = ring.start(plan, self.settings.domain, caller, fresh)
        return self._overflow(plan.fallback, fresh) if result is None else result

    @staticmethod
    def _journal_label(plan, directory) -> tuple[str, str | None]:
        """(kind, group/queue/trunk name) of a call, as the journal shows it."""
        if isinstance(plan, routing.QueuePlan):
            return "queue", directory.queues[plan.queue].name
        if isinstance(plan, routing.TrunkPlan):
            return "trunk", directory.trunks[plan.steps[0].trunk_id].name
        return plan.kind, plan.group

    def _overflow(self, target: str, fresh: bool = False) -> int:
        """Nobody answered (or could): route the call on to the group's or queue's timeout
        destination, within the same transaction."""
        directory = self.cache.get()
        if names.is_flow_target(target):  # flows: a node gave up, the flow goes on
            return self.flows.resume(self, directory, target, fresh)
        caller = pv("$avp(queue_caller)") or pv("$fU") or ""
        plan = routing.plan_call(target, directory, self.settings.ring_timeout,
                                 exclude=pv("$avp(call_from)") or None)   # phones: not the caller's phone
        if isinstance(plan, routing.TrunkPlan):
            plan = routing.Reject(500, "Server Internal Error - a timeout destination must be local")
        return self._start(plan, caller, fresh)
