"""Long calls (issue 12, item 6): callers waiting in a queue hear from the proxy now and then,
dead dialogs end, and a long hunt is not cut by tm's INVITE lifetime.

- Waiting callers: `182 Queued` again every `progress_interval` seconds (per queue, kemictl
  `queue progress-interval`; default 60), so upstream proxies (Timer C, about 3 minutes)
  do not cancel a caller who waits up to the queue's maximum wait. The dispatcher resumes the
  suspended INVITE into `ksr_queue_progress`, which sends the 182 and suspends it again
  (tmx `t_reply_callid` is no use here: it leaves the transaction set in the timer process,
  and tm then releases the suspended call).
- Dead dialogs: the dialog module sends in-dialog OPTIONS to both ends every `ka_interval`
  (kamailio.cfg, 30 s, its minimum); a 408 or 481 ends the dialog 10 s later with a BYE to
  both ends, which frees the agent (busy profile) within about a minute instead of 4 h.
- INVITE lifetime: the ring time of every step of the flow plus a margin, at least tm's
  default (180 s), so a 60-step hunt is not cut at 3 minutes.
The arithmetic is pure (kemi/call_timers.py); this is the thin KSR adapter.
"""
from __future__ import annotations

import time


import KSR  # provided by app_python3

from kemi.call_timers import invite_lifetime_ms, progress_due
from kemi.ksr import pv

TABLE = "qprogress"


# ------------------------------------------------------------------ adapter

def set_invite_lifetime(steps) -> None:
    KSR.tm.t_set_max_lifetime(invite_lifetime_ms([s.ring_timeout for s in steps]), 0)


PROGRESS_ROUTE = "ksr_queue_progress"


def on_queued(tindex: str, tlabel: str) -> None:
    """enqueue(): the 182 just went out."""
    KSR.htable.sht_sets(TABLE, f"{tindex}:{tlabel}", f"{time.time():.3f}|0")


_intervals: dict[str, int] = {}


def refresh(cache) -> None:
    """Dispatcher: per-queue intervals (queue number -> seconds), from the routing snapshot."""
    global _intervals
    directory = cache.get()
    if directory is not None:
        _intervals = directory.progress_intervals


def progress_due_now(tindex: str, tlabel: str, queue_number: str, now: float) -> bool:
    """Dispatcher, for a caller still waiting: whether its next 182 is due."""
    entry = KSR.htable.sht_get(TABLE, f"{tindex}:{tlabel}")
    if entry is None:
        return False
    last, _, sent = str(entry).partition("|")
    return progress_due(float(last), now, _intervals.get(queue_number), int(sent or 0))


def on_progress(back_in_line) -> int:
    """ksr_queue_progress (t_continue'd by the dispatcher): 182 again, then wait on at the
    same place (`back_in_line` is kemi.queueing's requeue: suspend again, entry waiting)."""
    if KSR.tm.t_is_canceled() > 0:
        return back_in_line("cancelled")
    KSR.tm.t_reply(182, "Queued")
    key = f"{pv('$T(id_index)')}:{pv('$T(id_label)')}"
    sent = int(str(KSR.htable.sht_get(TABLE, key) or "0|0").partition("|")[2] or 0) + 1
    KSR.htable.sht_sets(TABLE, key, f"{time.time():.3f}|{sent}")
    return back_in_line("182 Queued repeated")


def forget(tindex: str, tlabel: str) -> None:
    KSR.htable.sht_rm(TABLE, f"{tindex}:{tlabel}")


def keepalive_dialog() -> None:
    """After dlg_manage(): in-dialog OPTIONS to both ends once the call is up."""
    KSR.dialog.dlg_set_property("ka-src")
    KSR.dialog.dlg_set_property("ka-dst")
