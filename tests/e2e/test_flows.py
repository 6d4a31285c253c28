"""Call flows end to end (issue 10): SIPp phones and carriers, a local HTTP server and a
local SMTP server, the flow clock set per test through KEMI_FLOW_CLOCK_FILE."""
from __future__ import annotations

import email
import http.server
import itertools
import json
import socket
import threading
import time
import types
import uuid
from pathlib import Path

import pytest
import yaml
from aiosmtpd.controller import Controller

from tests.e2e.helpers import explain, from_user, header, wait_until
from tests.e2e.sipp import Phone, free_port

_ids = itertools.count(1)
_ips = itertools.count(10)


# ------------------------------------------------------------------ fixtures

@pytest.fixture
def clock(proxy):
    path = Path(proxy.settings.flow_clock_file)

    def set_clock(iso: str) -> None:
        path.write_text(iso)
    yield set_clock
    path.write_text("")


class Web:
    """A local HTTP server: answers per path (status, body, delay) and records requests."""

    def __init__(self):
        self.answers: dict[str, tuple[int, str, float]] = {}
        self.requests: list[dict] = []
        web = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                path = self.path.split("?")[0]
                web.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                     "body": body})
                status, text, delay = web.answers.get(path, (404, "", 0.0))
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(text.encode())))
                    self.end_headers()
                    self.wfile.write(text.encode())
                except OSError:
                    pass

            do_GET = do_POST = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"].split("?")[0] == path)


@pytest.fixture
def web():
    server = Web()
    yield server
    server.server.shutdown()
    server.server.server_close()


def flow_number() -> str:
    return f"49310{next(_ids):05d}"


def import_flow(proxy, number: str, doc: dict) -> None:
    proxy.kemictl("flow", "import", number, "-", stdin=yaml.safe_dump(doc))


def trunk_did(proxy, target: str) -> tuple[str, str]:
    """A carrier at its own loopback address and a DID on it (target: any local number)."""
    name, ip = f"ft{next(_ids)}", f"127.0.1.{next(_ips)}"
    proxy.kemictl("trunk", "add", name, "--address", ip)
    did = f"4950{next(_ids):06d}"
    proxy.kemictl("did", "add", did, name, target)
    return did, ip


# ------------------------------------------------------------------ time routing from a DID

def test_did_time_routing_open_queue_timeout_to_hunt_closed_and_holiday(proxy, clock):
    (idle, _), (member, mpw) = proxy.subscriber(), proxy.subscriber()
    qname, qnum = f"fq{next(_ids)}", f"6{idle[1:]}"
    proxy.kemictl("queue", "add", qname, qnum, "--max-wait", "2")
    proxy.kemictl("queue", "agents", qname, idle)               # logged in, never registered: nobody free
    hname, service = f"fh{next(_ids)}", f"8{member[1:]}"
    proxy.kemictl("hunt", "import", hname, "-", stdin=f"{member}\t0000\t{service}\t{member}\n")
    did, ip = trunk_did(proxy, member)
    import_flow(proxy, did, {
        "name": "sales-line", "timezone": "Europe/Riga", "start": "hours",
        "nodes": {
            "hours": {"type": "time", "hours": {"mon-fri": ["09:00-17:00"]}, "exceptions": [{"date": "2026-12-25"}],
                      "next": {"open": "orders", "closed": "closed", "holiday": "holiday"}},
            "orders": {"type": "queue", "number": qnum, "next": {"timeout": "sales"}},
            "sales": {"type": "hunt", "number": service},
            "closed": {"type": "reject", "code": 480, "reason": "Closed - open Mon-Fri 9-17"},
            "holiday": {"type": "reject", "code": 480, "reason": "Closed for the holidays"},
        }})
    agent = proxy.phone(member, mpw, "answer")

    clock("2026-12-02T10:00:00+02:00")          # Wednesday 10:00 in Riga: open
    call = proxy.call("0301234567", None, did, ip=ip, timeout=30)
    assert call.proc.returncode == 0, explain(call, agent.uas, proxy.logs())
    assert call.received("SIP/2.0 182"), "the caller waited in the queue first"
    assert len(agent.invites()) == 1, "after the queue's timeout the hunt group rang"

    clock("2026-12-02T20:00:00+02:00")          # Wednesday 20:00: closed
    call = proxy.call("0301234567", None, did, ip=ip, expect=480)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert "480 Closed - open Mon-Fri 9-17" in call.received("SIP/2.0 480")[0]

    clock("2026-12-25T10:00:00+02:00")          # a holiday
    call = proxy.call("0301234567", None, did, ip=ip, expect=480)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert "480 Closed for the holidays" in call.received("SIP/2.0 480")[0]
    assert len(agent.invites()) == 1, "closed and holiday calls ring nobody"


