"""Every Prometheus metric of the proxy: names, labels, buckets and the cheap, safe functions
that update them. No KSR here (kemi/instrument.py reads the SIP facts), so it is unit-tested
as plain Python.

Kamailio's SIP workers are forked processes with no threads, so the metrics use
prometheus_client's multiprocess mode: each process writes its values to mmap files in
PROMETHEUS_MULTIPROC_DIR (set by tools/stack.py before Kamailio starts, wiped at each start),
and the exporter (tools/exporter.py) sums them on every scrape. An update is a dictionary
lookup and a write into an mmap page: no I/O, no lock held across processes.

Label values are bounded: call kinds and outcomes from fixed sets, SIP codes from a fixed
set or as their class ("4xx"), and group / queue / trunk names, which are provisioned (at
most 64 characters of [A-Za-z0-9_.-]). Never a caller's or a callee's number.

Every public update function swallows its own errors: metrics must never break a call.
"""
from __future__ import annotations

import functools
import os
import re
import time
from typing import Callable

# prometheus_client picks multiprocess mode when it is imported and fails on every update
# if the directory is missing: make sure it exists, or fall back to (unexported) in-process
# values rather than break the proxy.
_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _dir:
    try:
        os.makedirs(_dir, exist_ok=True)
    except OSError:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]

from prometheus_client import Counter, Gauge, Histogram  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402

PREFIX = "kemi"

# ------------------------------------------------------------------ label vocabularies

KINDS = ("direct", "hunt", "ringall", "queue", "trunk", "none", "other")
RING_PLAN_KINDS = {"direct": "direct", "hunt": "hunt", "service": "hunt", "ringall": "ringall"}
OUTCOMES = ("answered", "busy", "no_answer", "cancelled", "rejected", "failed")
# Final codes worth telling apart; anything else is reported as its class ("4xx").
CODES = frozenset({200, 403, 404, 408, 480, 484, 486, 487, 488, 500, 501, 503, 600, 603})
AUTH_REASONS = ("unknown_user", "wrong_password", "identity_mismatch", "unknown_source", "replay",
                "locked_out")
# The edge (kemi/edge.py, kemi/guard.py): why a request was dropped or refused, why a source was banned.
EDGE_DROP_REASONS = ("banned", "flood", "scanner", "broadcast_via")
EDGE_REFUSE_REASONS = ("version", "scheme", "proxy_require", "self_contact", "preloaded_route")
BAN_REASONS = ("flood", "auth", "tcp")
METHODS = ("INVITE", "REGISTER")
AGENT_STATES = ("idle", "ringing", "busy", "logged_out", "unregistered")
QUEUE_OUTCOMES = ("answered", "timeout", "abandoned")
KNOWN_ROUTES = ("edge", "tcp_guard", "request", "hunt_failure", "trunk_failure", "trunk_branch", "reply", "queue_dispatch",
                "queue_offer", "queue_timeout", "queue_failure")
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# ------------------------------------------------------------------ buckets (base units)

SETUP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 10, 15, 20, 30, 45, 60, 90, 120)
RING_BUCKETS = (0.5, 1, 2, 3, 5, 8, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300)
STEP_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60)
MOS_BUCKETS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4, 4.6, 5.0)
JITTER_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)
LOSS_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)
RTT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
QUEUE_WAIT_BUCKETS = (1, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)
DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

# ------------------------------------------------------------------ calls (SIP workers)

CALL_SEIZURES = Counter(f"{PREFIX}_call_seizures", "Calls routed to a destination (seizures), by kind "
                        "and group / queue / trunk name ('none' for direct calls)", ["kind", "name"])
CALL_ANSWERS = Counter(f"{PREFIX}_call_answers", "Seized calls that were answered (ASR = answers / "
                       "seizures)", ["kind", "name"])
CALLS = Counter(f"{PREFIX}_calls", "Calls ended before or at answer, by kind, outcome and final SIP code "
                "(code from a fixed set, else its class like 4xx)", ["kind", "outcome", "code"])
