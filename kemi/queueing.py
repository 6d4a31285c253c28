"""Applies a QueuePlan: the caller waits, suspended, until an agent is free. KSR adapter code;
which agent is decided by kemi.queue.

A waiting call holds no worker: its transaction is suspended (t_suspend) after a
`182 Queued`, and the dispatcher, a Kamailio timer process (rtimer, every 100 ms), resumes
it with t_continue when an agent is free or the maximum wait has passed. Everything shared
lives in Kamailio shared memory, so every worker and the dispatcher see one state:

  htable qwait   "<queue>:tail" arrival counter; "<queue>:<seq>" one waiting caller,
                 "state|tindex|tlabel|arrived|caller" with state W (waiting) or O (offered):
                 the entry state machine is kemi/core/queue_entry.py, its encoding kemi/names.py
  htable qtxn    "<tindex>:<tlabel>" -> "<queue>:<seq>"; "cid:<call-id>" -> "<tindex>:<tlabel>";
                 "offer:<tindex>:<tlabel>" -> agents being offered the call
  htable qstat   "ans:<queue>:<agent>" calls answered; "last:<queue>:<caller>" ->
                 "agent|time" (routing by call history); "rr:<queue>" last agent offered
  dialog profile "busy" (value: agent number): the calls each agent is on, ringing or
                 talking, counted across all processes and cleaned when the dialog ends.
Waiting callers keep their arrival sequence number when an offer fails, so order is kept.

media: a queue with hold music (kemictl queue hold) does not suspend its waiting callers but
relays each to the media service's `hold` app (music and announcements on early media, the
call is not answered). The dispatcher ends that branch with an INFO (Content-Type
application/x-kemi-hold, body `end`; tm retransmits it) when an agent is free or the
maximum wait passed; the branch's 302 runs `ksr_failure_queue_hold`, which rings the agents
(or times the caller out) in the same transaction. An unanswered offer relays a new hold
branch. Position/expected-wait updates are INFOs from the dispatcher's 1 s report tick.
If the media service fails, the caller waits on suspended, in silence (log line, metric).
  htable qtxn  "hcid:<tindex>:<tlabel>" -> the caller's Call-ID (the INFO's Call-ID);
               "end:<tindex>:<tlabel>" -> offer | timeout (why the hold branch was ended);
               "pos:<tindex>:<tlabel>" -> the last position INFO body sent
  htable qstat "ewait:<queue>" average wait of answered callers (expected wait, seconds)
"""
from __future__ import annotations

import time

import KSR  # provided by app_python3

from kemi import hunt, instrument, journal, long_calls, metrics, names, nat, ring
from kemi import agent_keys  # agents: state in shared memory (issue 11)
from kemi.core import queue_entry as qe
from kemi import queue_strategy as strategy
from kemi.hunt import Step
from kemi.ksr import EXIT, log_error, log_info, new_transaction, pv

OFFER_ROUTE = qe.OFFER_ROUTE
TIMEOUT_ROUTE = qe.TIMEOUT_ROUTE
FAILURE_ROUTE = "ksr_failure_queue"
HOLD_FAILURE_ROUTE = "ksr_failure_queue_hold"   # media
HOLD_BRANCH_ROUTE = "ksr_branch_queue_hold"     # media
HOLD_HEADER = "$avp(queue_hold)"                # media: the X-Kemi-App header of the hold branch
HOLD_NO_RESPONSE_MS = 800                       # media: no reply from the media service: it is down
HOLD_CONTENT_TYPE = "application/x-kemi-hold"
MEDIA_SIP = ""                                  # media: set by the handler (Settings.media_sip)
BUSY = "busy"
TICK = 0.1              # seconds between dispatcher runs (kamailio.cfg rtimer "queues")
REPORT_INTERVAL = 1.0   # seconds between queue-length and agent-state metric updates
SUSPEND_MARGIN = 30     # seconds tm keeps a waiting call beyond the queue's maximum wait


# ------------------------------------------------------------------ shared state helpers

def _get(table: str, key: str) -> str | None:
    value = KSR.htable.sht_get(table, key)
    return None if value is None else str(value)


