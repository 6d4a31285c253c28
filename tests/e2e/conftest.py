"""One real stack (PostgreSQL, rtpengine, Kamailio) for the end-to-end tests, on free ports
in its own directory, so it never collides with `make run`. Each test provisions its own
numbers, so tests do not see each other's registrations."""
from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from kemi.config import ROOT, Settings
from tests.e2e import sipp
from tools.stack import Stack

_numbers = itertools.count(1)


class Proxy:
    def __init__(self, settings: Settings, stack: Stack, workdir: Path):
        self.settings = settings
        self.stack = stack
        self.workdir = workdir
        self.address = (settings.sip_address, settings.sip_port)
        self.phones: list[sipp.Phone] = []

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.settings.to_env()}

    def kemictl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run([str(ROOT / "kemictl"), *args], input=stdin, capture_output=True, text=True,
                             env=self.env(), timeout=30)
        if check and out.returncode != 0:
            raise AssertionError(f"kemictl {' '.join(args)} failed ({out.returncode}): {out.stderr}")
        return out

    def subscriber(self, password: str = "secret-pass-1") -> tuple[str, str]:
        number = f"5{os.getpid() % 100:02d}{next(_numbers):05d}"
        self.kemictl("subscriber", "add", number, "--password", password)
        return number, password

    def phone(self, number: str, password: str, behaviour: str = "answer", register: bool = True, **kw) -> sipp.Phone:
        phone = sipp.Phone(self.address, number, password, self.workdir, behaviour, **kw)
        self.phones.append(phone)
        if register:
            reg = phone.register()
            assert reg.proc.returncode == 0, reg.explain()
        return phone

    def call(self, number: str, password: str, dial: str, **kw) -> sipp.Sipp:
        return sipp.call(self.address, number, password, dial, self.workdir, **kw)

    def logs(self) -> str:
        return (f"kamailio log: {self.stack.kamailio.log}\nrtpengine log: {self.stack.rtpengine.log}\n"
                f"media log: {self.stack.media.log}\nSIPp traces: {self.workdir}")


@pytest.fixture(scope="session")
def proxy():
    base = Path(tempfile.mkdtemp(prefix="kemi-e2e-"))
    workdir = base / "sipp"
    workdir.mkdir()
    # Below the ephemeral range the SIP and SIPp ports come from (32768+), and below SIPp's
    # media ports (20000+): rtpengine must never take the port Kamailio listens on.
    rtp_base = 10000 + (os.getpid() % 45) * 200
    settings = Settings(sip_port=sipp.free_port(), pg_port=sipp.free_port(),
                        rtpengine_ng=f"127.0.0.1:{sipp.free_port()}",
                        rtpengine_http=f"127.0.0.1:{sipp.free_port()}", metrics_port=sipp.free_port(),
                        rtp_port_min=rtp_base, rtp_port_max=rtp_base + 199,
                        ring_timeout=15, children=4, var_dir=str(base),
                        flow_clock_file=str(base / "flow_clock"), smtp_port=sipp.free_port(),  # flows:
                        media_sip=f"127.0.0.1:{sipp.free_port()}",
                        launch_sms_url=f"http://127.0.0.1:{sipp.free_port()}/sms?to={{to}}",   # launcher
                        launch_sms_token="sms-gateway-token")
    stack = Stack(settings, durable=False)
    try:
        stack.start()
    except Exception:
        stack.stop()
        raise
    proxy = Proxy(settings, stack, workdir)
    print(f"\n{proxy.logs()}")
    yield proxy
    for phone in proxy.phones:
        phone.stop()
    stack.stop()
    if stack.postgres:
        stack.postgres.remove()  # its cluster lives under /var/lib/kemi (tools/pgdir.py)


@pytest.fixture(autouse=True)
def stop_phones(request, proxy):
    """Phones live for one test; on failure, say where the logs are."""
    yield
    for phone in proxy.phones:
        phone.stop()
    proxy.phones.clear()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(proxy.logs())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
