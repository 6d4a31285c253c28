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
"""
from __future__ import annotations

import time

import KSR  # provided by app_python3

from kemi import hunt, instrument, journal, long_calls, metrics, names, nat, ring
from kemi.core import queue_entry as qe
from kemi import queue_strategy as strategy
from kemi.hunt import Step
from kemi.ksr import EXIT, log_info, new_transaction, pv

OFFER_ROUTE = qe.OFFER_ROUTE
TIMEOUT_ROUTE = qe.TIMEOUT_ROUTE
FAILURE_ROUTE = "ksr_failure_queue"
BUSY = "busy"
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


def agent_calls(agent: str) -> int:
    KSR.dialog.get_profile_size(BUSY, agent, "$var(busy)")
    return int(pv("$var(busy)") or 0)


def mark_busy(agent: str) -> None:
    KSR.dialog.set_dlg_profile(BUSY, agent)


def unmark_busy(agent: str) -> None:
    KSR.dialog.unset_dlg_profile(BUSY, agent)


def registered(agent: str, domain: str) -> bool:
    return KSR.registrar.registered_uri(ring.LOCATION, f"sip:{agent}@{domain}") > 0


# ------------------------------------------------------------------ entering the queue

def enqueue(queue, caller: str, fresh: bool) -> int:
    """Put the caller in line: 182 Queued, suspend, leave an entry for the dispatcher."""
    if fresh and not new_transaction():
        return EXIT
    if fresh and KSR.sdpops.sdp_content() > 0:
        nat.media_request("INVITE")   # phones: SIP-source-address for NATed callers
    KSR.tm.t_reply(182, "Queued")
    seq = incr("qwait", f"{queue.number}:tail")
    KSR.pv.seti("$avp(queue_max_wait)", queue.max_wait)
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
    if entry_key:
        KSR.htable.sht_rm("qwait", entry_key)
    KSR.htable.sht_rm("qtxn", f"{pv('$T(id_index)')}:{pv('$T(id_label)')}")
    KSR.htable.sht_rm("qtxn", f"cid:{pv('$ci')}")
    long_calls.forget(pv("$T(id_index)"), pv("$T(id_label)"))   # phones


# ------------------------------------------------------------------ the dispatcher

def _last_agent(queue: str, caller: str) -> tuple[str, float] | None:
    last = _get("qstat", f"last:{queue}:{caller}")
    if not last:
        return None
    agent, _, when = last.partition("|")
    return agent, float(when)


class Dispatcher:
    """Runs in the rtimer process; the only place that decides offers, so two waiting calls
    are never offered the same free agent. Its own memory keeps what only it needs."""

    def __init__(self):
        self.heads: dict[str, int] = {}          # lowest sequence number still in line
        self.idle_since: dict[str, float] = {}
        self.was_busy: dict[str, bool] = {}
        self.next_report = 0.0

    def run(self, directory, domain: str) -> None:
        now = time.time()
        report = now >= self.next_report
        if report:
            self.next_report = now + REPORT_INTERVAL
        for q in directory.queues.values():
            tail = int(_get("qwait", f"{q.number}:tail") or 0)
            head = self.heads.get(q.number, 1)
            if head > tail and not report:
                continue
            states = self._states(q, now)
            available = {a.number for a in q.agents if a.logged_in and registered(a.number, domain)}
            if report:
                self._report(q, head, tail, states, available)
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
                sticky = strategy.sticky_agent(q, _last_agent(q.number, waiter.caller), now)
                agents = strategy.pick(q, states, available, _get("qstat", f"rr:{q.number}"), sticky)
                if not agents:
                    break                  # nobody free: everyone behind waits too (arrival order)
                for agent in agents:
                    states[agent] = strategy.AgentState(states[agent].calls + 1, states[agent].answered,
                                                        states[agent].idle_since)
                KSR.htable.sht_sets("qstat", f"rr:{q.number}", agents[-1])
                KSR.htable.sht_sets("qtxn", f"offer:{waiter.tindex}:{waiter.tlabel}", ",".join(agents))
                _resume(key, waiter, qe.Offer())
            self.heads[q.number] = head

    @staticmethod
    def _report(q, head: int, tail: int, states, available: set[str]) -> None:
        """Queue length and agents by state, for the metrics (once a second)."""
        waiting = sum(1 for seq in range(head, tail + 1)
                      if (_get("qwait", f"{q.number}:{seq}") or "").startswith(qe.WAITING + "|"))
        metrics.queue_waiting(q.name, waiting)
        counts = {"idle": 0, "busy": 0, "logged_out": 0, "unregistered": 0}
        for agent in q.agents:
            if not agent.logged_in:
                counts["logged_out"] += 1
            elif agent.number not in available:
                counts["unregistered"] += 1
            else:
                counts["busy" if states[agent.number].calls else "idle"] += 1
        for state, n in counts.items():
            metrics.set_agents(q.name, state, n)

    def _states(self, q, now: float) -> dict[str, strategy.AgentState]:
        states = {}
        for agent in q.agents:
            calls = agent_calls(agent.number)
            if calls == 0 and self.was_busy.get(agent.number):
                self.idle_since[agent.number] = now
            self.was_busy[agent.number] = calls > 0
            answered = int(_get("qstat", f"ans:{q.number}:{agent.number}") or 0)
            states[agent.number] = strategy.AgentState(calls, answered, self.idle_since.get(agent.number, 0.0))
        return states


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
    KSR.tmx.t_continue(waiter.tindex, waiter.tlabel, action.route)
    return True