def incr(table: str, key: str) -> int:
    """Atomic counter in shared memory; sht_inc does not create a missing item."""
    value = KSR.htable.sht_inc(table, key)
    if value != -255:
        return value
    KSR.htable.sht_lock(table, key)
    try:
        if _get(table, key) is None:
            KSR.htable.sht_seti(table, key, 1)
            return 1
        return KSR.htable.sht_inc(table, key)
    finally:
        KSR.htable.sht_unlock(table, key)


# media, dispatcher process only: agents offered to a caller on hold, until the hold branch's
# failure route marked them busy (it runs a moment after the dispatcher's INFO)
_PENDING: dict[str, float] = {}
PENDING_SECONDS = 3.0


def agent_calls(agent: str) -> int:
    KSR.dialog.get_profile_size(BUSY, agent, "$var(busy)")
    pending = 1 if _PENDING.get(agent, 0.0) > time.time() else 0   # media
    return int(pv("$var(busy)") or 0) + pending


def mark_busy(agent: str) -> None:
    KSR.dialog.set_dlg_profile(BUSY, agent)


def unmark_busy(agent: str) -> None:
    KSR.dialog.unset_dlg_profile(BUSY, agent)


def registered(agent: str, domain: str) -> bool:
    return KSR.registrar.registered_uri(ring.LOCATION, f"sip:{agent}@{domain}") > 0


# ------------------------------------------------------------------ entering the queue

def enqueue(queue, caller: str, fresh: bool, hold=None) -> int:
    """Put the caller in line: 182 Queued, suspend (or, with `hold`, a branch to the media
    service's music on hold), leave an entry for the dispatcher."""
    if fresh and not new_transaction():
        return EXIT
    if fresh and KSR.sdpops.sdp_content() > 0:
        nat.media_request("INVITE")   # phones: SIP-source-address for NATed callers
    KSR.tm.t_reply(182, "Queued")
    seq = incr("qwait", f"{queue.number}:tail")
    KSR.pv.seti("$avp(queue_max_wait)", queue.max_wait)
    if hold is not None and MEDIA_SIP and KSR.sdpops.sdp_content() > 0:   # media: music on hold
        return _enqueue_on_hold(queue, caller, seq, hold)
    if not _suspend(queue.max_wait):
        KSR.tm.t_reply(500, "Server Internal Error - cannot queue the call")
        instrument.call_ended(500)
        return EXIT
    tindex, tlabel = pv("$T(id_index)"), pv("$T(id_label)")
    KSR.pv.sets("$avp(queue)", queue.number)
    KSR.pv.sets("$avp(queue_name)", queue.name)
    KSR.pv.sets("$avp(queue_caller)", caller)
    KSR.htable.sht_sets("qtxn", f"{tindex}:{tlabel}", f"{queue.number}:{seq}")
    KSR.htable.sht_sets("qtxn", f"cid:{pv('$ci')}", f"{tindex}:{tlabel}")
    KSR.htable.sht_sets("qwait", f"{queue.number}:{seq}",
                        names.encode_entry(qe.arrive(int(tindex), int(tlabel), time.time(), caller)))
    long_calls.on_queued(tindex, tlabel)   # phones: 182 repeated while waiting
    journal.queued(pv("$ci"), queue.name)
    log_info(f"queue {queue.name}: {caller} waits as #{seq} ({pv('$ci')})")
    return EXIT


