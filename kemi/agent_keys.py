"""Agent keys and auto-pause (issue 12, item 5). KSR adapter over kemi.agent_state.

Feature codes (kemi/feature_codes.py) dialled from the agent's own, authenticated phone get
a final reply at once: `603 Done - ...` when the change is made (the proxy has no media to
play a confirmation, and a 6xx stops phones from trying another server), 403/404 with a
reason phrase when the caller is no agent (of that queue), 503 when the database cannot
take the change now.

Auto-pause: each unanswered queue offer (no answer, unreachable, declined; not busy) counts
in shared memory (htable `agentmiss`, per queue and agent); an answer resets it; at the
queue's `auto_pause` limit the agent is paused with reason `auto` in that queue (log line,
metric kemi_agent_auto_pauses_total, journal event `agent_paused`).
"""
from __future__ import annotations

import traceback

import psycopg

import KSR  # provided by app_python3

from kemi import agent_state, journal, phone_metrics
from kemi.ksr import EXIT, log_error, log_info, pv

MISS_TABLE = "agentmiss"


def _connect(cache):
    """A short-lived connection for an agent's change, bounded by a 1 s connect timeout: the
    only database use on a SIP worker, until agent state moves to shared memory (issue 11)."""
    try:
        return psycopg.connect(_dsn(), autocommit=True, connect_timeout=1)
    except psycopg.Error as err:
        log_error(f"agent state: database unreachable: {err}")
        return None


_DSN: str | None = None


def _dsn() -> str:
    global _DSN
    if _DSN is None:
        from kemi.config import Settings
        _DSN = Settings.from_env().database_url
    return _DSN


def apply(feature, number: str, directory, cache) -> int:
    conn = _connect(cache)
    if conn is None:
        phone_metrics.feature_code(feature.action, "refused")
        KSR.hdr.append_to_reply("Retry-After: 10\r\n")
        KSR.sl.sl_send_reply(503, "Service Unavailable - agent state cannot be saved now")
        return EXIT
    try:
        if feature.action in ("login", "logout"):
            if feature.argument and feature.argument not in directory.queues:
                change = agent_state.Change(False, 404, f"Not Found - no queue {feature.argument}")
            else:
                change = agent_state.login(conn, number, feature.argument, feature.action == "login")
        elif feature.action == "pause":
            change = agent_state.pause(conn, number, feature.argument)
        elif feature.action == "unpause":
            change = agent_state.unpause(conn, number)
        else:
            change = agent_state.toggle_dnd(conn, number)
        conn.close()
    except Exception as err:   # the database went away mid-change: nothing was committed
        log_error(f"agent key {feature.action} for {number}: {err}")
        phone_metrics.feature_code(feature.action, "refused")
        KSR.sl.sl_send_reply(503, "Service Unavailable - agent state cannot be saved now")
        return EXIT
    log_info(f"agent key {feature.action}{' ' + feature.argument if feature.argument else ''} "
             f"from {number}: {change.status} {change.reason}")
    phone_metrics.feature_code(feature.action, "ok" if change.ok else "refused")
    KSR.sl.sl_send_reply(change.status, change.reason)
    return EXIT


def _get_int(key: str) -> int:
    value = KSR.htable.sht_get(MISS_TABLE, key)
    return int(value) if value is not None else 0


def on_offer_failed(cache) -> None:
    """Queue failure route: the offered agents did not answer this offer."""
    try:
        queue_number = pv("$avp(queue)")
        if not queue_number or KSR.tm.t_is_canceled() > 0:
            return
        code = int(pv("$T_reply_code") or 0)
        if not agent_state.missed_offer_counts(code):
            return
        directory = cache.get()
        queue = directory.queues.get(queue_number) if directory else None
        if queue is None:
            return
        limit = _limit(cache, queue.name)
        for agent in (pv("$avp(queue_offer)") or "").split(","):
            if not agent:
                continue
            key = f"{queue_number}:{agent}"
            misses = _get_int(key) + 1
            KSR.htable.sht_seti(MISS_TABLE, key, misses)
            if not agent_state.reached(misses, limit):
                continue
            conn = _connect(cache)
            if conn is None:
                continue            # tried again at the next unanswered offer
            with conn:
                paused = agent_state.auto_pause(conn, agent, queue.name)
            if paused:
                log_info(f"queue {queue.name}: {agent} paused after {misses} unanswered offers in a row")
                phone_metrics.auto_pause(queue.name)
                journal.agent_paused(pv("$ci"), agent, queue.name, f"auto: {misses} unanswered offers")
            KSR.htable.sht_rm(MISS_TABLE, key)
    except Exception:
        log_error("auto-pause: " + traceback.format_exc())


def on_offer_answered(agent: str | None) -> None:
    """An answer resets the agent's unanswered offers in this queue."""
    try:
        queue_number = pv("$avp(queue)")
        if agent and queue_number:
            KSR.htable.sht_rm(MISS_TABLE, f"{queue_number}:{agent}")
    except Exception:
        log_error("auto-pause reset: " + traceback.format_exc())


def _limit(cache, queue_name: str) -> int | None:
    directory = cache.get()
    return directory.auto_pause.get(queue_name) if directory is not None else None