# phones: answers and seizures of the same calls, counted once when the caller got its answer
# or final failure, so an answer-seizure ratio over any window stays within 0..100 %.
CALL_RESULTS = Counter(f"{PREFIX}_call_results", "Calls by whether they were answered, counted once "
                       "at answer or final failure (ASR = answered / all)", ["kind", "name", "answered"])
# phones: answered calls at hang-up, by whether rtpengine reported a MOS (needs RTCP).
QUALITY_REPORTS = Counter(f"{PREFIX}_call_quality_reports", "Answered calls at hang-up, by whether "
                          "rtpengine had a MOS for them (short calls and phones without RTCP have none)",
                          ["kind", "name", "mos"])
CALL_SETUP = Histogram(f"{PREFIX}_call_setup_seconds", "INVITE received -> first 2xx or final failure "
                       "sent", ["kind", "outcome"], buckets=SETUP_BUCKETS)
CALL_RING = Histogram(f"{PREFIX}_call_ring_seconds", "First provisional reply (ringing) -> answer or "
                      "final failure", ["kind", "outcome"], buckets=RING_BUCKETS)
HUNT_STEPS = Histogram(f"{PREFIX}_call_hunt_steps", "Steps (hunt members, queue offers or trunk attempts) "
                       "a call went through until it was answered or ended", ["kind"], buckets=STEP_BUCKETS)
CALL_MOS = Histogram(f"{PREFIX}_call_mos", "Average MOS of a call as rtpengine reports it at the end "
                     "(1..5)", ["kind", "name"], buckets=MOS_BUCKETS)
CALL_JITTER = Histogram(f"{PREFIX}_call_jitter_seconds", "Average jitter of a call as rtpengine reports "
                        "it at the end", ["kind", "name"], buckets=JITTER_BUCKETS)
CALL_LOSS = Histogram(f"{PREFIX}_call_packet_loss_ratio", "Average packet loss of a call (0..1) as "
                      "rtpengine reports it at the end", ["kind", "name"], buckets=LOSS_BUCKETS)
CALL_RTT = Histogram(f"{PREFIX}_call_round_trip_seconds", "Average end-to-end round-trip time of a call "
                     "as rtpengine reports it at the end", ["kind", "name"], buckets=RTT_BUCKETS)

# ------------------------------------------------------------------ registrar, auth, errors

REGISTRATIONS = Counter(f"{PREFIX}_registrations", "Authenticated REGISTER requests by result (accepted "
                        "includes refreshes and de-registrations)", ["result"])
AUTH_FAILURES = Counter(f"{PREFIX}_auth_failures", "Requests refused by authentication, by method and "
                        "reason (a first challenge is not a failure)", ["method", "reason"])
HANDLER_ERRORS = Counter(f"{PREFIX}_handler_errors", "Exceptions caught at a KEMI route boundary (the "
                         "caller got a 500 where a reply was due)", ["route"])
EDGE_DROPPED = Counter(f"{PREFIX}_edge_dropped", "Requests and replies dropped without a reply at the "
                       "edge, by reason (banned source, flood, scanner User-Agent, broadcast Via)", ["reason"])
EDGE_REFUSED = Counter(f"{PREFIX}_edge_refused", "Requests answered with an error (or cleaned) at the edge "
                       "before routing, by reason", ["reason"])
EDGE_BANS = Counter(f"{PREFIX}_edge_bans", "Source addresses banned for a while, by reason (flood, auth: "
                    "too many failed authentications, tcp: too many connections)", ["reason"])
EDGE_LOCKOUTS = Counter(f"{PREFIX}_edge_lockouts", "SIP numbers locked out after too many failed "
                        "authentications")
EDGE_TCP_CLOSED = Counter(f"{PREFIX}_edge_tcp_closed", "TCP connections closed by the edge: no SIP "
                          "message within tcp_idle_seconds, or half-open over the per-address limit")
METRIC_ERRORS = Counter(f"{PREFIX}_metrics_errors", "Failed metric updates (swallowed, never raised into "
                        "a call)")

# ------------------------------------------------------------------ data layer

