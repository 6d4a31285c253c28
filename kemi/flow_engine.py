"""Runs call flows in the proxy: the adapter between Kamailio and kemi.core.machine.

It reads facts, loads the call's flow state from AVPs (kemi.names), calls the pure machine
and applies its actions with today's adapters: kemi.ring (SIP numbers, hunt and ring-all
groups), kemi.queueing (queues), kemi.outbound (trunks). When one of them gives up (hunt
exhausted, queue timeout, every trunk failed) it returns the fallback "flow:<outcome>",
which the handler hands back here to continue the flow in the same transaction.

HTTP never runs in a SIP worker: for a lookup or HTTP routing the transaction is suspended
(t_suspend, no worker held) with tm's timer set to the node's timeout, and the flow helper
(tools/flow_helper.py, a process of its own) does the request and hands the answer back as
a SIP MESSAGE from its own port with its token; the worker that receives it resumes the call
(t_continue). If no answer comes in time, tm's timer runs the failure route: the outcome is
`error` (a lookup: the call goes on unchanged). Notifications and email are one UDP datagram
to the helper (fire-and-forget; the helper retries email).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import time
from dataclasses import replace
from pathlib import Path

import KSR  # provided by app_python3

from kemi import instrument, journal, names, queueing, ring, routing
from kemi import agent_keys  # agents: state in shared memory (issue 11)
from kemi.core import flow as flowmod
from kemi.core import machine, media
from kemi.core.machine import Email, HttpGet, HttpRoute, Media, Notify, Outcome, Reply, Ring, SetCaller
from kemi.identity import Identity
from kemi.ksr import EXIT, log_error, log_info, new_transaction, pv

NAME_TABLE = "flowname"
MEDIA_RING_MS = 120000          # a menu may take a while; the media service ends it itself
MEDIA_NO_RESPONSE_MS = 4000


class FlowEngine:
    def __init__(self, settings):
        self.settings = settings
        self._parsed: dict[str, flowmod.Flow] = {}     # canonical JSON -> parsed flow (per worker)
        self._sock: socket.socket | None = None
        self._helper: tuple[int, str] | None = None    # (port, token)
        self._helper_stamp = 0
        self._refused = 0                               # forged helper answers (this worker)
        self._refused_logged = 0.0

    # ------------------------------------------------------------ entry points

    def has_flow(self, directory, number: str) -> bool:
        return number in getattr(directory, "flows", {})

    def start(self, handler, directory, number: str, caller: str, display: str | None) -> int:
        """A new INVITE to a number with a flow (request route, no transaction yet)."""
        version, text = directory.flows[number]
        flow = self._flow(text)
        KSR.pv.sets(names.FLOW, names.encode_flow_ref(number, version))
        KSR.pv.sets(names.FLOW_DOC, text)
        KSR.pv.sets(names.FLOW_CALLER, caller)
        result = machine.start(flow, caller, display, self.now())
        if not (result.actions and isinstance(result.actions[-1], Reply)):
            KSR.dialog.dlg_manage()        # the call goes somewhere: track it (busy agents, BYE)
            if pv("$avp(call_from)"):      # an agent who is calling is not offered queue calls
                queueing.mark_busy(pv("$avp(call_from)") or "")
        return self._apply(handler, directory, flow, result, fresh=True)

    def resume(self, handler, directory, target: str, fresh: bool = False) -> int:
        """A ring node gave up (the fallback "flow:<outcome>"): continue the flow."""
        outcome = target[len(names.FLOW_TARGET):]
        code, reason = self._last_reply(outcome)
        if outcome == "no_answer" and self._waiting_type() == "sip":
            outcome = sip_outcome(pv(names.HUNT_BUSY) == "1", code)
        return self.continue_with(handler, directory, outcome, code=code, reason=reason, fresh=fresh)

    def continue_with(self, handler, directory, outcome: str, value: str = "", code: int = 0,
                      reason: str = "", fresh: bool = False) -> int:
        flow = self._flow(pv(names.FLOW_DOC) or "")
        state = names.decode_state(pv(names.FLOW_STATE))
        result = machine.step(flow, state, Outcome(outcome, self.now(), value=value, code=code, reason=reason))
        return self._apply(handler, directory, flow, result, fresh)

    def _waiting_type(self) -> str:
        try:
            flow = self._flow(pv(names.FLOW_DOC) or "")
            return flow.nodes[names.decode_state(pv(names.FLOW_STATE)).node].type
        except (ValueError, KeyError):
            return ""

    # ------------------------------------------------------------ media failure route

    def on_media_failure(self, handler, directory) -> int:
        if KSR.tm.t_is_canceled() > 0:
            return self._cancelled()
        status = int(pv("$T_reply_code") or 0)
        got = media.result(status, pv("$T_rpl($hdr(X-Kemi-Outcome))"), pv("$T_rpl($hdr(X-Kemi-Digits))"))
        log_info(f"flow {pv('$ci')}: media service answered {status}: outcome {got.outcome}")
        KSR.pv.sets(names.FLOW_WAIT, "")
        return self.continue_with(handler, directory, got.outcome, value=got.digits)

    # ------------------------------------------------------------ HTTP through the helper

    def is_helper_message(self) -> bool:
        return pv("$rm") == "MESSAGE" and pv("$rU") == "kemi-flow-helper"

    def helper_message(self) -> int:
        """The helper's answer for a suspended call: check it, store it, resume the call."""
        helper = self._helper_address(reload=True)
        token = pv("$hdr(X-Kemi-Token)") or ""
        if helper is None or int(pv("$sp") or 0) != helper[0] or not _same(token, helper[1]) \
                or pv("$si") not in ("127.0.0.1", self.settings.sip_address):
            self._refused += 1
            if time.monotonic() >= self._refused_logged + 1.0:    # a flood cannot flood the log
                log_info(f"flow helper: refused MESSAGE from {pv('$si')}:{pv('$sp')} "
                         f"({self._refused} refused by this worker so far)")
                self._refused_logged = time.monotonic()
            instrument.auth_failure("flow_helper")
            KSR.sl.sl_send_reply(403, "Forbidden - not the flow helper")
            return EXIT
        body = pv("$rb") or ""
        txn, _, answer = body.partition("\n")
        tindex, _, tlabel = txn.partition(":")
        if not (tindex.isdigit() and tlabel.isdigit()):
            KSR.sl.sl_send_reply(400, "Bad Request - no transaction")
            return EXIT
        KSR.htable.sht_sets(names.HTTP_TABLE, names.txn_key(tindex, tlabel), answer)
        KSR.sl.sl_send_reply(200, "OK")
        if KSR.tmx.t_continue(int(tindex), int(tlabel), names.HTTP_RESUME_ROUTE) < 0:
            KSR.htable.sht_rm(names.HTTP_TABLE, names.txn_key(tindex, tlabel))   # timed out already
        return EXIT

    def on_http_resume(self, handler, directory) -> int:
        """t_continue'd with the helper's answer (or the failure route after the timeout)."""
        key = names.txn_key(pv("$T(id_index)"), pv("$T(id_label)"))
        raw = KSR.htable.sht_get(names.HTTP_TABLE, key)
        KSR.htable.sht_rm(names.HTTP_TABLE, key)
        answer = names.decode_answer(None if raw is None else str(raw))
        if KSR.tm.t_is_canceled() > 0:
            return self._cancelled()
        return self._http_outcome(handler, directory, answer)

    def _http_outcome(self, handler, directory, answer: names.HttpAnswer, fresh: bool = False) -> int:
        wait = pv(names.FLOW_WAIT) or ""
        if wait.startswith("lookup:"):
            name = _clean_name(answer.body) if answer.ok else ""
            if answer.ok:
                ttl = int(wait.split(":", 2)[1] or 0)
                if ttl > 0:
                    KSR.htable.sht_sets(NAME_TABLE, wait.split(":", 2)[2], f"{time.time() + ttl:.0f}|{name}")
            return self.continue_with(handler, directory, "next", value=name, fresh=fresh,
                                      reason="" if answer.ok else "lookup failed or timed out: caller unchanged")
        body = answer.body.strip()
        outcome = body if answer.ok and body in ("1", "2", "3", "4", "5") else "error"
        return self.continue_with(handler, directory, outcome, fresh=fresh,
                                  reason=f"HTTP answer {body[:20]!r}" if answer.ok else "HTTP failed or timed out")

    # ------------------------------------------------------------ applying actions

    def _apply(self, handler, directory, flow: flowmod.Flow, result: machine.Result, fresh: bool) -> int:
        KSR.pv.sets(names.FLOW_STATE, names.encode_state(result.state))
        for line in result.trail:
            log_info(f"flow {pv(names.FLOW)} {pv('$ci')}: {line.node} ({line.type})"
                     + (f" -> {line.outcome}" if line.outcome else "") + f": {line.why}")
        for action in result.actions:
            if isinstance(action, (Notify, Email)):
                self._fire(action, flow, result.state)
            elif isinstance(action, SetCaller):
                pass     # applied once, when the call first rings (uac rewrites From once)
        last = result.actions[-1] if result.actions else None
        if isinstance(last, Reply):
            log_info(f"flow {pv('$ci')}: reply {last.code} {last.reason}")
            ring.reply(last.code, last.reason, fresh)
            journal.call_ended(pv("$ci"), last.code, last.reason)
            return EXIT
        if isinstance(last, Ring):
            return self._ring(handler, directory, last, result.state, fresh)
        if isinstance(last, (HttpGet, HttpRoute)):
            return self._http(handler, directory, last, result.state, fresh)
        if isinstance(last, Media):
            return self._media(last, result.state, fresh)
        log_error(f"flow {pv('$ci')}: the flow stopped without an action")
        ring.reply(500, "Server Internal Error - flow stopped", fresh)
        return EXIT

    def _ring(self, handler, directory, action: Ring, state: machine.State, fresh: bool) -> int:
        KSR.pv.sets(names.FLOW_WAIT, "ring")
        failure = names.flow_target(_RING_OUTCOME[action.kind])
        plan = self._plan(directory, action, state)
        if isinstance(plan, str):           # nothing to ring: the outcome comes at once
            return self.continue_with(handler, directory, plan, fresh=fresh, reason="nothing to ring")
        if isinstance(plan, routing.Reject):
            return self.continue_with(handler, directory, _RING_OUTCOME[action.kind], code=plan.status,
                                      reason=plan.reason, fresh=fresh)
        if isinstance(plan, routing.RingPlan):
            plan = replace(plan, fallback=failure)
        self._present(handler, plan, state, fresh)
        if not fresh and pv(names.FLOW_JOURNAL) != "1":   # first ring after HTTP or media
            kind, target = handler._journal_label(plan, directory)
            journal.call_started(pv("$ci"), pv(names.FLOW_CALLER) or state.caller, plan.dialled, kind, target)
        KSR.pv.seti(names.FLOW_JOURNAL, 1)
        if isinstance(plan, routing.QueuePlan):
            KSR.pv.sets(names.QUEUE_OVERFLOW, failure)
        elif isinstance(plan, routing.TrunkPlan):
            KSR.pv.sets(names.TRUNK_OVERFLOW, failure)
        return handler._start(plan, state.caller, fresh)

    def _plan(self, directory, action: Ring, state: machine.State):
        timeout = self.settings.ring_timeout
        if action.kind == "history":
            last = names.decode_history(_sht(names.HISTORY_TABLE, names.history_key(pv(names.FLOW_CALLER) or "")))
            if last is None or time.time() - last[1] > (action.window or 0) \
                    or directory.active_subscriber(last[0]) is None:
                return "not_found"
            log_info(f"flow {pv('$ci')}: {pv(names.FLOW_CALLER)} last talked with {last[0]}")
            action = Ring("sip", last[0], action.ring_timeout)
        if action.kind == "sip":
            plan = routing.plan_call(action.number + "T", directory, action.ring_timeout or timeout)
            if isinstance(plan, routing.RingPlan) and action.ring_timeout:
                plan = replace(plan, steps=tuple(replace(s, ring_timeout=action.ring_timeout) for s in plan.steps))
            return plan
        if action.kind == "external":
            return self._external(directory, action.number, state)
        if action.kind == "queue":
            q = directory.queues.get(action.number)
            if q is not None and not any(agent_keys.logged_in("q", q.number, a.number, a.logged_in)   # agents
                                         for a in q.agents):
                return "no_agents"
        return routing.plan_call(action.number, directory, timeout)

    @staticmethod
    def _external(directory, number: str, state: machine.State):
        from kemi import trunks
        caller = directory.active_subscriber(pv("$avp(call_from)") or "")
        if caller is not None:
            plan = routing.plan_call(number, directory, 0, caller=caller)
            return plan
        steps = trunks.outbound_steps(directory, number.lstrip("+"))
        if not steps:
            return routing.Reject(404, f"Not Found - no route for {number}")
        who = Identity(state.caller, state.display)     # a forwarded call shows the original caller
        return routing.TrunkPlan(number, tuple(steps), {s.trunk_id: who for s in steps})

    def _present(self, handler, plan, state: machine.State, fresh: bool) -> None:
        """Rewrite From once per call with what the flow made of the caller (caller nodes,
        lookups), together with a ring-all group's display format (handler._present)."""
        if pv(names.FLOW_FROM) == "1" or isinstance(plan, routing.TrunkPlan):
            return
        sent_number, sent_display = pv("$fU") or "", _from_display()
        if state.caller == sent_number and state.display == sent_display and not (
                isinstance(plan, routing.RingPlan) and plan.display_format):
            return
        try:
            handler._present(plan, sent_number, sent_display, state.caller, state.display)
            KSR.pv.seti(names.FLOW_FROM, 1)
        except Exception as err:   # never lose the call over a display change
            log_error(f"flow {pv('$ci')}: could not rewrite From: {err}")

    def _http(self, handler, directory, action, state: machine.State, fresh: bool) -> int:
        if isinstance(action, HttpGet):
            key = _cache_key(action.url, state.caller)
            cached = _sht(NAME_TABLE, key)
            if cached:
                expires, _, name = cached.partition("|")
                if expires.isdigit() and float(expires) > time.time():
                    KSR.pv.sets(names.FLOW_WAIT, f"lookup:0:{key}")
                    return self.continue_with(handler, directory, "next", value=name, fresh=fresh, reason="cached")
            KSR.pv.sets(names.FLOW_WAIT, f"lookup:{action.ttl}:{key}")
        else:
            KSR.pv.sets(names.FLOW_WAIT, "route")
        if fresh:
            if not new_transaction():
                return EXIT
            KSR.rr.record_route()
            if KSR.sdpops.sdp_content() > 0:
                KSR.rtpengine.rtpengine_manage0()
        timeout_ms = max(100, int(action.timeout * 1000))
        KSR.tm.t_set_fr(timeout_ms, timeout_ms)
        KSR.tm.t_on_failure(names.HTTP_RESUME_ROUTE)
        if KSR.tmx.t_suspend() < 0:
            return self._http_outcome(handler, directory, names.HttpAnswer(False))
        request = {"kind": "get" if isinstance(action, HttpGet) else "route", "url": _expand(action.url, state),
                   "header": action.header, "token": action.token, "timeout": action.timeout,
                   "txn": names.txn_key(pv("$T(id_index)"), pv("$T(id_label)"))}
        if not self._send(request):
            log_error(f"flow {pv('$ci')}: flow helper unreachable; waiting for the timeout")
        return EXIT

    def _media(self, action: Media, state: machine.State, fresh: bool) -> int:
        req = media.request(action.app, action.params, self.settings.media_sip)
        KSR.pv.sets(names.FLOW_WAIT, "media")
        if fresh:
            if not new_transaction():
                return EXIT
            KSR.rr.record_route()
            if KSR.sdpops.sdp_content() > 0:
                KSR.rtpengine.rtpengine_manage0()
        # The header goes on this branch only (branch route): a header added in the request
        # route would stay on every later branch of the transaction.
        KSR.pv.sets(names.FLOW_MEDIA, req.header)
        KSR.pv.sets("$ru", req.ruri)
        KSR.resetdsturi()
        log_info(f"flow {pv('$ci')}: to the media service: {req.header}")
        return ring.relay(MEDIA_RING_MS, MEDIA_NO_RESPONSE_MS, names.MEDIA_FAILURE_ROUTE, names.MEDIA_BRANCH_ROUTE)

    @staticmethod
    def on_media_branch() -> int:
        """Branch route of a media branch: add its X-Kemi-App header (once, this branch only)."""
        header = pv(names.FLOW_MEDIA)
        if header and pv(names.FLOW_WAIT) == "media":
            KSR.hdr.append(header + "\r\n")
        return 1

    # ------------------------------------------------------------ helpers

    def _fire(self, action, flow: flowmod.Flow, state: machine.State) -> None:
        facts = {"caller": pv(names.FLOW_CALLER) or state.caller, "caller_shown": state.caller,
                 "display": state.display, "dialled": pv(names.FLOW).split("|")[0] if pv(names.FLOW) else "",
                 "flow": flow.name, "node": state.node, "time": self.now().isoformat(timespec="seconds"),
                 "call_id": pv("$ci")}
        if isinstance(action, Notify):
            request = {"kind": "notify", "url": _expand(action.url, state), "header": action.header,
                       "token": action.token, "facts": facts}
        else:
            request = {"kind": "email", "to": list(action.to), "subject": action.subject, "facts": facts}
        if not self._send(request):
            log_error(f"flow {pv('$ci')}: flow helper unreachable, {request['kind']} dropped")

    def _send(self, request: dict) -> bool:
        helper = self._helper_address()
        if helper is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            request["auth"] = helper[1]
            self._sock.sendto(json.dumps(request).encode()[:60000], ("127.0.0.1", helper[0]))
            return True
        except OSError:
            self._helper = None
            return False

    def _helper_address(self, reload: bool = False) -> tuple[int, str] | None:
        """(port, token) from the file the helper publishes; read again when it changed
        (a restarted helper has a new port and token)."""
        path = Path(self.settings.var_dir) / "run" / "flow_helper.json"
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            self._helper = None
            return None
        if self._helper is None or reload or stamp != self._helper_stamp:
            try:
                info = json.loads(path.read_text())
                self._helper = (int(info["port"]), str(info["token"]))
                self._helper_stamp = stamp
            except (OSError, ValueError, KeyError):
                self._helper = None
        return self._helper

    def _flow(self, text: str) -> flowmod.Flow:
        flow = self._parsed.get(text)
        if flow is None:
            if len(self._parsed) > 256:
                self._parsed.clear()
            flow = self._parsed[text] = flowmod.from_json(text)
        return flow

    def now(self) -> dt.datetime:
        """The clock; tests point KEMI_FLOW_CLOCK_FILE at a file holding an ISO time."""
        if self.settings.flow_clock_file:
            try:
                text = Path(self.settings.flow_clock_file).read_text().strip()
                if text:
                    when = dt.datetime.fromisoformat(text)
                    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
            except (OSError, ValueError):
                pass
        return dt.datetime.now(dt.timezone.utc)

    @staticmethod
    def _last_reply(outcome: str) -> tuple[int, str]:
        from kemi import hunt
        if outcome == "exhausted":
            return hunt.exhausted_reply(pv(names.HUNT_BUSY) == "1")
        code = int(pv("$T_reply_code") or 0)
        return code, ""

    @staticmethod
    def _cancelled() -> int:
        KSR.rtpengine.rtpengine_delete0()
        KSR.tm.t_reply(487, "Request Terminated")
        instrument.call_ended(487)
        journal.call_ended(pv("$ci"), 487, "caller hung up")
        return EXIT