def _enqueue_on_hold(queue, caller: str, seq: int, hold) -> int:
    """media: the caller waits with a branch to the media service's hold app."""
    tindex, tlabel = pv("$T(id_index)"), pv("$T(id_label)")
    KSR.pv.sets("$avp(queue)", queue.number)
    KSR.pv.sets("$avp(queue_name)", queue.name)
    KSR.pv.sets("$avp(queue_caller)", caller)
    interval = hold.interval if hold.position or hold.wait else 0
    KSR.pv.sets(HOLD_HEADER, f"X-Kemi-App: hold;music={hold.music};interval={interval};"
                             f"max={queue.max_wait + 2 * SUSPEND_MARGIN}")
    KSR.htable.sht_sets("qtxn", f"{tindex}:{tlabel}", f"{queue.number}:{seq}")
    KSR.htable.sht_sets("qtxn", f"cid:{pv('$ci')}", f"{tindex}:{tlabel}")
    KSR.htable.sht_sets("qtxn", f"hcid:{tindex}:{tlabel}", pv("$ci") or "")
    KSR.htable.sht_sets("qwait", f"{queue.number}:{seq}",
                        names.encode_entry(qe.arrive(int(tindex), int(tlabel), time.time(), caller, hold=True)))
    journal.queued(pv("$ci"), queue.name)
    log_info(f"queue {queue.name}: {caller} waits as #{seq} with music {hold.music} ({pv('$ci')})")
    if not _relay_hold(queue.max_wait):
        return _hold_failed(f"{queue.number}:{seq}", "relay failed")
    return EXIT


def _relay_hold(max_wait: int) -> bool:
    """media: a branch to the hold app, for up to the maximum wait (plus margin)."""
    limit_ms = (max_wait + SUSPEND_MARGIN) * 1000
    KSR.pv.sets("$ru", f"sip:hold@{MEDIA_SIP}")
    KSR.resetdsturi()
    KSR.tm.t_set_max_lifetime(limit_ms + SUSPEND_MARGIN * 1000, 0)
    KSR.tm.t_set_fr(limit_ms, HOLD_NO_RESPONSE_MS)
    KSR.tm.t_on_branch(HOLD_BRANCH_ROUTE)
    KSR.tm.t_on_failure(HOLD_FAILURE_ROUTE)
    KSR.tm.t_on_reply(ring.REPLY_ROUTE)
    return KSR.tm.t_relay() > 0


def on_hold_branch() -> int:
    """media: branch route of the hold branch: its X-Kemi-App header (this branch only)."""
    header = pv(HOLD_HEADER)
    if header and pv("$rU") == "hold":   # never on an agent's branch
        KSR.hdr.append(header + "\r\n")
    return 1


def on_hold_failure(directory, domain: str) -> int | str:
    """media: the hold branch ended. Ended by the dispatcher: ring the agents (offer) or the
    timeout destination; the caller hung up: leave; anything else (the media service is
    down or refused): wait on in silence."""
    txn = f"{pv('$T(id_index)')}:{pv('$T(id_label)')}"
    outcome = _get("qtxn", f"end:{txn}")
    KSR.htable.sht_rm("qtxn", f"end:{txn}")
    if KSR.tm.t_is_canceled() > 0:
        leave(_entry_key(), "abandoned")
        KSR.rtpengine.rtpengine_delete0()
        instrument.call_ended(487)
        journal.call_ended(pv("$ci"), 487, "caller hung up while waiting")
        return EXIT
    if outcome == "offer":
        return offer(directory, domain)
    if outcome == "timeout":
        return on_timeout(directory)
    entry_key = _entry_key()
    if entry_key is None:
        KSR.tm.t_reply(500, "Server Internal Error - lost the queue position")
        instrument.call_ended(500)
        return EXIT
    return _hold_failed(entry_key, f"media service answered {pv('$T_reply_code')}")


def _hold_failed(entry_key: str, why: str) -> int:
    """media: no music; the caller waits on suspended (silence), still in line."""
    log_error(f"queue {pv('$avp(queue_name)')}: music on hold for {pv('$ci')} failed ({why}); waits in silence")
    metrics.queue_hold_failed(pv("$avp(queue_name)") or "")
    entry = _get("qwait", entry_key)
    if entry is None or not _suspend(int(pv("$avp(queue_max_wait)") or 0)):
        KSR.tm.t_reply(500, "Server Internal Error - cannot queue the call")
        instrument.call_ended(500)
        return EXIT
    waiter = names.decode_entry(entry)
    KSR.htable.sht_sets("qwait", entry_key, names.encode_entry(qe.QueueEntry(
        qe.WAITING, waiter.tindex, waiter.tlabel, waiter.arrived, waiter.caller)))
    long_calls.on_queued(pv("$T(id_index)"), pv("$T(id_label)"))   # phones: 182 repeated while waiting
    return EXIT


