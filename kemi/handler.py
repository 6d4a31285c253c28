"""The KSR adapter: the only module that talks to Kamailio.

It reads facts from the message, asks the pure core (kemi.routing, kemi.hunt) what to do and
applies the answer with tm/sl/registrar/auth/rtpengine. Every route catches every exception
at the boundary: the caller gets a 500 and the log gets the traceback, never a hung
transaction (app_python3 itself would only log and return -1).

A hunt keeps its state in transaction AVPs, because the failure route may run in another
worker process than the one that started the call:
  $avp(hunt_steps)  "number:seconds,number:seconds" of the registered members, in order
  $avp(hunt_i)      index of the step ringing now
  $avp(hunt_busy)   1 once any device answered busy (486/600)
"""
from __future__ import annotations

import traceback

import KSR  # provided by app_python3

from kemi import hunt, routing
from kemi.config import Settings
from kemi.store import DirectoryCache

EXIT = -255
LOCATION = "location"


def log_info(msg: str) -> None:
    KSR.info(f"kemi: {msg}\n")


def log_error(msg: str) -> None:
    KSR.err(f"kemi: {msg}\n")


def pv(name: str) -> str | None:
    value = KSR.pv.get(name)
    return None if value is None else str(value)


class Handler:
    def __init__(self):
        self.settings = Settings.from_env()
        self.cache = DirectoryCache(self.settings.database_url, log=log_error)

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

    def ksr_failure_hunt(self, msg) -> int:
        try:
            return self._hunt_failure()
        except Exception:
            return self._internal_error("failure route", stateful=True)

    def ksr_reply_media(self, msg) -> int:
        """Every reply of every branch: SDP answers go through rtpengine, and a busy device
        marks the hunt busy (the failure route only sees the step's best reply, which may
        be another device's 408)."""
        try:
            if KSR.sdpops.sdp_content() > 0:
                KSR.rtpengine.rtpengine_manage0()
            if int(pv("$rs") or 0) in hunt.BUSY_CODES:
                KSR.pv.seti("$avp(hunt_busy)", 1)
        except Exception:
            log_error("reply route: " + traceback.format_exc())
        return 1

    def _internal_error(self, where: str, stateful: bool = False) -> int:
        log_error(f"{where} failed on {pv('$rm')} {pv('$ru')} call-id {pv('$ci')}: {traceback.format_exc()}")
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

    def _request(self) -> int:
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return EXIT
        if KSR.sanity.sanity_check(17895, 7) < 0:
            log_info(f"malformed {pv('$rm')} from {pv('$si')}:{pv('$sp')} dropped by sanity check")
            return EXIT

        method = pv("$rm")
        if KSR.siputils.has_totag() > 0:
            return self._in_dialog(method)
        if method == "CANCEL":
            if KSR.tm.t_check_trans() > 0:
                KSR.rtpengine.rtpengine_delete0()
                KSR.tm.t_relay()
            return EXIT
        if method == "ACK":
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            return EXIT
        KSR.tm.t_check_trans()  # absorbs retransmissions of requests in progress

        if method == "OPTIONS" and not pv("$rU"):
            KSR.sl.sl_send_reply(200, "OK")
            return EXIT
        if method == "REGISTER":
            return self._register()
        if method == "INVITE":
            return self._invite()
        KSR.hdr.append_to_reply("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER\r\n")
        KSR.sl.sl_send_reply(405, "Method Not Allowed")
        return EXIT

    def _in_dialog(self, method: str) -> int:
        if KSR.rr.loose_route() > 0:
            if method == "BYE":
                KSR.rtpengine.rtpengine_delete0()
            elif method == "INVITE":
                if KSR.sdpops.sdp_content() > 0:
                    KSR.rtpengine.rtpengine_manage0()
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
        sub = directory.active_subscriber(user) if user else None
        if sub is None:
            # No or unknown credentials: challenge (again). Unknown users are not told apart
            # from wrong passwords, so numbers cannot be probed.
            if user:
                log_info(f"auth: unknown or disabled user {user!r} from {pv('$si')}")
            KSR.auth.auth_challenge(realm, 1)
            return None
        rc = KSR.auth.pv_auth_check(realm, sub.ha1, 1, 0)
        if rc < 0:
            log_info(f"auth: {pv('$rm')} from {user} at {pv('$si')} failed ({rc})")
            KSR.auth.auth_challenge(realm, 1)
            return None
        claimed = pv(identity_pv)
        if claimed != user:
            log_info(f"auth: {user} tried to act as {claimed!r} ({pv('$rm')})")
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
        if pv("$pr") != "udp" or KSR.nathelper.nat_uac_test(19) > 0:
            # Keep the connection / NAT binding the phone registered from.
            KSR.nathelper.fix_nated_register()
        if KSR.registrar.save(LOCATION, 0) < 0:
            KSR.sl.sl_reply_error()
        return EXIT

    # ---------------------------------------------------------------- invite

    def _invite(self) -> int:
        directory = self._directory()
        if directory is None:
            return EXIT
        if self._authenticate(directory, "$fU") is None:
            return EXIT
        KSR.auth.consume_credentials()

        plan = routing.plan_call(pv("$rU") or "", directory, self.settings.ring_timeout)
        if isinstance(plan, routing.Reject):
            log_info(f"call {pv('$fU')} -> {pv('$rU')}: {plan.status} {plan.reason}")
            KSR.sl.sl_send_reply(plan.status, plan.reason)
            return EXIT

        steps = self._load_branches(plan.steps)
        if not steps:
            log_info(f"call {pv('$fU')} -> {plan.dialled}: no member registered")
            KSR.sl.sl_send_reply(480, "Temporarily Unavailable - not registered")
            return EXIT
        log_info(f"call {pv('$fU')} -> {plan.dialled} ({plan.kind}): "
                 + " > ".join(f"{s.number}/{s.ring_timeout}s" for s in steps))

        if KSR.tm.t_newtran() < 0:
            KSR.sl.sl_reply_error()
            return EXIT
        KSR.rr.record_route()
        KSR.pv.sets("$avp(hunt_steps)", ",".join(f"{s.number}:{s.ring_timeout}" for s in steps))
        KSR.pv.seti("$avp(hunt_i)", 0)
        KSR.pv.seti("$avp(hunt_busy)", 0)
        # t_next_contacts() returns -2 when there was only one device (nothing loaded).
        if KSR.tm.t_load_contacts() < 0 or KSR.tm.t_next_contacts() == -1:
            KSR.tm.t_reply(500, "Server Internal Error - cannot load contacts")
            return EXIT
        if KSR.sdpops.sdp_content() > 0:
            KSR.rtpengine.rtpengine_manage0()
        return self._relay_step(steps[0].ring_timeout)

    def _load_branches(self, steps) -> list[hunt.Step]:
        """Put every registered device of every step into the destination set, with
        q-values that fall step by step, so t_load_contacts() orders them for serial
        forking and a member's devices (same q) ring together.

        t_load_contacts() always ranks the Request-URI's own q (unset) below every set
        value, so the last step's devices get no q either and the R-URI becomes one of
        them. Returns the steps that have at least one device."""
        registered = []
        for step in steps:
            contacts = self._contacts(step.number)
            if contacts:
                registered.append((step, contacts))
        for index, (_step, contacts) in enumerate(registered):
            last_step = index == len(registered) - 1
            q = "" if last_step else f"{1.0 - index / 100:.2f}"
            for position, contact in enumerate(contacts):
                self._set_target(*contact)
                if last_step and position == len(contacts) - 1:
                    break  # stays in the R-URI
                KSR.corex.append_branch_uri_q("", q)
        return [step for step, _contacts in registered]

    def _contacts(self, number: str) -> list[tuple[str, str, str]]:
        """(uri, received, socket) of each registered device of a number."""
        if KSR.registrar.reg_fetch_contacts(LOCATION, f"sip:{number}@{self.settings.domain}", "hc") < 0:
            return []
        try:
            count = int(pv("$ulc(hc=>count)") or 0)
            return [(pv(f"$(ulc(hc=>addr)[{i}])"), pv(f"$(ulc(hc=>received)[{i}])") or "",
                     pv(f"$(ulc(hc=>socket)[{i}])") or "") for i in range(count)]
        finally:
            KSR.registrar.reg_free_contacts("hc")

    @staticmethod
    def _set_target(uri: str, received: str, sock: str) -> None:
        KSR.pv.sets("$ru", uri)
        if received:
            KSR.pv.sets("$du", received)
        else:
            KSR.resetdsturi()
        if sock:
            KSR.pv.sets("$fs", sock)

    def _relay_step(self, ring_timeout: int) -> int:
        ring_ms = ring_timeout * 1000
        # fr: no provisional reply at all (dead phone) ends the step early.
        KSR.tm.t_set_fr(ring_ms, min(ring_ms, 4000))
        KSR.tm.t_on_failure("ksr_failure_hunt")
        KSR.tm.t_on_reply("ksr_reply_media")
        if KSR.tm.t_relay() < 0:
            KSR.tm.t_reply(500, "Server Internal Error - could not forward")
        return EXIT

    # ---------------------------------------------------------------- failure

    def _hunt_failure(self) -> int:
        if KSR.tm.t_is_canceled() > 0:
            KSR.rtpengine.rtpengine_delete0()
            return EXIT
        code = int(pv("$T_reply_code") or 0)
        steps = [s.split(":") for s in (pv("$avp(hunt_steps)") or "").split(",") if s]
        index = int(pv("$avp(hunt_i)") or 0)
        current = steps[index][0] if index < len(steps) else "?"

        if not hunt.hunt_on_after(code, self.settings.hunt_on_decline):
            log_info(f"hunt {pv('$ci')}: {current} answered {code}, hunt ends")
            KSR.rtpengine.rtpengine_delete0()
            return EXIT

        if index + 1 < len(steps) and KSR.tm.t_next_contacts() > 0:
            log_info(f"hunt {pv('$ci')}: {current} answered {code}, next {steps[index + 1][0]}")
            KSR.pv.seti("$avp(hunt_i)", index + 1)
            return self._relay_step(int(steps[index + 1][1]))

        status, reason = hunt.exhausted_reply(pv("$avp(hunt_busy)") == "1")
        log_info(f"hunt {pv('$ci')}: {current} answered {code}, chain exhausted: {status}")
        KSR.rtpengine.rtpengine_delete0()
        KSR.tm.t_reply(status, reason)
        return EXIT
