"""Agent state in shared memory (issue 11) and the agent keys (issue 12). KSR adapter; the
decisions are kemi/core/agent_machine.py's, the names and encodings kemi/names.py's.

Every membership's state (queue or ring-all group: logged in, out, paused with a reason,
do not disturb) lives in htable `agentst`, loaded from PostgreSQL when Kamailio starts. A
change (feature code, auto-pause, kemictl over RPC) is written there, so the next offer in
any process sees it, then:
  - one line per change is appended to this process's events file
    (var_dir/agents/<pid>.jsonl, O_APPEND, never raises); the agent shipper
    (tools/agent_shipper.py) moves it into PostgreSQL. No SIP worker touches the database.
  - the agent's number goes into htable `agentev`, so the dispatcher looks at that agent
    again (and only that agent).
Queue statistics per queue and agent (answered, talk time, last call end, unanswered
offers) are counted in htable `agentstat` and shipped the same way.

Feature codes dialled from the agent's own, authenticated phone get a final reply at once:
`603 Done - ...` (the proxy has no media to play a confirmation, and a 6xx stops phones from
trying another server), 403/404 with a reason phrase when the caller is no agent (of that
queue). The agent is always the authenticated caller: a phone can change nobody else's state.
Auto-pause: unanswered queue offers in a row per queue and agent count in htable `agentmiss`;
at the queue's `auto_pause` limit the agent is paused with reason `auto` in that queue.
"""
from __future__ import annotations

import json
import os
import time
import traceback

import KSR  # provided by app_python3

from kemi import agent_state, journal, names, phone_metrics
from kemi.core import agent_machine as am
from kemi.core.agent_machine import Membership
from kemi.ksr import EXIT, log_error, log_info, pv

MISS_TABLE = "agentmiss"
STATE = names.AGENT_STATE_TABLE
EVENTS = names.AGENT_EVENT_TABLE
STATS = names.AGENT_STAT_TABLE

# ---------------------------------------------------------------- the events file

_fd = -1
_pid = 0
_dir: str | None = None
event_errors = 0