def _hold_info(txn: str, body: str) -> bool:
    """media: an INFO to the caller's hold leg (dispatcher); tm retransmits it until answered."""
    call_id = _get("qtxn", f"hcid:{txn}")
    if not call_id or not MEDIA_SIP:
        return False
    headers = (f"From: <sip:queue@{MEDIA_SIP}>;tag=q{txn.replace(':', 'x')}\r\n"
               f"To: <sip:hold@{MEDIA_SIP}>\r\nCall-ID: {call_id}\r\n"
               f"Content-Type: {HOLD_CONTENT_TYPE}\r\n")
    return KSR.tm.t_uac_send("INFO", f"sip:hold@{MEDIA_SIP}", "", "", headers, body) > 0


def announce(q, head: int, tail: int, hold) -> None:
    """media, dispatcher report tick: each caller on hold learns its position (and the
    expected wait) when it changed."""
    position = 0
    expected = int(float(_get("qstat", f"ewait:{q.number}") or 0)) if hold.wait else 0
    for seq in range(head, tail + 1):
        entry = _get("qwait", f"{q.number}:{seq}")
        if entry is None:
            continue
        waiter = names.decode_entry(entry)
        if not waiter.waiting:
            continue
        position += 1
        if not waiter.hold:
            continue
        body = f"position={position if hold.position else 0};wait={expected}"
        txn = f"{waiter.tindex}:{waiter.tlabel}"
        if _get("qtxn", f"pos:{txn}") != body and _hold_info(txn, body):
            KSR.htable.sht_sets("qtxn", f"pos:{txn}", body)


def _suspend(max_wait: int) -> bool:
    """Suspend for up to the queue's maximum wait. tm's own timers would otherwise answer a
    waiting caller 408 (fr_timer, 4 s) or end the INVITE (max_inv_lifetime, 180 s) long
    before the dispatcher times the caller out; the margin lets the dispatcher go first."""
    limit_ms = (max_wait + SUSPEND_MARGIN) * 1000
    KSR.tm.t_set_fr(limit_ms, limit_ms)
    KSR.tm.t_set_max_lifetime(limit_ms + SUSPEND_MARGIN * 1000, 0)
    return KSR.tmx.t_suspend() > 0


def _entry_key() -> str | None:
    return _get("qtxn", f"{pv('$T(id_index)')}:{pv('$T(id_label)')}")


def leave(entry_key: str | None, outcome: str) -> None:
    """The call left the queue: answered, timeout or abandoned (the caller hung up)."""
    entry = _get("qwait", entry_key) if entry_key else None
    if entry is not None:
        arrived = names.decode_entry(entry).arrived
        metrics.observe_queue_wait(pv("$avp(queue_name)") or "", max(0.0, time.time() - arrived), outcome)
        if outcome == "answered":   # media: the expected wait announced to callers on hold
            _average_wait(pv("$avp(queue)") or "", max(0.0, time.time() - arrived))
    if entry_key:
        KSR.htable.sht_rm("qwait", entry_key)
    for key in ("hcid", "end", "pos"):   # media
        KSR.htable.sht_rm("qtxn", f"{key}:{pv('$T(id_index)')}:{pv('$T(id_label)')}")
    KSR.htable.sht_rm("qtxn", f"{pv('$T(id_index)')}:{pv('$T(id_label)')}")
    KSR.htable.sht_rm("qtxn", f"cid:{pv('$ci')}")
    long_calls.forget(pv("$T(id_index)"), pv("$T(id_label)"))   # phones


def _average_wait(queue: str, seconds: float) -> None:
    """media: moving average (1/5 weight) of the wait of answered callers."""
    old = float(_get("qstat", f"ewait:{queue}") or 0)
    KSR.htable.sht_sets("qstat", f"ewait:{queue}", f"{seconds if old == 0 else 0.8 * old + 0.2 * seconds:.1f}")


# ------------------------------------------------------------------ the dispatcher

def _last_agent(queue: str, caller: str) -> tuple[str, float] | None:
    last = _get("qstat", f"last:{queue}:{caller}")
    if not last:
        return None
    agent, _, when = last.partition("|")
    return agent, float(when)


