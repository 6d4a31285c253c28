"""The flow helper: HTTP and email for call flows, outside Kamailio's SIP workers.

Workers send it one UDP datagram per job (JSON, with the token it published) and never
wait for it. Jobs:
  get / route   an HTTP GET for a suspended call (caller name lookup, HTTP routing); the
                answer goes back as a SIP MESSAGE from this process's own port, carrying the
                token, and the worker that receives it resumes the call (kemi/flow_engine.py).
                tm's timer on the suspended call bounds the wait even if this process is gone.
  notify        a JSON POST of the call's facts (fire-and-forget, one retry)
  email         a message through the configured SMTP server, retried with back-off
It publishes `{"port", "token", "pid"}` in var_dir/run/flow_helper.json (mode 0600).
Bounded: at most MAX_PENDING jobs in flight (more are answered `error` / dropped, counted
in the log), response bodies read up to 4 kB, only http/https URLs.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import smtplib
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

from kemi.config import Settings
from tools.stack import Process

MAX_PENDING = 1000
MAX_BODY = 4096
EMAIL_RETRIES = (1.0, 4.0, 10.0)      # seconds before each retry
NOTIFY_TIMEOUT = 5.0


def info_path(settings: Settings) -> Path:
    return Path(settings.var_dir) / "run" / "flow_helper.json"


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} flow_helper: {msg}", flush=True)


class Helper:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.token = secrets.token_hex(16)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", settings.flow_helper_port))
        self.port = self.sock.getsockname()[1]
        self.pool = ThreadPoolExecutor(max_workers=16)
        self.pending = 0
        self.lock = threading.Lock()
        self.stopping = False

    def publish(self) -> None:
        path = info_path(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"port": self.port, "token": self.token, "pid": os.getpid()}, out)
        os.replace(tmp, path)

    def serve(self) -> None:
        self.sock.settimeout(0.5)
        while not self.stopping:
            try:
                data, _addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                break
            if data.startswith(b"SIP/2.0"):
                continue                      # Kamailio's 200 to our MESSAGE
            try:
                job = json.loads(data)
                if not isinstance(job, dict) or not secrets.compare_digest(str(job.get("auth", "")), self.token):
                    raise ValueError("bad token")
            except ValueError as err:
                log(f"dropped a datagram: {err}")
                continue
            with self.lock:
                if self.pending >= MAX_PENDING:
                    log(f"overloaded: dropped a {job.get('kind')} job")
                    if job.get("kind") in ("get", "route"):
                        self.answer(str(job.get("txn", "")), False, "")
                    continue
                self.pending += 1
            self.pool.submit(self.run_job, job)

    def run_job(self, job: dict) -> None:
        try:
            kind = job.get("kind")
            if kind in ("get", "route"):
                ok, body = http_get(str(job.get("url", "")), job.get("header"), job.get("token"),
                                    min(max(float(job.get("timeout", 1.5)), 0.1), 10.0))
                self.answer(str(job.get("txn", "")), ok, body)
            elif kind == "notify":
                notify(str(job.get("url", "")), job.get("header"), job.get("token"), job.get("facts", {}))
            elif kind == "email":
                self.email(job.get("to", []), str(job.get("subject", "Missed call")), job.get("facts", {}))
            else:
                log(f"unknown job kind {kind!r}")
        except Exception as err:   # a job never takes the helper down
            log(f"job {job.get('kind')} failed: {err!r}")
        finally:
            with self.lock:
                self.pending -= 1

    def answer(self, txn: str, ok: bool, body: str) -> None:
        s = self.settings
        tag = uuid.uuid4().hex[:12]
        content = f"{txn}\n{'1' if ok else '0'}|{body}".encode()
        head = (f"MESSAGE sip:kemi-flow-helper@{s.sip_address}:{s.sip_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{tag};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:flow-helper@127.0.0.1>;tag={tag}\r\n"
                f"To: <sip:kemi-flow-helper@{s.sip_address}>\r\nCall-ID: fh-{tag}\r\nCSeq: 1 MESSAGE\r\n"
                f"X-Kemi-Token: {self.token}\r\nContent-Type: text/plain\r\nContent-Length: {len(content)}\r\n\r\n")
        self.sock.sendto(head.encode() + content, (s.sip_address, s.sip_port))

    def email(self, to: list, subject: str, facts: dict) -> None:
        s = self.settings
        msg = EmailMessage()
        msg["From"] = s.smtp_from
        msg["To"] = ", ".join(map(str, to))
        msg["Subject"] = subject
        msg.set_content("\n".join(f"{k}: {v}" for k, v in facts.items()) + "\n")
        for attempt, pause in enumerate((0.0,) + EMAIL_RETRIES):
            if pause:
                time.sleep(pause)
            if self.stopping:
                return
            try:
                send_mail(s, msg)
                log(f"email to {msg['To']} sent (attempt {attempt + 1})")
                return
            except (OSError, smtplib.SMTPException) as err:
                log(f"email to {msg['To']} failed (attempt {attempt + 1}): {err!r}")
        log(f"email to {msg['To']} given up after {len(EMAIL_RETRIES) + 1} attempts")

    def stop(self, *_args) -> None:
        self.stopping = True


def send_mail(settings: Settings, msg: EmailMessage) -> None:
    """One attempt through the configured SMTP server (KEMI_SMTP_*): the mail path of the
    flows' email nodes and of voicemail by email (media/mailer.py). Raises OSError or
    smtplib.SMTPException; the callers retry."""
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        smtp.send_message(msg)


def _request(url: str, header, token, data: bytes | None = None) -> urllib.request.Request:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if header and token:
        req.add_header(str(header), str(token))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    return req


def http_get(url: str, header, token, timeout: float) -> tuple[bool, str]:
    """(ok, body): ok only for a 2xx answer within the timeout."""
    deadline = time.monotonic() + timeout
    try:
        with urllib.request.urlopen(_request(url, header, token), timeout=timeout) as resp:
            body = resp.read(MAX_BODY)
            if time.monotonic() > deadline:
                return False, ""
            return 200 <= resp.status < 300, body.decode("utf-8", errors="replace")
    except (OSError, ValueError, urllib.error.URLError):
        return False, ""


def notify(url: str, header, token, facts: dict) -> None:
    data = json.dumps(facts).encode()
    for attempt in range(2):
        try:
            with urllib.request.urlopen(_request(url, header, token, data), timeout=NOTIFY_TIMEOUT) as resp:
                resp.read(MAX_BODY)
                return
        except (OSError, ValueError, urllib.error.URLError) as err:
            log(f"notification to {url} failed (attempt {attempt + 1}): {err!r}")


class FlowHelper(Process):
    """tools/stack.py's process spec for the helper; ready once it published its port."""

    name = "flow_helper"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tools.flow_helper"]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.settings.to_env()}

    def start(self, timeout: float = 20, inherit_output: bool = False) -> None:
        info_path(self.settings).unlink(missing_ok=True)
        super().start(timeout, inherit_output)

    def ready(self) -> bool:
        try:
            return json.loads(info_path(self.settings).read_text())["pid"] == self.proc.pid
        except (OSError, ValueError, KeyError, AttributeError):
            return False


def main() -> int:
    helper = Helper(Settings.from_env())
    signal.signal(signal.SIGTERM, helper.stop)
    signal.signal(signal.SIGINT, helper.stop)
    helper.publish()
    log(f"listening on 127.0.0.1:{helper.port}")
    helper.serve()
    helper.pool.shutdown(wait=False, cancel_futures=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
