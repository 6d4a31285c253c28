"""SIPp phones for the end-to-end tests and the benchmark.

A phone is two SIPp processes: a UAS that listens on its own port and behaves as told
(answer, reject with a code, ring without answering), and a one-shot REGISTER that binds
the number to that port. A call is a UAC that authenticates on 407 and expects a final
reply. Scenario files live in tests/scenarios; @NAME@ placeholders are filled in here
because SIPp does not substitute keys in attributes.
"""
from __future__ import annotations

import itertools
import re
import subprocess
import tempfile
import time
from pathlib import Path

from tools.ports import free_port, udp_block_free

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SIPP = "/usr/bin/sipp"
# SIPp plays this capture (G.711 A-law, 7 s) as the phone's RTP when asked to stream.
RTP_CAPTURE = "/usr/share/sip-tester/g711a.pcap"
RTP_ACTION = f'  <nop><action><exec play_pcap_audio="{RTP_CAPTURE}"/></action></nop>'


def rtp_line(stream: bool) -> str:
    return RTP_ACTION if stream else ""


_media_ports = itertools.count(0)


def media_port() -> int:
    """A base for SIPp's media sockets: it binds base..base+3 (audio, video, RTCP) even if unused."""
    while True:
        base = 20000 + 10 * (next(_media_ports) % 900)
        if udp_block_free(base):
            return base


def render(template: str, workdir: Path, setup: str = "call_setup.part", **values) -> Path:
    text = (SCENARIOS / template).read_text()
    text = text.replace("@CALL_SETUP@", (SCENARIOS / setup).read_text())
    values = {"rtp": "", "extra_headers": "", **values}   # optional parts, empty unless asked for
    for key, value in values.items():
        text = text.replace(f"@{key.upper()}@", str(value))
    leftover = re.findall(r"@[A-Z_]+@", text)
    assert not leftover, f"{template}: unfilled {leftover}"
    path = Path(tempfile.mkstemp(suffix="-" + template, dir=workdir)[1])
    path.write_text(text)
    return path


class Sipp:
    """One SIPp process with its message trace kept for assertions."""

    def __init__(self, scenario: Path, args: list[str], workdir: Path, name: str):
        self.name = name
        self.trace = workdir / f"{name}-{time.monotonic_ns()}.msg"
        self.errors = self.trace.with_suffix(".err")
        self.cmd = [SIPP, "-sf", str(scenario), "-nostdin",
                    "-trace_msg", "-message_file", str(self.trace),
                    "-trace_err", "-error_file", str(self.errors), *args]
        if "-i" not in args:
            self.cmd += ["-i", "127.0.0.1"]
        if "-m" not in args:
            self.cmd += ["-m", "1"]
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return -1

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def messages(self) -> str:
        return self.trace.read_text(errors="replace") if self.trace.exists() else ""

    def received(self, start_line: str) -> list[str]:
        """Received messages whose first line starts with `start_line`, e.g. 'INVITE' or 'SIP/2.0 486'."""
        out = []
        for block in re.split(r"^-{10,} .*$", self.messages(), flags=re.M):
            head, _, body = block.lstrip("\n").partition("\n")
            if "message received" in head and body.lstrip().startswith(start_line):
                out.append(body.strip().replace("\r", ""))
        return out

    def explain(self) -> str:
        err = self.errors.read_text(errors="replace") if self.errors.exists() else ""
        return f"{self.name}: {' '.join(self.cmd)}\n--- errors ---\n{err[-3000:]}\n--- trace {self.trace} ---\n{self.messages()[-4000:]}"