class Dispatcher:
    """Runs in the rtimer process; the only place that decides offers, so two waiting calls
    are never offered the same free agent. Its own memory keeps what only it needs.

    A tick costs O(waiting callers + free agents) (issue 11): the queues' agents are indexed
    once per directory snapshot; each queue's free agents (logged in, below its calls per
    agent) are kept as a set and changed only for agents named in htable `agentev` (a state
    change, an offer that ended, a call's BYE) or re-read because they were busy; each
    registration is read at most once per tick, and only for free agents of queues with
    callers waiting. A picked agent's calls are read again before the offer, so a direct
    call that made it busy is never missed."""

    RECHECK = 5.0      # seconds an agent named in agentev is re-read each tick until free
    SWEEP = 10.0       # seconds over which every busy agent is re-read (calls that ended unseen)

    def __init__(self):
        self.heads: dict[str, int] = {}          # lowest sequence number still in line
        self.idle_since: dict[str, float] = {}
        self.next_report = 0.0
        self.sweep_list: list[str] = []                   # busy agents still to re-read
        self.snapshot = None                              # the directory indexed (kept: ids are reused)
        self.index: dict[str, strategy.QueueIndex] = {}   # queue -> positions and tiers
        self.queues_of: dict[str, tuple] = {}             # agent -> its queues
        self.logged: dict[str, set[str]] = {}             # queue -> agents logged in now
        self.free: dict[str, set[str]] = {}               # queue -> logged in, below max calls
        self.calls: dict[str, int] = {}                   # agent -> calls, as last read
        self.recheck: dict[str, float] = {}               # agent -> re-read each tick until
        self.reads = 0                                    # shared-memory/registrar reads (bench)

    # ---------------------------------------------------------------- the agents' state

    def _index(self, directory) -> None:
        """Once per snapshot: who is in which queue, and everyone's state read once."""
        self.snapshot = directory
        self.index = {q.number: strategy.QueueIndex.of(q) for q in directory.queues.values()}
        queues_of: dict[str, list] = {}
        for q in directory.queues.values():
            for a in q.agents:
                queues_of.setdefault(a.number, []).append((q, a.logged_in))
        self.queues_of = {agent: tuple(qs) for agent, qs in queues_of.items()}
        self.logged = {q.number: set() for q in directory.queues.values()}
        self.free = {q.number: set() for q in directory.queues.values()}
        self.calls = {}
        self.recheck = {}
        self.sweep_list = []
        for agent in self.queues_of:
            self._refresh(agent, time.time(), window=0.0)

    def _refresh(self, agent: str, now: float, window: float = RECHECK) -> None:
        """Read one agent's state and calls again; update the free sets of its queues."""
        queues = self.queues_of.get(agent)
        if queues is None:
            return
        calls = agent_calls(agent)
        self.reads += 1
        if calls == 0 and self.calls.get(agent, 0) > 0:
            self.idle_since[agent] = now
        self.calls[agent] = calls
        for q, default_in in queues:
            self.reads += 1
            if agent_keys.logged_in("q", q.number, agent, default_in):
                self.logged[q.number].add(agent)
            else:
                self.logged[q.number].discard(agent)
            self._place(q, agent)
        if calls > 0:
            self.recheck.setdefault(agent, now + window)
        else:
            self.recheck.pop(agent, None)

    def _place(self, q, agent: str) -> None:
        if agent in self.logged[q.number] and self.calls.get(agent, 0) < q.max_calls:
            self.free[q.number].add(agent)
        else:
            self.free[q.number].discard(agent)

    def _set_calls(self, agent: str, calls: int) -> None:
        self.calls[agent] = calls
        for q, _default in self.queues_of.get(agent, ()):
            self._place(q, agent)

    def _changes(self, now: float) -> None:
        """Agents named in htable agentev since the last tick, then the busy ones due."""
        named: set[str] = set()
        keys = []
        if KSR.htable.sht_iterator_start("agentev", agent_keys.EVENTS) > 0:
            try:
                while KSR.htable.sht_iterator_next("agentev") > 0:
                    keys.append(pv("$shtitkey(agentev)"))
                    named.add(pv("$shtitval(agentev)") or "")
            finally:
                KSR.htable.sht_iterator_end("agentev")
        for key in keys:
            if key:
                KSR.htable.sht_rm(agent_keys.EVENTS, key)
        named &= self.queues_of.keys()       # a BYE names both ends, agents or not
        for agent in named:
            self.recheck[agent] = now + self.RECHECK
            self._refresh(agent, now)
        for agent, until in list(self.recheck.items()):
            if until >= now and agent not in named:
                self._refresh(agent, now)
        # Busy agents past their window: a slice each tick, all of them every SWEEP seconds
        # (calls that ended without a BYE through the proxy, e.g. a dialog timeout).
        if not self.sweep_list:
            self.sweep_list = [a for a, until in self.recheck.items() if until < now]
        for _ in range(min(len(self.sweep_list), max(1, int(len(self.recheck) * TICK / self.SWEEP) + 1))):
            agent = self.sweep_list.pop()
            if agent in self.recheck and agent not in named:
                self._refresh(agent, now)

    # ---------------------------------------------------------------- the tick

    def run(self, directory, domain: str) -> None:
        now = time.time()
        if self.snapshot is not directory:
            self._index(directory)
        self._changes(now)
        report = now >= self.next_report
        if report:
            self.next_report = now + REPORT_INTERVAL
        reg: dict[str, bool] = {}

        def is_registered(agent: str) -> bool:
            if agent not in reg:
                self.reads += 1
                reg[agent] = registered(agent, domain)
            return reg[agent]

        for q in directory.queues.values():
            tail = int(_get("qwait", f"{q.number}:tail") or 0)
            head = self.heads.get(q.number, 1)
            if report:
                self._report(q, head, tail, is_registered)
                if q.number in directory.queue_hold:   # media: position INFOs to callers on hold
                    announce(q, head, tail, directory.queue_hold[q.number])
            if head > tail:
                continue
            ix = self.index[q.number]
            for seq in range(head, tail + 1):
                key = f"{q.number}:{seq}"
                entry = _get("qwait", key)
                if entry is None:
                    if seq == head:
                        head += 1          # finished calls at the front leave the line
                    continue
                waiter = names.decode_entry(entry)
                if not waiter.waiting:
                    continue
                if long_calls.progress_due_now(str(waiter.tindex), str(waiter.tlabel), q.number, now):  # phones
                    _resume(key, waiter, qe.Progress())   # 182 again, then back in line
                    continue
                if strategy.waited_too_long(q, waiter.arrived, now):
                    _resume(key, waiter, qe.TimeOut())
                    continue
                agents = self._pick(q, ix, waiter, now, is_registered)
                if not agents:
                    break                  # nobody free: everyone behind waits too (arrival order)
                for agent in agents:
                    self._set_calls(agent, self.calls.get(agent, 0) + 1)
                    self.recheck.setdefault(agent, now + self.RECHECK)
                KSR.htable.sht_sets("qstat", f"rr:{q.number}", agents[-1])
                KSR.htable.sht_sets("qtxn", f"offer:{waiter.tindex}:{waiter.tlabel}", ",".join(agents))
                _resume(key, waiter, qe.Offer())
            self.heads[q.number] = head

    def _pick(self, q, ix, waiter, now: float, is_registered) -> list[str]:
        """The strategy's choice among free, registered agents; each chosen agent's calls are
        read again (a direct call may have made it busy), and the choice made again if so."""
        sticky = strategy.sticky_agent(q, _last_agent(q.number, waiter.caller), now)
        while True:
            free = ix.in_order(a for a in self.free[q.number] if is_registered(a))
            if not free:
                return []
            states = {a: strategy.AgentState(self.calls.get(a, 0), self._answered(q, a), self.idle_since.get(a, 0.0))
                      for a in free}
            agents = strategy.choose(q, free, states, _get("qstat", f"rr:{q.number}"), sticky, index=ix)
            stale = False
            for agent in agents:
                calls = agent_calls(agent)
                self.reads += 1
                if calls != self.calls.get(agent, 0):
                    self._set_calls(agent, calls)
                    stale = True
            if not stale:
                return agents

    def _answered(self, q, agent: str) -> int:
        if q.strategy != "fewest_calls":
            return 0
        self.reads += 1
        return int(_get("qstat", f"ans:{q.number}:{agent}") or 0)

    def _report(self, q, head: int, tail: int, is_registered) -> None:
        """Queue length and agents by state, for the metrics (once a second)."""
        waiting = sum(1 for seq in range(head, tail + 1)
                      if (_get("qwait", f"{q.number}:{seq}") or "").lstrip("H").startswith(qe.WAITING + "|"))
        metrics.queue_waiting(q.name, waiting)
        logged = self.logged.get(q.number, set())
        counts = {"idle": 0, "busy": 0, "logged_out": len(q.agents) - len(logged), "unregistered": 0}
        for agent in logged:
            if not is_registered(agent):
                counts["unregistered"] += 1
            else:
                counts["busy" if self.calls.get(agent, 0) else "idle"] += 1
        for state, n in counts.items():
            metrics.set_agents(q.name, state, n)