def on_answered(member: str | None) -> None:
    """Reply route, first 2xx of a flow call: remember who talked with this caller."""
    caller = pv(names.FLOW_CALLER)
    if caller and member:
        KSR.htable.sht_sets(names.HISTORY_TABLE, names.history_key(caller), names.encode_history(member, time.time()))


_RING_OUTCOME = {"sip": "no_answer", "external": "failed", "hunt": "exhausted", "ringall": "exhausted",
                 "queue": "timeout", "history": "no_answer"}


def sip_outcome(busy: bool, code: int) -> str:
    """What a failed ring of a SIP number means for the flow."""
    if busy or code in (486, 600):
        return "busy"
    if code >= 500:
        return "failed"
    return "no_answer"


def _sht(table: str, key: str) -> str | None:
    value = KSR.htable.sht_get(table, key)
    return None if value is None else str(value)


def _same(a: str, b: str) -> bool:
    import hmac
    return hmac.compare_digest(a.encode(), b.encode())


def _cache_key(url: str, caller: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()[:12] + ":" + caller


def _expand(url: str, state: machine.State) -> str:
    from urllib.parse import quote
    return url.replace("{caller}", quote(state.caller, safe="+")).replace("{dialled}", quote(
        (pv(names.FLOW) or "").split("|")[0], safe=""))


def _clean_name(body: str) -> str:
    """A display name from an HTTP body: first line, printable, no quotes, at most 64."""
    line = body.strip().splitlines()[0] if body.strip() else ""
    return "".join(c for c in line if c.isprintable() and c not in '"\\<>')[:64].strip()


def _from_display() -> str | None:
    from kemi.ksr import from_display
    return from_display()
