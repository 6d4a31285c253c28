"""Monitoring end to end (issue 5, sections 3-4): the test stack's exporter and rtpengine are
scraped by a real Prometheus (Debian's /usr/bin/prometheus) while SIPp phones place calls,
and every Grafana panel query and every alert expression in monitoring/ is evaluated
against it through Prometheus' HTTP API.

What "returns data" means here, honestly:
- dashboard queries are evaluated as written ($__rate_interval -> 2m) and must return at
  least one sample;
- alert expressions are evaluated twice: as written (must be valid PromQL; they may return
  nothing, which means "not firing"), and with every comparison turned into its `bool`
  form (`x > 0.05` -> `x > bool 0.05`), which keeps every series the alert looks at instead
  of filtering them, and must return at least one sample. Prometheus itself loads the same
  rule file and must report every rule healthy.

A call with media is streamed by a small RTP/RTCP endpoint pair in this file (G.711 with
sender and receiver reports), so rtpengine computes a real MOS that Kamailio reads at BYE.
"""
from __future__ import annotations

import itertools
import json
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from kemi.config import ROOT
from rtpengine.ng import NgClient
from tests.e2e import sipp

MONITORING = ROOT / "monitoring"
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
RATE_INTERVAL = "2m"
_ids = itertools.count(1)
_ips = itertools.count(1)


def explain(*parts) -> str:
    return "\n".join(p.explain() if hasattr(p, "explain") else str(p) for p in parts)


# ------------------------------------------------------------------ what monitoring/ contains

def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title / refId, expr) of every target of every panel, rows included."""
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    out = []

    def walk(panels):
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                out.append((f"{panel['title']} [{target['refId']}]", target["expr"]))
    walk(dash["panels"])
    return out


def alert_names() -> list[str]:
    """Every alert of alerts.yml; their expressions are taken from Prometheus' loaded rules."""
    return re.findall(r"^\s*- alert:\s*(\S+)", (MONITORING / "alerts.yml").read_text(), re.M)


def grafana(expr: str) -> str:
    return (expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__interval", "15s")
            .replace("$__range", "5m"))


def bool_form(expr: str) -> str:
    """Every comparison as its bool form: returns every series the alert looks at, 0 or 1."""
    return re.sub(r"\s(==|!=|>=|<=|>|<)\s", r" \1 bool ", expr)


# ------------------------------------------------------------------ RTP/RTCP endpoints

def _ntp() -> tuple[int, int]:
    now = time.time() + 2208988800
    return int(now) & 0xFFFFFFFF, int((now % 1) * 2**32)


class MediaEndpoint:
    """One side of a call's media: G.711 RTP every 20 ms to rtpengine, and RTCP sender
    reports with a reception block about the other side (jitter, loss, LSR/DLSR for the
    round trip), which is what rtpengine needs to compute a MOS."""

    def __init__(self, rtpengine_port: int, ssrc: int, loss_fraction: int = 0, jitter_units: int = 24):
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for sock in (self.rtp, self.rtcp):
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
        self.port, self.ssrc = rtpengine_port, ssrc
        self.loss_fraction, self.jitter_units = loss_fraction, jitter_units
        self.seq = self.sent = 0
        self.sr_middle = 0
        self.sr_at = 0.0

    def send_rtp(self) -> None:
        header = struct.pack("!BBHII", 0x80, 0, self.seq & 0xFFFF, (self.seq * 160) & 0xFFFFFFFF, self.ssrc)
        self.rtp.sendto(header + b"\xff" * 160, ("127.0.0.1", self.port))
        self.seq += 1
        self.sent += 1

    def send_report(self, peer: "MediaEndpoint") -> None:
        msw, lsw = _ntp()
        dlsr = int((time.time() - peer.sr_at) * 65536) if peer.sr_at else 0
        report = struct.pack("!BBHIIIIII", 0x81, 200, 12, self.ssrc, msw, lsw, self.seq * 160, self.sent,
                             self.sent * 160)
        report += struct.pack("!IIIIII", peer.ssrc, self.loss_fraction << 24, peer.seq, self.jitter_units,
                              peer.sr_middle, dlsr)
        self.rtcp.sendto(report, ("127.0.0.1", self.port + 1))
        self.sr_middle, self.sr_at = ((msw & 0xFFFF) << 16) | (lsw >> 16), time.time()

    def drain(self) -> None:
        for sock in (self.rtp, self.rtcp):
            try:
                while sock.recv(2048):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


