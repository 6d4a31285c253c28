"""tools/flow_helper.py without Kamailio: email retries against a local SMTP server that
comes up late, HTTP GET bounds, refusal of non-http URLs and of datagrams without the token."""
from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from kemi.config import Settings
from tools import flow_helper
from tools.ports import free_port


def wait_until(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content.decode())
        return "250 OK"


@pytest.fixture
def helper(tmp_path):
    h = flow_helper.Helper(Settings(var_dir=str(tmp_path), smtp_port=free_port(), sip_port=free_port()))
    yield h
    h.stop()
    h.sock.close()
    h.pool.shutdown(wait=False)


def test_email_is_retried_until_the_server_is_up(helper, monkeypatch):
    monkeypatch.setattr(flow_helper, "EMAIL_RETRIES", (0.3, 0.3, 0.3))
    attempts = []
    real_smtp = flow_helper.smtplib.SMTP

    def counting_smtp(*args, **kw):
        attempts.append(time.monotonic())
        return real_smtp(*args, **kw)
    monkeypatch.setattr(flow_helper.smtplib, "SMTP", counting_smtp)
    inbox = Inbox()
    sender = threading.Thread(target=helper.email, args=(["lead@example.com"], "Missed call",
                                                         {"caller": "0301234567", "dialled": "4930"}))
    sender.start()
    wait_until(lambda: attempts)                 # the first attempt found no server
    smtp = Controller(inbox, hostname="127.0.0.1", port=helper.settings.smtp_port)
    smtp.start()
    try:
        sender.join(10)
        assert len(inbox.messages) == 1 and len(attempts) >= 2
        assert "Subject: Missed call" in inbox.messages[0] and "caller: 0301234567" in inbox.messages[0]
    finally:
        smtp.stop()


def test_email_gives_up_after_the_retries(helper, monkeypatch):
    monkeypatch.setattr(flow_helper, "EMAIL_RETRIES", (0.05, 0.05))
    started = time.monotonic()
    helper.email(["lead@example.com"], "x", {})      # nobody listens: three attempts, then it returns
    assert time.monotonic() - started < 5


class Slow(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(1.0)
        body = b"Alice"
        self.send_response(500 if self.path == "/broken" else 200)
        self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass                    # the client gave up (timeout): expected


@pytest.fixture
def web():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path,timeout,expected", [
    ("/name", 1.0, (True, "Alice")),
    ("/broken", 1.0, (False, "Alice")),
    ("/slow", 0.2, (False, "")),
])
def test_http_get_answers(web, path, timeout, expected):
    ok, body = flow_helper.http_get(web + path, "Authorization", "Bearer x", timeout)
    assert ok is expected[0]
    if ok:
        assert body == expected[1]


def test_only_http_urls():
    assert flow_helper.http_get("file:///etc/passwd", None, None, 0.5) == (False, "")
    with pytest.raises(ValueError):
        flow_helper._request("gopher://x/", None, None)


def test_datagrams_without_the_token_are_dropped(helper, monkeypatch):
    jobs = []
    monkeypatch.setattr(helper, "run_job", lambda job: jobs.append(job))
    server = threading.Thread(target=helper.serve, daemon=True)
    server.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(json.dumps({"kind": "email", "auth": "guess"}).encode(), ("127.0.0.1", helper.port))
        sock.sendto(b"not json", ("127.0.0.1", helper.port))
        sock.sendto(json.dumps({"kind": "email", "auth": helper.token}).encode(), ("127.0.0.1", helper.port))
    wait_until(lambda: jobs)        # one serving thread, in order: the two before were refused
    assert [j["auth"] for j in jobs] == [helper.token]