def test_prefix_suffix_and_tag_mid_flow(proxy, clock):
    agent, apw = proxy.subscriber()
    did, ip = trunk_did(proxy, agent)
    import_flow(proxy, did, {"start": "hours", "nodes": {
        "hours": {"type": "time", "hours": {"mon-sun": ["00:00-24:00"]}, "next": {"open": "mark", "closed": "mark"}},
        "mark": {"type": "caller", "prefix": "0", "suffix": "77", "display_tag": "[Flow]", "next": "ring"},
        "ring": {"type": "sip", "number": agent}}})
    phone = proxy.phone(agent, apw, "answer")

    call = proxy.call("0301234567", None, did, ip=ip)

    assert call.proc.returncode == 0, explain(call, phone.uas, proxy.logs())
    invite = phone.invites()[0]
    assert from_user(invite) == "0030123456777"
    assert header(invite, "From").startswith('"[Flow] Caller 0301234567"'), invite


# ------------------------------------------------------------------ caller name lookup

def lookup_flow(url: str, agent: str, timeout: float = 0.5) -> dict:
    return {"start": "who", "nodes": {
        "who": {"type": "lookup", "url": url + "?number={caller}", "header": "Authorization", "token": "Bearer t0k",
                "ttl": 60, "timeout": timeout, "next": "ring"},
        "ring": {"type": "sip", "number": agent}}}


@pytest.mark.parametrize("case", ["found", "not_found", "slow", "down"])
def test_caller_name_lookup(proxy, web, case):
    agent, apw = proxy.subscriber()
    caller, cpw = proxy.subscriber()
    number = flow_number()
    if case == "down":
        url = f"http://127.0.0.1:{free_port()}/name"      # nothing listens there
    else:
        url = web.url("/name")
        web.answers["/name"] = {"found": (200, "Alice Example\n", 0.0), "not_found": (404, "", 0.0),
                                "slow": (200, "Too Late", 3.0)}[case]
    import_flow(proxy, number, lookup_flow(url, agent))
    phone = proxy.phone(agent, apw, "answer")

    call = proxy.call(caller, cpw, number)

    assert call.proc.returncode == 0, explain(call, phone.uas, proxy.logs())
    shown = header(phone.invites()[0], "From")
    if case == "found":
        assert shown.startswith('"Alice Example" <sip:' + caller), shown
        request = web.requests[0]
        assert request["path"] == f"/name?number={caller}"
        assert request["headers"].get("Authorization") == "Bearer t0k"
    else:
        assert shown.startswith(f'"Caller {caller}"'), shown     # the call goes on unchanged
    if case == "slow":
        assert web.count("/name") == 1


def test_caller_name_lookup_is_cached(proxy, web):
    agent, apw = proxy.subscriber()
    caller, cpw = proxy.subscriber()
    number = flow_number()
    web.answers["/cached"] = (200, "Bob Cached", 0.0)
    import_flow(proxy, number, lookup_flow(web.url("/cached"), agent))
    phone = proxy.phone(agent, apw, "answer", calls=2)

    first = proxy.call(caller, cpw, number)
    second = proxy.call(caller, cpw, number)

    assert first.proc.returncode == 0 and second.proc.returncode == 0, explain(first, second, proxy.logs())
    assert [header(i, "From").split('"')[1] for i in phone.invites()] == ["Bob Cached", "Bob Cached"]
    assert web.count("/cached") == 1, "the second call must be served from the cache"


# ------------------------------------------------------------------ HTTP routing and notification

ROUTES = {"1": (480, "route one"), "2": (486, "route two"), "3": (403, "route three"), "4": (404, "route four"),
          "5": (410, "route five"), "error": (503, "route error")}