DIRECTORY_LOOKUPS = Counter(f"{PREFIX}_directory_lookups", "Routing-data snapshot lookups by SIP workers "
                            "(unavailable: never loaded)", ["result"])
DIRECTORY_RELOADS = Counter(f"{PREFIX}_directory_reloads", "Snapshot (re)loads after a provisioning "
                            "change or a reconnect (cache misses); failures count as database errors")
DB_QUERY = Histogram(f"{PREFIX}_database_query_seconds", "Database queries made by the proxy (the "
                     "per-call path makes none)", ["query"], buckets=DB_BUCKETS)
DB_ERRORS = Counter(f"{PREFIX}_database_errors", "Database connection failures seen by SIP workers "
                    "(they keep routing from their snapshot)", ["op"])

# ------------------------------------------------------------------ queues (kemi/queueing.py)

QUEUE_WAITING = Gauge(f"{PREFIX}_queue_waiting_calls", "Callers waiting in a queue now", ["queue"],
                      multiprocess_mode="mostrecent")
QUEUE_WAIT = Histogram(f"{PREFIX}_queue_wait_seconds", "Time a caller waited in a queue, by how the wait "
                       "ended (answered, timeout, abandoned)", ["queue", "outcome"], buckets=QUEUE_WAIT_BUCKETS)
QUEUE_AGENTS = Gauge(f"{PREFIX}_queue_agents", "Agents of a queue by state", ["queue", "state"],
                     multiprocess_mode="mostrecent")

# ------------------------------------------------------------------ exporter probes (tools/exporter.py)

PROBES = {
    "rtpengine_up": "1 if rtpengine answered an NG ping at the last scrape",
    "rtpengine_ping_seconds": "NG ping round trip to rtpengine at the last scrape",
    "database_up": "1 if PostgreSQL answered SELECT 1 at the last scrape",
    "database_ping_seconds": "Connect + SELECT 1 time at the last scrape",
    "kamailio_up": "1 if Kamailio answered its control socket at the last scrape",
    "registered_contacts": "Registered contacts (devices) in Kamailio's usrloc",
    "registered_users": "SIP numbers with at least one registered contact",
    "calls_active": "Calls in progress (Kamailio dialogs: early and confirmed)",
    "calls_early": "Calls ringing or waiting (Kamailio early dialogs)",
    "kamailio_shm_used_bytes": "Kamailio shared memory in use",
    "kamailio_shm_free_bytes": "Kamailio shared memory free",
    "kamailio_transactions_active": "SIP transactions in Kamailio's tm now",
}
# Kamailio statistics (kamcmd stats.get_statistics all) behind the probes above.
KAMAILIO_STATS = {
    "registered_contacts": "usrloc:location_contacts",
    "registered_users": "usrloc:location_users",
    "calls_active": "dialog:active_dialogs",
    "calls_early": "dialog:early_dialogs",
    "kamailio_shm_used_bytes": "shmem:real_used_size",
    "kamailio_shm_free_bytes": "shmem:free_size",
    "kamailio_transactions_active": "tmx:active_transactions",
}


def restart_family(restarts: dict[str, int]):
    """faults: processes the launcher restarted (tools/supervise.py writes the counts)."""
    from prometheus_client.core import CounterMetricFamily
    family = CounterMetricFamily(f"{PREFIX}_process_restarts", "Processes the launcher restarted after they "
                                 "died (kamailio, rtpengine, postgres, exporter, journal_shipper, "
                                 "directory_loader)", labels=["process"])
    known = ("kamailio", "rtpengine", "postgres", "exporter", "journal_shipper", "directory_loader")
    for name in dict.fromkeys((*known, *sorted(restarts))):
        family.add_metric([name], float(restarts.get(name, 0)))
    return family