def rtpengine_ports(ng: NgClient, known: set[str]) -> list[int] | None:
    """rtpengine's local media port of each side of the one new call, once both are known."""
    for call_id in ng.request("list", limit=1000).get("calls", []):
        if call_id in known:
            continue
        ports = []
        for tag in ng.request("query", **{"call-id": call_id}).get("tags", {}).values():
            for media in tag.get("medias", []):
                ports += [s["local port"] for s in media.get("streams", [])[:1] if s.get("local port")]
        if len(ports) == 2:
            return ports
    return None


def call_with_media(proxy, caller: str, password: str, dial: str, seconds: float = 4.5):
    """An answered call that streams RTP/RTCP through rtpengine both ways until its BYE."""
    ng = NgClient(proxy.settings.rtpengine_ng, timeout=1)
    known = set(ng.request("list", limit=1000).get("calls", []))
    result = {}
    caller_thread = threading.Thread(target=lambda: result.update(
        call=proxy.call(caller, password, dial, hold_ms=int(seconds * 1000))))
    caller_thread.start()
    ports, deadline = None, time.monotonic() + 10
    while ports is None and caller_thread.is_alive() and time.monotonic() < deadline:
        ports = rtpengine_ports(ng, known)
        time.sleep(0.05)
    packets = 0
    if ports:
        a = MediaEndpoint(ports[0], 0x4B454D31, loss_fraction=0, jitter_units=40)
        b = MediaEndpoint(ports[1], 0x4B454D32, loss_fraction=13, jitter_units=120)
        try:
            while caller_thread.is_alive():
                a.send_rtp()
                b.send_rtp()
                if packets % 25 == 5:
                    a.send_report(b)
                if packets % 25 == 15:
                    b.send_report(a)
                a.drain()
                b.drain()
                packets += 1
                time.sleep(0.02)
        finally:
            a.close()
            b.close()
    caller_thread.join()
    return result.get("call"), packets


# ------------------------------------------------------------------ Prometheus

class Prometheus:
    def __init__(self, workdir: Path, targets: dict[str, str]):
        self.port = sipp.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = workdir / f"prometheus-{self.port}"
        self.dir.mkdir()
        shutil.copy(MONITORING / "alerts.yml", self.dir / "alerts.yml")
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
                  "rule_files": ["alerts.yml"],
                  "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                                     for job, target in targets.items()]}
        (self.dir / "prometheus.yml").write_text(json.dumps(config, indent=2))   # JSON is YAML
        self.log = self.dir / "prometheus.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
                 "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def api(self, path: str, **params):
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:      # 400/422: invalid query, with Prometheus' reason
            body = err.read()
            try:
                return json.loads(body)
            except ValueError:                     # 503 "Service Unavailable" while it starts
                return {"status": "unavailable", "error": body[:200].decode(errors="replace")}

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def value(self, expr: str) -> float | None:
        out = self.query(expr)
        result = out.get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if out.get("status") == "success" and result else None

    def wait(self, what: str, check, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus: {what} not seen after {timeout}s; log {self.log}")

    def scraped_since(self, moment: float) -> bool:
        """Both targets were scraped successfully after `moment` (Unix time)."""
        result = self.query("timestamp(up == 1)").get("data", {}).get("result", [])
        return len(result) == 2 and all(float(r["value"][1]) > moment for r in result)

    def rules(self) -> dict[str, dict]:
        return {r["name"]: r for g in self.api("rules")["data"]["groups"] for r in g["rules"]}

    def evaluations(self) -> dict[str, str]:
        return {g["name"]: g.get("lastEvaluation", "") for g in self.api("rules")["data"]["groups"]}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def exporter_samples(url: str) -> dict[str, float]:
    """'name{labels}' -> value, as the exporter serves them now."""
    from prometheus_client.parser import text_string_to_metric_families
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def total(samples: dict[str, float], metric: str, **labels) -> float:
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for k, v in samples.items() if k.split("{", 1)[0] == metric and all(w in k for w in want))


