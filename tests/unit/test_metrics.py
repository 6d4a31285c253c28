"""kemi/metrics.py (names, bounded labels, safe updates, multiprocess mode), kemi/instrument.py
(the KSR side, with a fake KSR) and the parsing parts of tools/exporter.py."""
from __future__ import annotations

import importlib
import time
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from kemi import metrics
from kemi.config import ROOT
from kemi.directory import Directory, HuntGroup, HuntMember, Queue, RingAllGroup, ServiceNumber, Trunk
from kemi.hunt import Step
from kemi.routing import QueuePlan, Reject, RingPlan, TrunkPlan
from kemi.trunks import TrunkStep


def sample(metric: str, **labels) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


# ------------------------------------------------------------------ names and labels

def test_every_metric_follows_the_naming_conventions():
    families = [c for c in vars(metrics).values() if hasattr(c, "_name") and hasattr(c, "_type")]
    assert len(families) >= 20
    for family in families:
        name, kind = family._name, family._type
        assert name.startswith("kemi_"), name
        if kind == "counter":
            # prometheus_client adds _total on exposition; the base name must not carry a unit suffix
            assert not name.endswith(("_total", "_seconds")), name
        if kind == "histogram" and ("latency" in name or "time" in name or "wait" in name):
            assert name.endswith("_seconds"), name
        for label in family._labelnames:
            assert label not in ("caller", "callee", "number", "from", "to", "user", "call_id"), (name, label)
    assert {f"kemi_{k}" for k in metrics.PROBES} >= {"kemi_rtpengine_up", "kemi_database_up", "kemi_kamailio_up",
                                                     "kemi_registered_contacts"}


@pytest.mark.parametrize("code,outcome,label", [
    (200, "answered", "200"), (202, "answered", "2xx"), (486, "busy", "486"), (600, "busy", "600"),
    (408, "no_answer", "408"), (480, "no_answer", "480"), (487, "cancelled", "487"),
    (404, "rejected", "404"), (403, "rejected", "403"), (603, "rejected", "603"), (484, "rejected", "484"),
    (415, "rejected", "4xx"), (302, "rejected", "3xx"), (500, "failed", "500"), (503, "failed", "503"),
    (502, "failed", "5xx"), (0, "failed", "other"), (799, "failed", "other"),
])
def test_outcome_and_code_label(code, outcome, label):
    assert metrics.outcome(code) == outcome
    assert metrics.code_label(code) == label


def test_label_values_are_bounded():
    assert metrics.kind_label("hunt") == "hunt" and metrics.kind_label("77721401") == "other"
    assert metrics.name_label(None) == "none" and metrics.name_label("") == "none"
    assert metrics.name_label("sales-1.eu_x") == "sales-1.eu_x"
    assert metrics.name_label('bad name"}\n') == "bad_name___"
    assert len(metrics.name_label("x" * 500)) == 64
    # every route name the handler passes to _internal_error maps to a short, stable label
    for where, label in [("request route", "request"), ("hunt failure route", "hunt_failure"),
                         ("trunk failure route", "trunk_failure"), ("trunk branch route", "trunk_branch"),
                         ("reply route", "reply"), ("queue offer", "queue_offer"), ("queue timeout", "queue_timeout"),
                         ("queue failure route", "queue_failure"), ("queue dispatch", "queue_dispatch")]:
        assert metrics.route_label(where) == label
        assert label in metrics.KNOWN_ROUTES
    assert metrics.route_label("") == "other" and metrics.route_label("x" * 80) == "other"


DIRECTORY = Directory(
    groups={1: HuntGroup(1, "sales")}, members={"77721401": HuntMember("77721401", 1, None)},
    services={"8008001": ServiceNumber("8008001", 1, "77721401")},
    trunks={4: Trunk(4, "carrier-a"), 5: Trunk(5, "carrier-b")},
    ringall={"7001": RingAllGroup(2, "support", "7001")}, queues={"6001": Queue(3, "helpdesk", "6001")})