# ------------------------------------------------------------------ resumed transactions

def offer(directory, domain: str) -> int:
    """t_continue'd by the dispatcher: ring the chosen agent(s)."""
    key = f"offer:{pv('$T(id_index)')}:{pv('$T(id_label)')}"
    agents = (_get("qtxn", key) or "").split(",")
    KSR.htable.sht_rm("qtxn", key)
    q = directory.queues.get(pv("$avp(queue)") or "")
    if KSR.tm.t_is_canceled() > 0 or q is None:
        leave(_entry_key(), "abandoned")
        KSR.tm.t_reply(487, "Request Terminated")
        instrument.call_ended(487)
        return EXIT
    if q.name in directory.supervised:   # whisper and barge: through the media service
        from kemi import supervise_route
        return supervise_route.offer(q, agents, domain, _media_sip())
    steps = ring.load_branches([Step(a, q.ring_timeout) for a in agents if a], domain, parallel=True)
    if not steps:
        return _requeue("offered agents are gone")
    for step in steps:
        mark_busy(step.number)
        journal.offered(pv("$ci"), step.number)
    KSR.pv.sets("$avp(queue_offer)", ",".join(s.number for s in steps))
    log_info(f"queue {q.name}: offering {pv('$ci')} to {', '.join(s.number for s in steps)}")
    if not ring.next_contacts(first=True):
        return EXIT
    return ring.relay_step(q.ring_timeout, FAILURE_ROUTE)