# ------------------------------------------------------------------ the scene
# Own names (mg*, mt*, mra*, mq*), carrier addresses (127.0.1.*) and route prefixes (39xx),
# so nothing here collides with what other test modules provision on the same stack.

def hunt_group(proxy, members: list[str], ring_timeout: int = 2) -> tuple[str, str]:
    """A chain of `members` in order with one service number starting at the first."""
    name, service = f"mg{next(_ids)}", f"9{members[0][1:]}9"
    rows = [f"{m}\t{members[i + 1] if i + 1 < len(members) else '0000'}\t"
            f"{service if i == 0 else '1'}\t{members[0] if i == 0 else '1'}" for i, m in enumerate(members)]
    proxy.kemictl("hunt", "import", name, "-", "--ring-timeout", str(ring_timeout), stdin="\n".join(rows) + "\n")
    return name, service


def carrier(proxy, behaviour: str, code: int = 503) -> tuple[str, str]:
    """A trunk at its own loopback address with a SIPp UAS there (good for two calls), and a
    route prefix of its own. Returns (trunk name, prefix)."""
    name, ip = f"mt{next(_ids)}", f"127.0.1.{next(_ips)}"
    uas = sipp.Phone(proxy.address, name, "", proxy.workdir, behaviour, code=code, phrase="Service Unavailable",
                     ip=ip, calls=2)
    proxy.phones.append(uas)
    proxy.kemictl("trunk", "add", name, "--address", f"{ip}:{uas.port}")
    prefix = f"39{next(_ids):02d}"
    proxy.kemictl("route", "add", prefix, name)
    return name, prefix


class Scene:
    """Destinations of every kind, each phone good for both rounds of calls."""

    def __init__(self, proxy):
        self.proxy = proxy
        p = proxy
        # a hunt group: busy, no answer (2 s ring timeout), answers -> 3 steps
        members = [p.subscriber() for _ in range(3)]
        self.hunt_group, self.hunt_service = hunt_group(p, [m[0] for m in members])
        self.hunt_phones = [p.phone(*members[0], "reject", code=486, phrase="Busy Here", calls=2),
                            p.phone(*members[1], "noanswer", calls=2),
                            p.phone(*members[2], "answer", calls=2)]
        # a one-member group whose calls carry media (MOS labelled with the group name)
        media_member = p.subscriber()
        self.media_group, self.media_service = hunt_group(p, [media_member[0]])
        self.media_phone = p.phone(*media_member, "answer", calls=2)
        # a phone that is busy: a direct call ends 486
        self.busy_number, busy_pw = p.subscriber()
        self.busy_phone = p.phone(self.busy_number, busy_pw, "reject", code=486, phrase="Busy Here", calls=2)
        # a ring-all group and a queue, one answering member / agent each
        (ra_member, ra_pw), (agent, agent_pw) = p.subscriber(), p.subscriber()
        self.ringall_name, self.ringall_number = f"mra{next(_ids)}", f"7{ra_member[1:]}"
        p.kemictl("ringall", "add", self.ringall_name, self.ringall_number)
        p.kemictl("ringall", "members", self.ringall_name, ra_member)
        self.ringall_phone = p.phone(ra_member, ra_pw, "answer", calls=2)
        self.queue_name, self.queue_number = f"mq{next(_ids)}", f"6{agent[1:]}"
        p.kemictl("queue", "add", self.queue_name, self.queue_number)
        p.kemictl("queue", "agents", self.queue_name, agent)
        self.agent_phone = p.phone(agent, agent_pw, "answer", calls=2)
        # trunks: one answers, one fails with 503 (the caller gets a server failure)
        self.good_trunk, self.good_prefix = carrier(p, "answer")
        self.bad_trunk, self.bad_prefix = carrier(p, "reject", code=503)
        self.caller, self.caller_pw = p.subscriber()
        self.numbers = [m[0] for m in members] + [media_member[0], self.busy_number, ra_member, agent, self.caller]

    def round(self) -> dict[str, object]:
        p, c, pw = self.proxy, self.caller, self.caller_pw
        calls = {}
        calls["media"], calls["media_packets"] = call_with_media(p, c, pw, self.media_service)
        calls["hunt"] = p.call(c, pw, self.hunt_service)
        calls["busy"] = p.call(c, pw, self.busy_number, expect=486)
        calls["ringall"] = p.call(c, pw, self.ringall_number)
        calls["queue"] = p.call(c, pw, self.queue_number)
        calls["trunk"] = p.call(c, pw, self.good_prefix + "5550100")
        calls["trunk_failed"] = p.call(c, pw, self.bad_prefix + "5550100", expect=503)
        return calls