@pytest.mark.parametrize("plan,label", [
    (RingPlan("77721402", "direct", (Step("77721402", 15),)), ("direct", "none")),
    (RingPlan("8008001", "service", (Step("77721401", 15),), group="sales"), ("hunt", "sales")),
    (RingPlan("8008001", "service", (Step("77721401", 15),)), ("hunt", "sales")),       # found in the directory
    (RingPlan("77721401", "hunt", (Step("77721401", 15),)), ("hunt", "sales")),
    (RingPlan("7001", "ringall", (), parallel=True, group="support"), ("ringall", "support")),
    (QueuePlan("6001", "6001"), ("queue", "helpdesk")),
    (QueuePlan("6009", "6009"), ("queue", "none")),
    (TrunkPlan("4455", (TrunkStep(5, "sip:4455@192.0.2.5"), TrunkStep(4, "sip:4455@192.0.2.4"))),
     ("trunk", "carrier-b")),
    (Reject(404, "Not Found"), ("other", "none")),
])
def test_call_label_of_each_plan(plan, label):
    assert metrics.call_label(plan, DIRECTORY) == label


def test_directory_names_cover_every_destination():
    assert set(metrics.directory_names(DIRECTORY)) == {
        ("direct", "none"), ("hunt", "sales"), ("ringall", "support"), ("queue", "helpdesk"),
        ("trunk", "carrier-a"), ("trunk", "carrier-b")}


# ------------------------------------------------------------------ updates

def test_a_call_from_seizure_to_answer():
    before = {k: sample(k, kind="hunt", name="u-sales")
              for k in ("kemi_call_seizures_total", "kemi_call_answers_total")}
    calls = sample("kemi_calls_total", kind="hunt", outcome="answered", code="200")
    setup = sample("kemi_call_setup_seconds_count", kind="hunt", outcome="answered")
    steps_le2 = sample("kemi_call_hunt_steps_bucket", kind="hunt", le="2.0")

    metrics.call_seized("hunt", "u-sales")
    assert sample("kemi_call_answers_total", kind="hunt", name="u-sales") == before["kemi_call_answers_total"]
    metrics.call_finished("hunt", "u-sales", 200, setup_seconds=3.2, ring_seconds=2.9, steps=2)

    assert sample("kemi_call_seizures_total", kind="hunt", name="u-sales") == before["kemi_call_seizures_total"] + 1
    assert sample("kemi_call_answers_total", kind="hunt", name="u-sales") == before["kemi_call_answers_total"] + 1
    assert sample("kemi_calls_total", kind="hunt", outcome="answered", code="200") == calls + 1
    assert sample("kemi_call_setup_seconds_count", kind="hunt", outcome="answered") == setup + 1
    assert sample("kemi_call_hunt_steps_bucket", kind="hunt", le="2.0") == steps_le2 + 1


def test_a_failed_call_counts_no_answer_and_skips_missing_timings():
    answers = sample("kemi_call_answers_total", kind="trunk", name="u-carrier")
    ring = sample("kemi_call_ring_seconds_count", kind="trunk", outcome="failed")
    metrics.call_seized("trunk", "u-carrier")
    metrics.call_finished("trunk", "u-carrier", 503, setup_seconds=0.01, ring_seconds=None, steps=2)
    assert sample("kemi_call_answers_total", kind="trunk", name="u-carrier") == answers
    assert sample("kemi_call_ring_seconds_count", kind="trunk", outcome="failed") == ring
    assert sample("kemi_calls_total", kind="trunk", outcome="failed", code="503") >= 1


def test_call_quality_in_base_units():
    labels = {"kind": "queue", "name": "u-quality"}
    metrics.call_quality("queue", "u-quality", mos=4.3, jitter_ms=12, loss_percent=2, rtt_us=45000)
    assert sample("kemi_call_mos_sum", **labels) == pytest.approx(4.3)
    assert sample("kemi_call_jitter_seconds_sum", **labels) == pytest.approx(0.012)
    assert sample("kemi_call_packet_loss_ratio_sum", **labels) == pytest.approx(0.02)
    assert sample("kemi_call_round_trip_seconds_sum", **labels) == pytest.approx(0.045)
    metrics.call_quality("queue", "u-quality", mos=38)          # reported as MOS x 10
    assert sample("kemi_call_mos_sum", **labels) == pytest.approx(8.1)
    metrics.call_quality("queue", "u-quality", mos=0)           # no RTCP: no MOS, nothing observed
    metrics.call_quality("queue", "u-quality", mos=None)
    assert sample("kemi_call_mos_count", **labels) == 2