class Phone:
    """A registered SIP phone with one behaviour for the next call."""

    def __init__(self, proxy, number: str, password: str, workdir: Path, behaviour: str = "answer",
                 ring_ms: int = 200, code: int = 486, phrase: str = "Busy Here", ip: str = "127.0.0.1",
                 calls: int = 1, rtp: bool = False):
        self.proxy, self.number, self.password, self.workdir = proxy, number, password, workdir
        self.ip = ip
        self.port = free_port()
        if behaviour == "answer":
            scenario = render("phone_answer.xml", workdir, ring_ms=ring_ms, rtp=rtp_line(rtp))
        elif behaviour == "hold":      # answers, then accepts the caller's hold re-INVITE
            scenario = render("phone_hold.xml", workdir, ring_ms=ring_ms, rtp=rtp_line(rtp))
        elif behaviour == "reject":
            scenario = render("phone_reject.xml", workdir, code=code, phrase=phrase)
        elif behaviour == "noanswer":
            scenario = render("phone_noanswer.xml", workdir)
        else:
            raise ValueError(behaviour)
        self.uas = Sipp(scenario, ["-i", ip, "-p", str(self.port), "-mp", str(media_port()), "-m", str(calls)],
                        workdir, f"phone-{number}-{behaviour}")

    def register(self, expect: int = 200, auth_user: str | None = None, password: str | None = None,
                 expires: int = 300) -> Sipp:
        reg = Sipp(render("register.xml", self.workdir, expect=expect),
                   [f"{self.proxy[0]}:{self.proxy[1]}", "-p", str(free_port()), "-s", self.number,
                    "-au", auth_user or self.number, "-ap", password or self.password,
                    "-key", "contact_port", str(self.port), "-key", "expires", str(expires),
                    "-timeout", "10s", "-timeout_error"],
                   self.workdir, f"register-{self.number}")
        reg.wait(15)
        return reg

    def invites(self) -> list[str]:
        return self.uas.received("INVITE")

    def stop(self) -> None:
        self.uas.stop()


def call(proxy, number: str, password: str | None, dial: str, workdir: Path, expect: int = 200,
         hold_ms: int = 200, cancel_after_ms: int | None = None, from_user: str | None = None,
         transport: str = "u1", timeout: float = 60, headers: str = "", ip: str = "127.0.0.1",
         calls: int = 1, rtp: bool = False, hold: bool = False) -> Sipp:
    """Place calls one after another and wait for them to end; the returned Sipp has exit
    code and trace. password=None: a trunk calling (no credentials, from `ip`)."""
    if cancel_after_ms is not None:
        ending = "cancel"
    elif expect == 200:
        ending = "hold" if hold else "answered"
    else:
        ending = "rejected"
    extra = "".join(f"\n      {h}" for h in headers.splitlines() if h.strip())
    scenario = render(f"call_{ending}.xml", workdir, setup="call_setup.part" if password else "trunk_setup.part",
                      expect=expect, hold_ms=hold_ms, cancel_ms=cancel_after_ms or 0, extra_headers=extra,
                      rtp=rtp_line(rtp))
    auth = ["-au", number, "-ap", password] if password else []
    proc = Sipp(scenario, [f"{proxy[0]}:{proxy[1]}", "-i", ip, "-p", str(free_port()), "-mp", str(media_port()),
                           "-s", from_user or number, *auth, "-m", str(calls), "-l", "1",
                           "-key", "dial", dial, "-t", transport,
                           "-timeout", f"{int(timeout)}s", "-timeout_error"],
                workdir, f"call-{number}-{dial}")
    proc.wait(timeout + 5)
    return proc


def listen(proxy, number: str, password: str, agent: str, workdir: Path, ports: tuple[int, int],
           hold_ms: int = 3000) -> Sipp:
    """A supervisor listens in on `agent` (4#), receiving the two sides on `ports`."""
    scenario = render("listen.xml", workdir, port_a=ports[0], port_b=ports[1], hold_ms=hold_ms)
    proc = Sipp(scenario, [f"{proxy[0]}:{proxy[1]}", "-p", str(free_port()), "-mp", str(media_port()),
                           "-s", number, "-au", number, "-ap", password, "-key", "dial", f"4%23{agent}",
                           "-timeout", "30s", "-timeout_error"], workdir, f"listen-{number}-{agent}")
    proc.wait(35)
    return proc