@pytest.fixture(scope="module")
def monitored(proxy):
    """Prometheus scraping the test stack while two rounds of calls go through it."""
    if not Path(PROMETHEUS).exists():
        pytest.skip("Debian's prometheus package is not installed (tools/setup.sh installs it)")
    exporter = proxy.stack.exporter.url
    prom = Prometheus(proxy.workdir, {"kemi": exporter.split("/")[2], "rtpengine": proxy.settings.rtpengine_http})
    try:
        prom.wait("both targets up", lambda: prom.value("count(up == 1)") == 2)
        baseline = exporter_samples(exporter)      # earlier tests of the session used this stack too
        scene = Scene(proxy)
        rounds = []
        for _ in range(2):
            calls = scene.round()
            bad = {k: v for k, v in calls.items() if hasattr(v, "proc") and v.proc.returncode != 0}
            assert not bad, explain(*bad.values(), proxy.logs())
            rounds.append(calls)
            # Prometheus has what the exporter has now (asked, not slept for) ...
            now = exporter_samples(exporter)
            seized, ended = total(now, "kemi_call_seizures_total"), total(now, "kemi_calls_total")
            prom.wait("the round's calls", lambda: prom.value("sum(kemi_call_seizures_total)") == seized
                      and prom.value("sum(kemi_calls_total)") == ended)
            # ... and rtpengine's metrics of the same moment
            moment = time.time()
            prom.wait("a scrape of both targets", lambda: prom.scraped_since(moment))
        # every rule group evaluated again after the last scrape
        before = prom.evaluations()
        prom.wait("an evaluation of every rule group", lambda: all(
            at != before.get(group) for group, at in prom.evaluations().items()))
        yield prom, scene, rounds, exporter, baseline
    finally:
        prom.stop()
        print(f"prometheus log: {prom.log}")


# ------------------------------------------------------------------ tests