def test_queue_api():
    metrics.queue_waiting("u-q", 3)
    metrics.queue_waiting("u-q", 1)
    assert sample("kemi_queue_waiting_calls", queue="u-q") == 1
    metrics.set_agents("u-q", "idle", 2)
    metrics.set_agents("u-q", "on a break", 1)
    assert sample("kemi_queue_agents", queue="u-q", state="idle") == 2
    assert sample("kemi_queue_agents", queue="u-q", state="other") == 1
    metrics.observe_queue_wait("u-q", 42, "answered")
    metrics.observe_queue_wait("u-q", 300, "timeout")
    assert sample("kemi_queue_wait_seconds_count", queue="u-q", outcome="answered") == 1
    assert sample("kemi_queue_wait_seconds_bucket", queue="u-q", outcome="timeout", le="300.0") == 1


def test_updates_never_raise_and_report_at_most_once_a_minute(monkeypatch):
    logged = []
    monkeypatch.setattr(metrics, "_last_report", 0.0)
    metrics.set_error_log(logged.append)
    try:
        errors = sample("kemi_metrics_errors_total")
        metrics.call_finished("hunt", "x", "not a code")       # type error inside: swallowed
        metrics.call_quality("hunt", "x", mos="bad")
        metrics.observe_queue_wait("q", "forever")
        assert sample("kemi_metrics_errors_total") == errors + 3
        assert len(logged) == 1 and "call_finished" in logged[0]
    finally:
        metrics.set_error_log(None)


def test_directory_loaded_starts_every_destination_at_zero():
    metrics.directory_loaded(0.004, DIRECTORY)
    assert REGISTRY.get_sample_value("kemi_call_seizures_total", {"kind": "queue", "name": "helpdesk"}) is not None
    assert REGISTRY.get_sample_value("kemi_call_answers_total", {"kind": "trunk", "name": "carrier-a"}) is not None
    assert sample("kemi_database_query_seconds_count", query="load_directory") >= 1


def test_probe_families_skip_what_was_not_measured():
    families = metrics.probe_families({"rtpengine_up": 1, "database_up": 0, "registered_contacts": None,
                                       "unknown": 5})
    assert {f.name: f.samples[0].value for f in families} == {"kemi_rtpengine_up": 1.0, "kemi_database_up": 0.0}


# ------------------------------------------------------------------ multiprocess mode