def media_gate_families(state: dict[str, int] | None) -> list:
    """faults: the launcher's media gate (tools/stack.py MediaGate; None before its first check)."""
    from prometheus_client.core import CounterMetricFamily
    if state is None:
        return []
    switch_offs = CounterMetricFamily(f"{PREFIX}_media_gate_switch_offs", "Times the media gate switched "
                                      "Kamailio's rtpengine off because rtpengine stopped answering NG pings")
    switch_offs.add_metric([], float(state["switch_offs"]))
    return [GaugeMetricFamily(f"{PREFIX}_media_anchoring", "1 while rtpengine anchors media, 0 while the "
                              "media gate has switched it off (calls connect with media end to end)",
                              value=float(state["anchoring"])), switch_offs]


def probe_families(values: dict[str, float | None]) -> list[GaugeMetricFamily]:
    """The exporter's own gauges from one scrape's probe results (None: not measured)."""
    out = []
    for key, help_text in PROBES.items():
        value = values.get(key)
        if value is not None:
            out.append(GaugeMetricFamily(f"{PREFIX}_{key}", help_text, value=float(value)))
    return out


# ------------------------------------------------------------------ label helpers (pure)

def kind_label(kind: str | None) -> str:
    return kind if kind in KINDS else "other"


def name_label(name: str | None) -> str:
    """A provisioned name as a label value; 'none' when there is none."""
    if not name:
        return "none"
    name = str(name)
    if NAME_RE.fullmatch(name):
        return name
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64]


def code_label(code: int) -> str:
    if code in CODES:
        return str(code)
    if 100 <= code < 700:
        return f"{code // 100}xx"
    return "other"


def outcome(code: int) -> str:
    """What a final SIP code means for the caller."""
    if 200 <= code < 300:
        return "answered"
    if code in (486, 600):
        return "busy"
    if code in (408, 480):
        return "no_answer"
    if code == 487:
        return "cancelled"
    if 500 <= code < 600 or code < 200 or code >= 700:
        return "failed"
    return "rejected"        # 3xx, other 4xx, 603 and other 6xx: the far end or the rules said no


def route_label(where: str) -> str:
    """'hunt failure route' -> 'hunt_failure'; bounded by the code's own route names."""
    label = re.sub(r"[^a-z]+", "_", str(where).lower().replace(" route", "")).strip("_")
    return label if 0 < len(label) <= 32 else "other"


def call_label(plan, directory=None) -> tuple[str, str]:
    """(kind, name) of a routing plan: the group, queue or trunk that takes the call.
    Trunk calls are labelled with the first trunk of their route."""
    cls = type(plan).__name__
    if cls == "TrunkPlan":
        steps = getattr(plan, "steps", ())
        trunk = directory.trunks.get(steps[0].trunk_id) if steps and directory is not None else None
        return "trunk", name_label(trunk.name if trunk else None)
    if cls == "QueuePlan":
        queues = getattr(directory, "queues", None) or {}
        queue = queues.get(getattr(plan, "queue", None))
        return "queue", name_label(queue.name if queue else None)
    if cls == "RingPlan":
        kind = RING_PLAN_KINDS.get(getattr(plan, "kind", ""), "other")
        if kind == "direct":
            return kind, "none"
        group = getattr(plan, "group", None)
        if group is None and kind == "hunt" and directory is not None:
            group = _hunt_group_name(directory, plan.dialled)
        return kind, name_label(group)
    return "other", "none"


def _hunt_group_name(directory, number: str) -> str | None:
    service = directory.services.get(number)
    member = directory.members.get(number)
    group_id = service.group_id if service else member.group_id if member else None
    group = directory.groups.get(group_id) if group_id is not None else None
    return group.name if group else None


def directory_names(directory) -> list[tuple[str, str]]:
    """(kind, name) of every provisioned group, queue and trunk, to start their counters at 0."""
    out = [("direct", "none")]
    for kind, items in (("hunt", getattr(directory, "groups", {})), ("ringall", getattr(directory, "ringall", {})),
                        ("queue", getattr(directory, "queues", {})), ("trunk", getattr(directory, "trunks", {}))):
        out.extend((kind, name_label(item.name)) for item in (items or {}).values())
    return out


# ------------------------------------------------------------------ safety

_on_error: Callable[[str], None] | None = None
_last_report = 0.0
errors_swallowed = 0