_MEDIA_SIP: list[str] = []


def _media_sip() -> str:   # whisper and barge: read once per process
    if not _MEDIA_SIP:
        from kemi.config import Settings
        _MEDIA_SIP.append(Settings.from_env().media_sip)
    return _MEDIA_SIP[0]


def on_failure() -> int:
    """The offered agents did not answer: back in line at the same place."""
    canceled = KSR.tm.t_is_canceled() > 0
    code = 487 if canceled else int(pv("$T_reply_code") or 0)
    for agent in (pv("$avp(queue_offer)") or "").split(","):
        if agent:
            unmark_busy(agent)
            journal.leg_ended(pv("$ci"), agent, hunt.leg_outcome(code), code)
    if canceled:
        leave(_entry_key(), "abandoned")
        KSR.rtpengine.rtpengine_delete0()
        instrument.call_ended(487)
        journal.call_ended(pv("$ci"), 487, "caller hung up")
        return EXIT
    return _requeue(f"no answer ({pv('$T_reply_code')})")


def requeue(why: str) -> int:   # phones: also after a repeated 182 (kemi/long_calls.py)
    return _requeue(why)


def _requeue(why: str) -> int:
    entry_key = _entry_key()
    entry = _get("qwait", entry_key) if entry_key else None
    if entry is not None and names.decode_entry(entry).hold and MEDIA_SIP:   # media: music again
        waiter, _ = qe.on_event(names.decode_entry(entry), qe.Requeue())
        KSR.htable.sht_sets("qwait", entry_key, names.encode_entry(waiter))
        KSR.htable.sht_rm("qtxn", f"pos:{pv('$T(id_index)')}:{pv('$T(id_label)')}")
        log_info(f"queue: {pv('$ci')} back in line (music) as #{entry_key.split(':')[-1]}: {why}")
        if _relay_hold(int(pv("$avp(queue_max_wait)") or 0)):
            return EXIT
        return _hold_failed(entry_key, "relay failed")
    if entry is None or not _suspend(int(pv("$avp(queue_max_wait)") or 0)):
        KSR.tm.t_reply(500, "Server Internal Error - lost the queue position")
        instrument.call_ended(500)
        return EXIT
    waiter, _ = qe.on_event(names.decode_entry(entry), qe.Requeue())
    KSR.htable.sht_sets("qwait", entry_key, names.encode_entry(waiter))
    log_info(f"queue: {pv('$ci')} back in line as #{entry_key.split(':')[-1]}: {why}")
    return EXIT