@pytest.mark.parametrize("answer,expected", [
    ((200, "1", 0.0), "1"), ((200, "2\n", 0.0), "2"), ((200, "3", 0.0), "3"), ((200, "4", 0.0), "4"),
    ((200, "5", 0.0), "5"), ((200, "7", 0.0), "error"), ((500, "1", 0.0), "error"), ((200, "1", 2.0), "error"),
])
def test_http_routing(proxy, web, answer, expected):
    caller, cpw = proxy.subscriber()
    number = flow_number()
    nodes = {"route": {"type": "http_route", "url": web.url("/route"), "timeout": 0.5,
                       "next": {k: f"r{k}" for k in ROUTES}}}
    for key, (code, reason) in ROUTES.items():
        nodes[f"r{key}"] = {"type": "reject", "code": code, "reason": reason}
    import_flow(proxy, number, {"start": "route", "nodes": nodes})
    web.answers["/route"] = answer
    code, reason = ROUTES[expected]

    call = proxy.call(caller, cpw, number, expect=code)

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert f"{code} {reason}" in call.received(f"SIP/2.0 {code}")[0]


def test_http_notification_posts_the_call_facts(proxy, web):
    caller, cpw = proxy.subscriber()
    number = flow_number()
    web.answers["/hook"] = (204, "", 0.0)
    import_flow(proxy, number, {"name": "hooked", "start": "tell", "nodes": {
        "tell": {"type": "notify", "url": web.url("/hook"), "header": "X-Api-Key", "token": "k3y", "next": "end"},
        "end": {"type": "reject", "code": 480, "reason": "Notified"}}})

    call = proxy.call(caller, cpw, number, expect=480)

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    wait_until(lambda: web.count("/hook") == 1)
    request = web.requests[-1]
    assert request["method"] == "POST" and request["headers"].get("X-Api-Key") == "k3y"
    facts = json.loads(request["body"])
    assert facts["caller"] == caller and facts["dialled"] == number and facts["flow"] == "hooked"
    assert facts["call_id"] and facts["time"]


# ------------------------------------------------------------------ email

class Inbox:
    def __init__(self):
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def test_missed_call_email(proxy):
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=proxy.settings.smtp_port)
    smtp.start()
    try:
        agent, apw = proxy.subscriber()
        caller, cpw = proxy.subscriber()
        number = flow_number()
        import_flow(proxy, number, {"name": "support", "start": "ring", "nodes": {
            "ring": {"type": "sip", "number": agent, "ring_timeout": 2, "next": {"no_answer": "mail"}},
            "mail": {"type": "email", "to": "lead@example.com", "subject": "Missed call"}}})
        phone = proxy.phone(agent, apw, "noanswer")

        call = proxy.call(caller, cpw, number, expect=480)

        assert call.proc.returncode == 0, explain(call, phone.uas, proxy.logs())
        wait_until(lambda: inbox.messages, timeout=15)
        msg = inbox.messages[0]
        assert msg["To"] == "lead@example.com" and msg["Subject"] == "Missed call"
        text = msg.get_payload()
        assert f"caller: {caller}" in text and f"dialled: {number}" in text and "flow: support" in text
    finally:
        smtp.stop()


# ------------------------------------------------------------------ forwarding and history

def test_forward_to_an_external_number_through_a_trunk(proxy):
    name, ip = f"fx{next(_ids)}", f"127.0.1.{next(_ips)}"
    carrier = Phone(proxy.address, name, "", proxy.workdir, "answer", ip=ip)
    proxy.phones.append(carrier)
    proxy.kemictl("trunk", "add", name, "--address", f"{ip}:{carrier.port}")
    dest = f"47{next(_ids):03d}"
    proxy.kemictl("route", "add", dest, name)
    caller, cpw = proxy.subscriber()
    number = flow_number()
    import_flow(proxy, number, {"start": "fwd", "nodes": {"fwd": {"type": "external", "number": dest + "5550100"}}})

    call = proxy.call(caller, cpw, number)

    assert call.proc.returncode == 0, explain(call, carrier.uas, proxy.logs())
    assert carrier.invites()[0].startswith(f"INVITE sip:{dest}5550100@")