def set_error_log(log: Callable[[str], None] | None) -> None:
    """Where swallowed metric errors are reported (at most once a minute)."""
    global _on_error
    _on_error = log


def _swallow(where: str, err: Exception) -> None:
    global _last_report, errors_swallowed
    errors_swallowed += 1
    try:
        METRIC_ERRORS.inc()
    except Exception:
        pass
    now = time.monotonic()
    if _on_error is not None and now - _last_report >= 60:
        _last_report = now
        try:
            _on_error(f"metrics: {where} failed: {err!r} ({errors_swallowed} so far)")
        except Exception:
            pass


_children: dict = {}


def _child(metric, *labels):
    """metric.labels(*labels), cached: label values are bounded, and labels() costs more than
    the update itself (1.4 us against 0.1 us for the dictionary hit)."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def safe(fn):
    """Never let a metric update raise into the call path."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            fn(*args, **kwargs)
        except Exception as err:
            _swallow(fn.__name__, err)
    return wrapper


# ------------------------------------------------------------------ updates: calls

@safe
def call_seized(kind: str, name: str) -> None:
    kind, name = kind_label(kind), name_label(name)
    _child(CALL_SEIZURES, kind, name).inc()
    _child(CALL_ANSWERS, kind, name)        # exists (at 0) from the first seizure on: ASR is 0, not absent


@safe
def call_finished(kind: str, name: str, code: int, setup_seconds: float | None = None,
                  ring_seconds: float | None = None, steps: int | None = None) -> None:
    """The caller got its answer or final failure (once per call)."""
    kind, name = kind_label(kind), name_label(name)
    result = outcome(code)
    _child(CALLS, kind, result, code_label(code)).inc()
    _child(CALL_RESULTS, kind, name, "yes" if result == "answered" else "no").inc()   # phones
    if result == "answered":
        _child(CALL_ANSWERS, kind, name).inc()
    if setup_seconds is not None and setup_seconds >= 0:
        _child(CALL_SETUP, kind, result).observe(setup_seconds)
    if ring_seconds is not None and ring_seconds >= 0:
        _child(CALL_RING, kind, result).observe(ring_seconds)
    if steps is not None and steps > 0:
        _child(HUNT_STEPS, kind).observe(steps)


@safe
def quality_report(kind: str, name: str, has_mos: bool) -> None:
    """phones: an answered call hung up, with or without a MOS (the MOS coverage panel)."""
    _child(QUALITY_REPORTS, kind_label(kind), name_label(name), "yes" if has_mos else "no").inc()


@safe
def call_quality(kind: str, name: str, mos: float | None, jitter_ms: float | None = None,
                 loss_percent: float | None = None, rtt_us: float | None = None) -> None:
    """rtpengine's end-of-call report (as Kamailio's rtpengine module gives it: MOS 1.0-5.0,
    jitter in ms, loss in percent, round trip in microseconds). Converted to base units."""
    if mos is None or mos <= 0:
        return                 # no RTCP, no MOS: nothing to say about the audio
    if mos > 5:
        mos = mos / 10         # some versions report MOS x 10
    kind, name = kind_label(kind), name_label(name)
    _child(CALL_MOS, kind, name).observe(mos)
    if jitter_ms is not None and jitter_ms >= 0:
        _child(CALL_JITTER, kind, name).observe(jitter_ms / 1000)
    if loss_percent is not None and loss_percent >= 0:
        _child(CALL_LOSS, kind, name).observe(min(loss_percent, 100) / 100)
    if rtt_us is not None and rtt_us > 0:
        _child(CALL_RTT, kind, name).observe(rtt_us / 1e6)


# ------------------------------------------------------------------ updates: registrar, auth, errors

@safe
def registration(accepted: bool) -> None:
    REGISTRATIONS.labels("accepted" if accepted else "failed").inc()


@safe
def auth_failure(method: str | None, reason: str) -> None:
    AUTH_FAILURES.labels(method if method in METHODS else "other",
                         reason if reason in AUTH_REASONS else "other").inc()