def on_answer(agent: str | None) -> None:
    """Reply route, 2xx of a queue call: the call leaves the line; remember who took it."""
    q = pv("$avp(queue)")
    if not q:
        return
    offered = [a for a in (pv("$avp(queue_offer)") or "").split(",") if a]
    for other in offered:
        if other != agent:
            unmark_busy(other)
            journal.leg_ended(pv("$ci"), other, "answered_elsewhere", 487)
    if agent:
        incr("qstat", f"ans:{q}:{agent}")
        KSR.htable.sht_sets("qstat", f"last:{q}:{pv('$avp(queue_caller)')}", f"{agent}|{time.time():.0f}")
    leave(_entry_key(), "answered")


def on_timeout(directory) -> str | int:
    """t_continue'd by the dispatcher after the maximum wait: the queue's timeout
    destination (returned as a dial string for the handler to route) or its final reply."""
    q = directory.queues.get(pv("$avp(queue)") or "")
    canceled = KSR.tm.t_is_canceled() > 0
    leave(_entry_key(), "abandoned" if canceled else "timeout")
    if canceled:
        KSR.tm.t_reply(487, "Request Terminated")
        instrument.call_ended(487)
        journal.call_ended(pv("$ci"), 487, "caller hung up while waiting")
        return EXIT
    target = pv(names.QUEUE_OVERFLOW) or (q.timeout_target if q is not None else None)  # flows: a flow's next node
    if q is not None and target:
        log_info(f"queue {q.name}: {pv('$ci')} waited {q.max_wait}s, to {target}")
        return target
    code = q.timeout_code if q else 480
    KSR.rtpengine.rtpengine_delete0()
    KSR.tm.t_reply(code, "Queue Timeout - no agent became free")
    instrument.call_ended(code)
    journal.call_ended(pv("$ci"), code, "queue timeout")
    return EXIT


def cancel_waiting(call_id: str) -> bool:
    """A CANCEL for a caller still waiting: resume it so it answers 487 at once."""
    txn = _get("qtxn", f"cid:{call_id}")
    if txn is None:
        return False
    entry_key = _get("qtxn", txn)
    entry = _get("qwait", entry_key) if entry_key else None
    if entry is None:
        return False
    return _resume(entry_key, names.decode_entry(entry), qe.Cancel())


def _resume(key: str, waiter: qe.QueueEntry, event: qe.QueueEvent) -> bool:
    """Apply the entry machine: store the new state, resume the suspended call if it says so."""
    waiter, action = qe.on_event(waiter, event)
    if action is None:
        return False
    KSR.htable.sht_sets("qwait", key, names.encode_entry(waiter))
    if isinstance(action, qe.EndHold):   # media: the hold branch's failure route goes on
        txn = f"{waiter.tindex}:{waiter.tlabel}"
        KSR.htable.sht_sets("qtxn", f"end:{txn}", action.outcome)
        for agent in (_get("qtxn", f"offer:{txn}") or "").split(",") if action.outcome == "offer" else ():
            if agent:
                _PENDING[agent] = time.time() + PENDING_SECONDS
        if not _hold_info(txn, "end"):
            log_error(f"queue: could not end the hold branch of {txn}")
        return True
    KSR.tmx.t_continue(waiter.tindex, waiter.tlabel, action.route)
    return True