def test_promtool_checks_rules_config_and_rule_unit_tests():
    for cmd in ([PROMTOOL, "check", "rules", "alerts.yml"], [PROMTOOL, "check", "config", "prometheus.yml"],
                [PROMTOOL, "test", "rules", "alerts_test.yml"]):
        out = subprocess.run(cmd, cwd=MONITORING, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{' '.join(cmd)}:\n{out.stdout}\n{out.stderr}"
        assert "SUCCESS" in out.stdout + out.stderr


def test_calls_are_counted_with_bounded_labels(monitored):
    prom, scene, rounds, exporter, baseline = monitored
    s = exporter_samples(exporter)

    def new(metric, **labels) -> float:
        return total(s, metric, **labels) - total(baseline, metric, **labels)

    # 7 calls a round, 2 rounds, each counted once, whichever worker saw its replies
    assert new("kemi_call_seizures_total") == 14
    assert new("kemi_calls_total") == 14
    assert all(r["media_packets"] > 100 for r in rounds), "the media call streamed no RTP"
    assert total(s, "kemi_call_seizures_total", kind="hunt", name=scene.media_group) == 2
    assert total(s, "kemi_call_answers_total", kind="ringall", name=scene.ringall_name) == 2
    assert total(s, "kemi_call_answers_total", kind="queue", name=scene.queue_name) == 2
    assert total(s, "kemi_call_seizures_total", kind="trunk", name=scene.bad_trunk) == 2
    assert total(s, "kemi_call_answers_total", kind="trunk", name=scene.bad_trunk) == 0
    assert new("kemi_calls_total", kind="direct", outcome="busy", code="486") == 2
    assert new("kemi_calls_total", kind="trunk", outcome="failed", code="503") == 2
    assert new("kemi_calls_total", outcome="answered", code="200") == 10
    # the hunt rang three members before the answer: steps 3 observed (bucket le=3 grew, le=2 did not)
    assert new("kemi_call_hunt_steps_bucket", kind="hunt", le="3.0") - \
        new("kemi_call_hunt_steps_bucket", kind="hunt", le="2.0") == 2
    assert new("kemi_call_ring_seconds_count", outcome="answered") == 10
    assert new("kemi_call_setup_seconds_count", outcome="busy") == 2
    # rtpengine's end-of-call report, labelled through the Record-Route parameter
    assert total(s, "kemi_call_mos_count", kind="hunt", name=scene.media_group) == 2
    mos = total(s, "kemi_call_mos_sum", kind="hunt", name=scene.media_group) / 2
    assert 1.0 <= mos <= 5.0, mos
    assert total(s, "kemi_call_packet_loss_ratio_count", kind="hunt", name=scene.media_group) == 2
    assert total(s, "kemi_call_jitter_seconds_count", kind="hunt", name=scene.media_group) == 2
    # probes and Kamailio's own statistics
    for probe in ("kemi_rtpengine_up", "kemi_database_up", "kemi_kamailio_up"):
        assert total(s, probe) == 1, probe
    assert total(s, "kemi_registered_contacts") >= 7
    assert new("kemi_registrations_total", result="accepted") == 7
    assert new("kemi_handler_errors_total") == 0
    assert total(s, "kemi_metrics_errors_total") == 0
    # labels never carry a phone number
    text = urllib.request.urlopen(exporter, timeout=10).read().decode()
    leaked = [n for n in scene.numbers if n in text]
    assert not leaked, f"phone numbers in metric labels: {leaked}"


@pytest.mark.parametrize("title,expr", dashboard_queries(), ids=[t for t, _ in dashboard_queries()])
def test_dashboard_query_returns_data(monitored, title, expr):
    prom, *_ = monitored
    out = prom.query(grafana(expr))
    assert out["status"] == "success", f"{title}: invalid PromQL: {out.get('error')}\n{expr}"
    assert out["data"]["result"], f"{title}: no data for\n{grafana(expr)}"


@pytest.mark.parametrize("alert", alert_names())
def test_alert_expression_evaluates(monitored, alert):
    prom, *_ = monitored
    rules = prom.rules()
    assert alert in rules, f"{alert}: not loaded by Prometheus from alerts.yml"
    expr = rules[alert]["query"]
    as_written = prom.query(expr)
    assert as_written["status"] == "success", f"{alert}: invalid PromQL: {as_written.get('error')}"
    truth = prom.query(bool_form(expr))
    assert truth["status"] == "success", f"{alert}: {truth.get('error')}\n{bool_form(expr)}"
    assert truth["data"]["result"], f"{alert}: its inputs have no data:\n{bool_form(expr)}"
    # Prometheus evaluates the same rule itself without errors
    assert rules[alert]["health"] == "ok", f"{alert}: {rules[alert].get('lastError')}"