def test_multiprocess_values_are_summed_across_processes(tmp_path):
    """Like Kamailio's workers: separate processes write, the exporter's collector sums."""
    code = textwrap.dedent("""
        import sys
        from kemi import metrics
        metrics.call_seized("hunt", "mp")
        metrics.call_finished("hunt", "mp", 486, setup_seconds=1.5, steps=int(sys.argv[1]))
        metrics.queue_waiting("mpq", int(sys.argv[1]))
    """)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "mp"), "PYTHONPATH": str(ROOT)}
    for steps in ("2", "4"):
        subprocess.run([sys.executable, "-c", code, steps], env=env, check=True, timeout=60)
    assert len(list((tmp_path / "mp").glob("*.db"))) >= 2
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector
        reg = CollectorRegistry()
        MultiProcessCollector(reg, path={str(tmp_path / 'mp')!r})
        v = lambda n, **l: reg.get_sample_value(n, l)
        print(v("kemi_call_seizures_total", kind="hunt", name="mp"),
              v("kemi_calls_total", kind="hunt", outcome="busy", code="486"),
              v("kemi_call_hunt_steps_sum", kind="hunt"), v("kemi_queue_waiting_calls", queue="mpq"))
    """)], capture_output=True, text=True, check=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.split() == ["2.0", "2.0", "6.0", "4.0"]    # the gauge: the most recent write wins


def test_a_missing_multiprocess_directory_is_created(tmp_path):
    target = tmp_path / "not" / "yet"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(target), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", "from kemi import metrics; metrics.call_seized('direct', 'none')"],
                   env=env, check=True, timeout=60)
    assert list(target.glob("counter_*.db"))


# ------------------------------------------------------------------ kemi/instrument.py with a fake KSR

class FakeKSR(types.ModuleType):
    def __init__(self):
        super().__init__("KSR")
        self.vars: dict[str, object] = {}
        self.rr_params: list[str] = []
        self.errors: list[str] = []
        self.totag = -1
        ksr = self
        self.pv = types.SimpleNamespace(get=lambda n: ksr.vars.get(n), sets=ksr._set, seti=ksr._set)
        self.rr = types.SimpleNamespace(add_rr_param=self.rr_params.append)
        self.siputils = types.SimpleNamespace(has_totag=lambda: ksr.totag)
        self.err = self.errors.append

    def _set(self, name, value):
        self.vars[name] = value


@pytest.fixture
def ksr(monkeypatch):
    fake = FakeKSR()
    monkeypatch.setitem(sys.modules, "KSR", fake)
    monkeypatch.delitem(sys.modules, "kemi.instrument", raising=False)
    fake.instrument = importlib.import_module("kemi.instrument")
    yield fake
    metrics.set_error_log(None)
    sys.modules.pop("kemi.instrument", None)


def test_instrument_follows_a_call_across_routes(ksr, monkeypatch):
    inst = ksr.instrument
    clock = iter([100.0, 101.5, 104.0])
    # instrument's own clock only: patching the time module itself would also feed this clock
    # to other threads of the process (a test stack's supervisor under pytest-xdist)
    monkeypatch.setattr(inst, "time", types.SimpleNamespace(monotonic=lambda: next(clock), time=time.time))
    answered = sample("kemi_calls_total", kind="hunt", outcome="answered", code="200")
    setup_sum = sample("kemi_call_setup_seconds_sum", kind="hunt", outcome="answered")
    ring_sum = sample("kemi_call_ring_seconds_sum", kind="hunt", outcome="answered")

    inst.invite_received()                                                  # t = 100
    inst.call_started(RingPlan("8008001", "service", (), group="sales"), DIRECTORY)
    assert ksr.rr_params == [";kl=hsales"]
    ksr.vars.update({"$rs": 180, "$avp(hunt_i)": 1})
    inst.on_reply()                                                         # ringing at 101.5
    ksr.vars["$rs"] = 200
    inst.on_reply()                                                         # answered at 104
    inst.on_reply()                                                         # a retransmitted 200: once only
    cancelled = sample("kemi_calls_total", kind="hunt", outcome="cancelled", code="487")
    inst.call_ended(487)                                                    # too late: already counted
    assert sample("kemi_calls_total", kind="hunt", outcome="cancelled", code="487") == cancelled

    assert sample("kemi_calls_total", kind="hunt", outcome="answered", code="200") == answered + 1
    assert sample("kemi_call_setup_seconds_sum", kind="hunt", outcome="answered") == pytest.approx(setup_sum + 4)
    assert sample("kemi_call_ring_seconds_sum", kind="hunt", outcome="answered") == pytest.approx(ring_sum + 2.5)


def test_instrument_ignores_requests_it_did_not_start(ksr):
    inst = ksr.instrument
    before = sample("kemi_calls_total", kind="none", outcome="answered", code="200")
    ksr.vars["$rs"] = 200                       # the 200 of a re-INVITE: no kemi_t0 in its transaction
    inst.on_reply()
    inst.call_ended(500)
    assert sample("kemi_calls_total", kind="none", outcome="answered", code="200") == before


def test_instrument_reject_and_error_paths(ksr):
    inst = ksr.instrument
    rejected = sample("kemi_calls_total", kind="none", outcome="rejected", code="404")
    inst.invite_received()
    inst.call_ended(404)                        # a Reject plan: never seized, kind 'none'
    assert sample("kemi_calls_total", kind="none", outcome="rejected", code="404") == rejected + 1

    errors = sample("kemi_handler_errors_total", route="hunt_failure")
    failed = sample("kemi_calls_total", kind="trunk", outcome="failed", code="500")
    ksr.vars.clear()
    ksr.vars["$rm"] = "INVITE"
    inst.invite_received()
    inst.call_started(TrunkPlan("4455", (TrunkStep(4, "sip:4455@192.0.2.4"),)), DIRECTORY, fresh=False)
    assert ksr.rr_params == []                  # not from the request route: no Record-Route param
    inst.handler_error("hunt failure route")
    assert sample("kemi_handler_errors_total", route="hunt_failure") == errors + 1
    assert sample("kemi_calls_total", kind="trunk", outcome="failed", code="500") == failed + 1
    inst.handler_error("reply route", replied=False)      # the call goes on
    assert sample("kemi_handler_errors_total", route="reply") >= 1


def test_instrument_reads_rtpengine_quality_and_the_record_route_label(ksr):
    inst = ksr.instrument
    ksr.vars.update({"$route_uri": "sip:127.0.0.1:5060;lr;ftag=abc;kl=qhelp-desk.2;vsf=xyz",
                     "$avp(mos_average)": "4.2", "$avp(mos_average_jitter)": 8,
                     "$avp(mos_average_packetloss)": 1, "$avp(mos_average_roundtrip)": 30000})
    assert inst.dialog_label() == ("queue", "help-desk.2")
    count = sample("kemi_call_mos_count", kind="queue", name="help-desk.2")
    inst.call_quality()
    assert sample("kemi_call_mos_count", kind="queue", name="help-desk.2") == count + 1
    ksr.vars["$route_uri"] = "sip:127.0.0.1;lr;kl=d"
    assert inst.dialog_label() == ("direct", "none")
    ksr.vars["$route_uri"] = None
    assert inst.dialog_label() == ("none", "none")


def test_instrument_never_raises_when_ksr_does(ksr):
    inst = ksr.instrument

    def boom(*_a):
        raise RuntimeError("KSR is gone")
    ksr.pv.get = ksr.pv.sets = ksr.pv.seti = boom
    ksr.rr.add_rr_param = boom
    for call in (inst.invite_received, inst.on_reply, inst.call_quality, lambda: inst.call_ended(200),
                 lambda: inst.call_started(Reject(404, "x"), None), lambda: inst.handler_error("request route"),
                 lambda: inst.auth_failure("wrong_password"), lambda: inst.registration(True)):
        call()


# ------------------------------------------------------------------ tools/exporter.py

def test_exporter_parses_kamailio_statistics():
    from tools.exporter import STAT_RE
    text = ("usrloc:location_contacts = 7\nusrloc:location_users = 5\ndialog:active_dialogs = 2\n"
            "shmem:real_used_size = 3139056\n  tmx:active_transactions = 0\nnot a stat\n")
    stats = {k: float(v) for k, v in STAT_RE.findall(text)}
    assert {metrics.KAMAILIO_STATS[k]: stats.get(metrics.KAMAILIO_STATS[k]) for k in
            ("registered_contacts", "registered_users", "calls_active", "kamailio_transactions_active")} == {
        "usrloc:location_contacts": 7, "usrloc:location_users": 5, "dialog:active_dialogs": 2,
        "tmx:active_transactions": 0}


def test_exporter_probes_report_down_components(tmp_path):
    from kemi.config import Settings
    from tools.exporter import ProbeCollector, registry
    dead = Settings(rtpengine_ng="127.0.0.1:9", pg_port=9, var_dir=str(tmp_path))
    values = {f.name: f.samples[0].value for f in ProbeCollector(dead, Path(tmp_path / "none.sock")).collect()}
    assert values["kemi_rtpengine_up"] == 0 and values["kemi_database_up"] == 0 and values["kemi_kamailio_up"] == 0
    assert "kemi_registered_contacts" not in values
    reg = registry(dead, tmp_path, Path(tmp_path / "none.sock"))
    assert reg.get_sample_value("kemi_rtpengine_up") == 0