def test_routing_by_call_history(proxy):
    (a, apw), (b, bpw) = proxy.subscriber(), proxy.subscriber()
    group, gnum = f"fr{next(_ids)}", f"7{a[1:]}"
    proxy.kemictl("ringall", "add", group, gnum)
    proxy.kemictl("ringall", "members", group, a, b)
    caller, cpw = proxy.subscriber()
    number = flow_number()
    import_flow(proxy, number, {"start": "last", "nodes": {
        "last": {"type": "history", "window": 3600, "next": {"not_found": "all"}},
        "all": {"type": "ringall", "number": gnum}}})
    answers = proxy.phone(a, apw, "answer", calls=2)
    rings = proxy.phone(b, bpw, "noanswer", calls=2)

    first = proxy.call(caller, cpw, number)           # nobody known yet: the whole group rings, a answers
    assert first.proc.returncode == 0, explain(first, proxy.logs())
    assert len(answers.invites()) == 1 and len(rings.invites()) == 1

    second = proxy.call(caller, cpw, number)          # a talked with this caller: only a rings
    assert second.proc.returncode == 0, explain(second, proxy.logs())
    assert len(answers.invites()) == 2 and len(rings.invites()) == 1


# ------------------------------------------------------------------ the helper's entry point

def sip_message(proxy, token: str, body: str, port: int = 0) -> int | None:
    host, sip_port = proxy.address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.settimeout(2)
        tag = uuid.uuid4().hex[:10]
        msg = (f"MESSAGE sip:kemi-flow-helper@{host}:{sip_port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{sock.getsockname()[1]};branch=z9hG4bK{tag};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag={tag}\r\nTo: <sip:kemi-flow-helper@{host}>\r\n"
               f"Call-ID: a-{tag}\r\nCSeq: 1 MESSAGE\r\nX-Kemi-Token: {token}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}")
        sock.sendto(msg.encode(), (host, sip_port))
        try:
            return int(sock.recv(65535).decode().split(" ", 2)[1])
        except (socket.timeout, OSError, ValueError, IndexError):
            return None


def test_forged_helper_answers_are_refused(proxy):
    info = json.loads((Path(proxy.settings.var_dir) / "run" / "flow_helper.json").read_text())
    assert sip_message(proxy, "not-the-token", "1:1\n1|3") == 403
    assert sip_message(proxy, info["token"], "1:1\n1|3") == 403, "the right token from another port"

    # a bounded flood of forgeries: every one refused, the log does not grow with it
    log = proxy.stack.kamailio.log
    before = log.read_text(errors="replace").count("refused MESSAGE")
    started = time.monotonic()
    codes = [sip_message(proxy, f"guess-{i}", "1:1\n1|3") for i in range(100)]
    elapsed = time.monotonic() - started
    assert codes == [403] * 100
    lines = log.read_text(errors="replace").count("refused MESSAGE") - before
    assert lines <= proxy.settings.children * (int(elapsed) + 2), (lines, elapsed)


# ------------------------------------------------------------------ flow changes and calls in progress

def test_a_flow_change_applies_to_the_next_call_only(proxy):
    (idle, _) = proxy.subscriber()
    qname, qnum = f"fq{next(_ids)}", f"6{idle[1:]}"
    proxy.kemictl("queue", "add", qname, qnum, "--max-wait", "3")
    proxy.kemictl("queue", "agents", qname, idle)              # never registered: callers wait
    caller, cpw = proxy.subscriber()
    number = flow_number()

    def version(reason: str) -> dict:
        return {"start": "wait", "nodes": {"wait": {"type": "queue", "number": qnum, "next": {"timeout": "end"}},
                                           "end": {"type": "reject", "code": 480, "reason": reason}}}
    import_flow(proxy, number, version("old flow"))
    results = {}
    waiting = threading.Thread(target=lambda: results.setdefault(
        "first", proxy.call(caller, cpw, number, expect=480, timeout=20)))
    waiting.start()
    wait_until(lambda: any(f"flow {number}|1" in line and "ring queue" in line
                           for line in proxy.stack.kamailio.log.read_text(errors="replace").splitlines()))
    import_flow(proxy, number, version("new flow"))          # while the first caller waits
    second = proxy.call(caller, cpw, number, expect=480, timeout=20)
    waiting.join(30)

    first = results["first"]
    assert first.proc.returncode == 0 and second.proc.returncode == 0, explain(first, second, proxy.logs())
    assert "480 old flow" in first.received("SIP/2.0 480")[0]
    assert "480 new flow" in second.received("SIP/2.0 480")[0]