@safe
def edge_dropped(reason: str) -> None:
    EDGE_DROPPED.labels(reason if reason in EDGE_DROP_REASONS else "other").inc()


@safe
def edge_refused(reason: str) -> None:
    EDGE_REFUSED.labels(reason if reason in EDGE_REFUSE_REASONS else "other").inc()


@safe
def edge_ban(reason: str) -> None:
    EDGE_BANS.labels(reason if reason in BAN_REASONS else "other").inc()


@safe
def tcp_closed(n: int) -> None:
    EDGE_TCP_CLOSED.inc(n)


@safe
def edge_lockout() -> None:
    EDGE_LOCKOUTS.inc()


@safe
def handler_error(where: str) -> None:
    HANDLER_ERRORS.labels(route_label(where)).inc()


# ------------------------------------------------------------------ updates: data layer

@safe
def directory_lookup(available: bool) -> None:
    _child(DIRECTORY_LOOKUPS, "served" if available else "unavailable").inc()


@safe
def directory_loaded(seconds: float, directory=None) -> None:
    DIRECTORY_RELOADS.inc()
    DB_QUERY.labels("load_directory").observe(seconds)
    if directory is not None:
        for kind, name in directory_names(directory):
            CALL_SEIZURES.labels(kind, name)
            CALL_ANSWERS.labels(kind, name)


@safe
def database_error(op: str) -> None:
    """op: 'connect' (could not connect) or 'lost' (connection or reload failed)."""
    DB_ERRORS.labels(op if op in ("connect", "lost") else "other").inc()


# ------------------------------------------------------------------ updates: queues

@safe
def queue_waiting(queue: str, n: int) -> None:
    """Callers waiting in `queue` now (the latest value written by any process wins)."""
    QUEUE_WAITING.labels(name_label(queue)).set(n)


@safe
def observe_queue_wait(queue: str, seconds: float, outcome: str = "answered") -> None:
    """A caller left `queue` after `seconds`: answered, timeout or abandoned (hung up)."""
    QUEUE_WAIT.labels(name_label(queue), outcome if outcome in QUEUE_OUTCOMES else "other").observe(seconds)


@safe
def set_agents(queue: str, state: str, n: int) -> None:
    """Agents of `queue` in `state` (idle, ringing, busy, logged_out, unregistered)."""
    QUEUE_AGENTS.labels(name_label(queue), state if state in AGENT_STATES else "other").set(n)


# ------------------------------------------------------------------ start values

@safe
def prime() -> None:
    """Start the bounded counters at 0, so rates and alerts have a series before the first
    event (Prometheus' advice for known label values). Called once by the SIP handler."""
    for route in KNOWN_ROUTES:
        HANDLER_ERRORS.labels(route)
    for result in ("accepted", "failed"):
        REGISTRATIONS.labels(result)
    for method in METHODS:
        for reason in AUTH_REASONS:
            AUTH_FAILURES.labels(method, reason)
    for result in ("served", "unavailable"):
        DIRECTORY_LOOKUPS.labels(result)
    for reason in EDGE_DROP_REASONS:
        EDGE_DROPPED.labels(reason)
    for reason in EDGE_REFUSE_REASONS:
        EDGE_REFUSED.labels(reason)
    for reason in BAN_REASONS:
        EDGE_BANS.labels(reason)
    EDGE_LOCKOUTS.inc(0)
    EDGE_TCP_CLOSED.inc(0)
    for op in ("connect", "lost"):
        DB_ERRORS.labels(op)
    CALL_SEIZURES.labels("direct", "none")
    CALL_ANSWERS.labels("direct", "none")


# ------------------------------------------------------------------ media: queue hold (kemi/queueing.py)

QUEUE_HOLD_FAILURES = Counter(f"{PREFIX}_queue_hold_failures", "Waiting queue callers whose music on hold "
                              "from the media service failed (down, refused): they wait on in silence",
                              ["queue"])


@safe
def queue_hold_failed(queue: str) -> None:
    QUEUE_HOLD_FAILURES.labels(name_label(queue)).inc()