def _write(record: dict) -> None:
    """One line for the agent shipper; never raises into the call path."""
    global _fd, _pid, _dir, event_errors
    try:
        if _fd < 0 or _pid != os.getpid():
            if _dir is None:
                from kemi.config import Settings
                _dir = agent_state.events_directory(Settings.from_env().var_dir)
            os.makedirs(_dir, exist_ok=True)
            _fd = os.open(os.path.join(_dir, f"{os.getpid()}.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            _pid = os.getpid()
        os.write(_fd, json.dumps(record, separators=(",", ":")).encode() + b"\n")
    except Exception as err:
        event_errors += 1
        log_error(f"agent state: cannot write the events file: {err}")


# ---------------------------------------------------------------- reading state

_index: tuple[object, dict[str, tuple[tuple[str, str, bool], ...]]] = (None, {})


def _memberships_index(directory) -> dict[str, tuple[tuple[str, str, bool], ...]]:
    """agent -> (kind, group number, logged in by the snapshot), built once per snapshot."""
    global _index
    if _index[0] is not directory:     # the snapshot itself is kept: ids are reused
        out: dict[str, list[tuple[str, str, bool]]] = {}
        for q in directory.queues.values():
            for a in q.agents:
                out.setdefault(a.number, []).append((am.QUEUE, q.number, a.logged_in))
        for g in directory.ringall.values():
            for number, logged_in in g.members:
                out.setdefault(number, []).append((am.RINGALL, g.number, logged_in))
        _index = (directory, {k: tuple(v) for k, v in out.items()})
    return _index[1]


def live_state(kind: str, group: str, agent: str, default_in: bool) -> tuple[str, str]:
    """(state, reason) from shared memory; a membership added since the start (no key yet)
    has the state provisioned with it."""
    value = KSR.htable.sht_get(STATE, names.agent_key(kind, group, agent))
    decoded = am.decode_state(str(value)) if value is not None else None
    if decoded is not None:
        return decoded
    return (am.IN, "") if default_in else (am.OUT, "")


def logged_in(kind: str, group: str, agent: str, default_in: bool) -> bool:
    return live_state(kind, group, agent, default_in)[0] == am.IN


def ringall_logged_in(group_number: str, number: str, default_in: bool) -> bool:
    """kemi.routing's hook: a ring-all member's state comes from shared memory."""
    try:
        return logged_in(am.RINGALL, group_number, number, default_in)
    except Exception:
        return default_in


def memberships(directory, number: str) -> tuple[Membership, ...]:
    return tuple(Membership(kind, group, *live_state(kind, group, number, default))
                 for kind, group, default in _memberships_index(directory).get(number, ()))


# ---------------------------------------------------------------- changing state

def notify(agent: str) -> None:
    """Tell the dispatcher to look at this agent again (state or calls changed)."""
    KSR.htable.sht_sets(EVENTS, f"{time.time_ns()}.{os.getpid()}.{agent}", agent)


def commit(number: str, changed, why: str) -> None:
    """Apply changed memberships: shared memory first (live at once), then the events file."""
    now = time.time()
    for m in changed:
        value = am.encode_state(m)
        KSR.htable.sht_sets(STATE, names.agent_key(m.kind, m.group, number), value)
        _write({"t": "state", "ts": now, "agent": number, "kind": m.kind, "group": m.group,
                "state": value, "why": why})
    if changed:
        notify(number)


def apply(feature, number: str, directory, cache) -> int:
    """A feature code from `number`'s own authenticated phone."""
    ms = memberships(directory, number)
    if feature.action in ("login", "logout"):
        if feature.argument and feature.argument not in directory.queues:
            result = am.Result(False, 404, f"Not Found - no queue {feature.argument}")
        else:
            result = am.login(number, ms, feature.argument, feature.action == "login")
    elif feature.action == "pause":
        result = am.pause(number, ms, feature.argument)
    elif feature.action == "unpause":
        result = am.unpause(number, ms)
    else:
        result = am.toggle_dnd(number, ms)
    commit(number, result.changed, f"phone {feature.action}")
    if result.ok and feature.action in ("login", "unpause"):
        for m in result.changed:
            KSR.htable.sht_rm(MISS_TABLE, f"{m.group}:{number}")   # a fresh start for auto-pause
    log_info(f"agent key {feature.action}{' ' + feature.argument if feature.argument else ''} "
             f"from {number}: {result.status} {result.reason}")
    phone_metrics.feature_code(feature.action, "ok" if result.ok else "refused")
    KSR.sl.sl_send_reply(result.status, result.reason)
    return EXIT


# ---------------------------------------------------------------- statistics

def _add(table: str, key: str, amount: int) -> None:
    KSR.htable.sht_lock(table, key)
    try:
        value = KSR.htable.sht_get(table, key)
        KSR.htable.sht_seti(table, key, (int(value) if value is not None else 0) + amount)
    finally:
        KSR.htable.sht_unlock(table, key)


def _stat(queue: str, agent: str, ans: int = 0, talk: int = 0, end: int = 0, miss: int = 0) -> None:
    for field, amount in (("ans", ans), ("talk", talk), ("miss", miss)):
        if amount:
            _add(STATS, names.stat_key(field, queue, agent), amount)
    if end:
        KSR.htable.sht_seti(STATS, names.stat_key("end", queue, agent), end)
    _write({"t": "stat", "queue": queue, "agent": agent, "ans": ans, "talk": talk, "end": end, "miss": miss})


def stats(queue: str, agent: str) -> dict[str, int]:
    out = {}
    for field in names.STAT_FIELDS:
        value = KSR.htable.sht_get(STATS, names.stat_key(field, queue, agent))
        out[field] = int(value) if value is not None else 0
    return out


# ---------------------------------------------------------------- queue offers and calls

def _get_int(key: str) -> int:
    value = KSR.htable.sht_get(MISS_TABLE, key)
    return int(value) if value is not None else 0


def on_offer_failed(cache) -> None:
    """Queue failure route: the offered agents did not answer this offer."""
    try:
        queue_number = pv("$avp(queue)")
        offered = [a for a in (pv("$avp(queue_offer)") or "").split(",") if a]
        for agent in offered:
            notify(agent)     # the dispatcher counts the agent free again
        if not queue_number or KSR.tm.t_is_canceled() > 0:
            return
        code = int(pv("$T_reply_code") or 0)
        directory = cache.get()
        queue = directory.queues.get(queue_number) if directory else None
        if queue is None:
            return
        limit = directory.auto_pause.get(queue.name)
        for agent in offered:
            key = f"{queue_number}:{agent}"
            misses, pause_now = am.on_offer_ended(_get_int(key), code, limit)
            if am.missed_offer_counts(code):
                _stat(queue_number, agent, miss=1)
            if not pause_now:
                KSR.htable.sht_seti(MISS_TABLE, key, misses)
                continue
            KSR.htable.sht_rm(MISS_TABLE, key)
            result = am.auto_pause(agent, memberships(directory, agent), queue_number)
            commit(agent, result.changed, "auto-pause")
            if result.changed:
                log_info(f"queue {queue.name}: {agent} paused after {limit} unanswered offers in a row")
                phone_metrics.auto_pause(queue.name)
                journal.agent_paused(pv("$ci"), agent, queue.name, f"auto: {limit} unanswered offers")
    except Exception:
        log_error("auto-pause: " + traceback.format_exc())


def on_offer_answered(agent: str | None) -> None:
    """A queue call was answered: reset the agent's unanswered offers, count the call, and
    remember on the dialog who talks, for the talk time at its end."""
    try:
        queue_number = pv("$avp(queue)")
        if agent and queue_number:
            KSR.htable.sht_rm(MISS_TABLE, f"{queue_number}:{agent}")
            _stat(queue_number, agent, ans=1)
            KSR.pv.sets(names.AGENT_DLG_VAR, names.encode_queue_call(queue_number, agent, time.time()))
            for other in (pv("$avp(queue_offer)") or "").split(","):
                if other and other != agent:
                    notify(other)
    except Exception:
        log_error("agent statistics (answer): " + traceback.format_exc())


def on_call_end() -> None:
    """A BYE: the agent of a queue call gets its talk time and last call end; both ends are
    looked at again by the dispatcher (they may be free now)."""
    try:
        call = names.decode_queue_call(pv(names.AGENT_DLG_VAR))
        if call is not None:
            queue_number, agent, answered = call
            KSR.pv.sets(names.AGENT_DLG_VAR, "")     # once, also if the BYE is retransmitted
            now = time.time()
            _stat(queue_number, agent, talk=max(0, round(now - answered)), end=int(now))
            notify(agent)
        for user in (pv("$fU"), pv("$tU")):
            if user and user.isdigit():
                notify(user)
    except Exception:
        log_error("agent statistics (call end): " + traceback.format_exc())