# ------------------------------------------------------------------ media nodes (a stand-in media service)

@pytest.mark.parametrize("outcome,digits,expected", [
    ("digits", "2", (486, "chose two")),
    ("digits", "9", (480, "no valid choice")),
    ("timeout", "", (480, "no valid choice")),
])
def test_play_then_menu_through_the_media_service(proxy, outcome, digits, expected):
    from tests.e2e.sipp import Sipp, media_port, render
    host, port = proxy.settings.media_sip.split(":")
    scenario = render("media_302.xml", proxy.workdir, outcome=outcome, digits=digits)
    # The contract from the proxy's side: a SIPp stand-in takes the real media service's
    # address for this test (stopped on purpose, so the supervisor leaves it alone).
    proxy.stack.media.stop()
    media = Sipp(scenario, ["-i", host, "-p", port, "-mp", str(media_port()), "-m", "1"], proxy.workdir, "media")
    proxy.phones.append(types.SimpleNamespace(stop=media.stop))
    proxy.phones.append(types.SimpleNamespace(stop=proxy.stack.media.start))   # after the stand-in left
    caller, cpw = proxy.subscriber()
    number = flow_number()
    import_flow(proxy, number, {"start": "hello", "nodes": {
        "hello": {"type": "play", "audio": "welcome", "next": {"done": "menu", "error": "broken"}},
        "menu": {"type": "menu", "prompt": "choose", "valid": ["1", "2"],
                 "next": {"1": "one", "2": "two", "invalid": "none"}},
        "one": {"type": "reject", "code": 403, "reason": "chose one"},
        "two": {"type": "reject", "code": 486, "reason": "chose two"},
        "none": {"type": "reject", "code": 480, "reason": "no valid choice"},
        "broken": {"type": "reject", "code": 503, "reason": "media broken"}}})

    call = proxy.call(caller, cpw, number, expect=expected[0])

    assert call.proc.returncode == 0, explain(call, media, proxy.logs())
    assert f"{expected[0]} {expected[1]}" in call.received(f"SIP/2.0 {expected[0]}")[0]
    invites = media.received("INVITE")
    assert len(invites) == 2, explain(media)
    assert invites[0].startswith(f"INVITE sip:play@{host}:{port}")
    assert header(invites[0], "X-Kemi-App") == "play;audio=welcome;loop=1"
    assert invites[1].startswith(f"INVITE sip:menu@{host}:{port}")
    assert [line for line in invites[1].splitlines() if line.lower().startswith("x-kemi-app")] == [
        "X-Kemi-App: menu;prompt=choose;invalid=invalid;digits=1-1;valid=1%2C2;timeout=5;retries=2"]


def test_lookup_with_the_helper_down_goes_on_unchanged_and_recovers(proxy, web):
    """tm's timer bounds the wait when the flow helper is gone (this test stack's own helper
    process is stopped); after a restart the workers find its new port and token."""
    agent, apw = proxy.subscriber()
    caller, cpw = proxy.subscriber()
    number = flow_number()
    web.answers["/late"] = (200, "Carol Later", 0.0)
    import_flow(proxy, number, lookup_flow(web.url("/late"), agent))
    phone = proxy.phone(agent, apw, "answer", calls=2)

    proxy.stack.flow_helper.stop()
    try:
        down = proxy.call(caller, cpw, number)
    finally:
        proxy.stack.flow_helper.start()
    back = proxy.call(caller, cpw, number)

    assert down.proc.returncode == 0 and back.proc.returncode == 0, explain(down, back, phone.uas, proxy.logs())
    shown = [header(invite, "From") for invite in phone.invites()]
    assert shown[0].startswith(f'"Caller {caller}"'), shown
    assert shown[1].startswith('"Carol Later"'), shown
    assert web.count("/late") == 1
