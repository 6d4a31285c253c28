"""The conference launcher (seed 003, issue 14 section 4) end to end: the media service calls
contacts through the proxy and a carrier (tests/e2e/callback_peer.py, the trunk that plays
the public network), following a shortened alert scheme; a local HTTP server is the SMS
gateway and aiosmtpd the mail server; the prompts are tones here, so what a contact hears is
checked by FFT."""
from __future__ import annotations

import asyncio
import email
import http.server
import itertools
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from aiosmtpd.controller import Controller

from media import audio
from tests.e2e.callback_peer import Carrier
from tests.e2e.media_helpers import add_audio, tone_share, wait_until_async
from tests.e2e.media_peer import Phone
from tests.e2e.test_conference import dial_in, wait_in_room

PIN = "2468"
WELCOME_HZ, PRESS_HZ = 700, 900
ALICE_HZ = 1000
_n = itertools.count(1)
_ips = itertools.count(91)


def run(coro, timeout: float = 150):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Gateway(http.server.BaseHTTPRequestHandler):
    """The SMS gateway: records every POST; answers 503 to the first one (a retry must follow)."""
    requests: list[dict] = []
    fail_first = True

    def do_POST(self):   # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Gateway.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                 "body": json.loads(body)})
        status = 503 if Gateway.fail_first else 200
        Gateway.fail_first = False
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Inbox:
    def __init__(self):
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def gateways(proxy):
    port = urllib.parse.urlsplit(proxy.settings.launch_sms_url).port
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=proxy.settings.smtp_port)
    smtp.start()
    Gateway.requests, Gateway.fail_first = [], True
    try:
        yield Gateway, inbox
    finally:
        smtp.stop()
        server.shutdown()
        server.server_close()


def status(proxy, launch_id: int) -> dict:
    return json.loads(proxy.kemictl("launch", "status", str(launch_id), "--json").stdout)


def test_work_home_and_sms_email_then_dial_in(proxy, gateways, tmp_path):
    gateway, inbox = gateways
    n = next(_n)
    prefix = f"9{os.getpid() % 100:02d}{n}"
    room = f"87{os.getpid() % 100:02d}{n:03d}"
    alice_work, bob_work, bob_home, carol_work, carol_home = (prefix + s for s in ("101", "201", "202", "301", "302"))
    carol, carol_pw = proxy.subscriber()           # Carol's mobile: she dials in from it
    proxy.kemictl("conference", "add", room, "--pin", PIN)
    add_audio(proxy.settings.database_url, "launch-press-1", np.concatenate([audio.tone((PRESS_HZ,), 0.5),
                                                                             audio.silence(0.1)]))
    welcome = f"lw-{n}"
    add_audio(proxy.settings.database_url, welcome, audio.tone((WELCOME_HZ,), 0.8))
    scheme = tmp_path / "fast.yaml"
    scheme.write_text(f"name: FAST{n}\nring_seconds: 5\nend_after: 90\nsteps:\n"
                      "  - {at: 0, call: work}\n  - {at: 8, call: home}\n"
                      "  - {at: 16, notify: [sms, email], who: not-joined}\n")
    proxy.kemictl("launch", "scheme", "set", str(scheme))

    async def scenario():
        carrier = await Carrier(f"127.0.0.{next(_ips)}").open()
        await asyncio.to_thread(proxy.kemictl, "trunk", "add", f"lt{n}", "--address",
                                f"{carrier.address}:{carrier.port}")
        await asyncio.to_thread(proxy.kemictl, "route", "add", prefix, f"lt{n}")
        out = await asyncio.to_thread(
            proxy.kemictl, "launch", "start", "--room", room, "--pin", PIN, "--scheme", f"FAST{n}",
            "--title", "Crisis", "--welcome", welcome,
            "--contact", f"Alice,{alice_work},,,alice@example.org",
            "--contact", f"Bob,{bob_work},{bob_home},,bob@example.org",
            "--contact", f"Carol,{carol_work},{carol_home},{carol},carol@example.org")
        launch_id = int(out.stdout.split()[1])
        arrivals: dict[str, object] = {}
        answered: dict[str, object] = {}
        pressed: dict[str, int] = {}     # how much each had heard when it pressed 1

        async def phones():
            while True:
                call = await carrier.next_call(60)
                arrivals[call.number] = call
                if call.number in (alice_work, bob_home):      # the others ring until cancelled
                    await call.answer()
                    answered[call.number] = call
                    await wait_until_async(lambda c=call: tone_share(c.received()[-2400:], PRESS_HZ) > 0.5, 20)
                    pressed[call.number] = len(call.received())
                    await call.dtmf("1")

        answering = asyncio.ensure_future(phones())
        try:
            await wait_until_async(lambda: alice_work in answered, 20)
            alice = answered[alice_work]
            await wait_until_async(lambda: alice_work in pressed, 20)
            alice_heard_before_join = pressed[alice_work]
            await wait_until_async(lambda: bob_home in answered, 40)
            bob = answered[bob_home]
            await wait_until_async(lambda: len(gateway.requests) >= 2, 40)   # the 503, then the retry
            await wait_until_async(lambda: inbox.messages, 20)
            # Alice speaks; Bob, in the room with her, hears her
            await wait_in_room(proxy, room, bob_home)
            mark = len(bob.received())
            alice.play(audio.tone((ALICE_HZ,), 1.0, 0.25), 1000)
            await wait_until_async(lambda: len(bob.received()) - mark > 16000, 15)
            bob_heard = bob.received()[-8000:]
            alice.leg.stop_playing()
            # Carol got the SMS and the email and dials in with the PIN from her mobile
            phone, call = await dial_in(proxy, room, (carol, carol_pw), pin=PIN)
            try:
                await wait_in_room(proxy, room, carol)
                for _ in range(100):
                    st = await asyncio.to_thread(status, proxy, launch_id)
                    if st["contacts"][2]["joined"]:
                        break
                    await asyncio.sleep(0.2)
                text = (await asyncio.to_thread(proxy.kemictl, "launch", "status", str(launch_id))).stdout
            finally:
                call.bye()
                phone.close()
            return (st, text, alice.received()[:alice_heard_before_join], bob_heard, sorted(arrivals))
        finally:
            answering.cancel()
            for c in answered.values():
                c.bye()
            carrier.close()

    st, text, alice_before_join, bob_heard, called = run(scenario())
    people = {c["name"]: c for c in st["contacts"]}
    assert people["Alice"]["joined"] == "work"
    assert people["Bob"]["joined"] == "home" and people["Bob"]["joined_after_s"] >= 8
    assert people["Carol"]["joined"] == "dial-in" and people["Carol"]["joined_after_s"] >= 16
    assert bob_work in called and carol_work in called and carol_home in called
    assert alice_work in called and bob_home in called
    assert "dial-in" in text and "home" in text and "work" in text, text
    # what Alice heard before joining: the welcome message, then "press 1"
    assert tone_share(alice_before_join[:-2400], WELCOME_HZ) > 0.5, "the welcome message first"
    assert tone_share(alice_before_join[-2400:], PRESS_HZ) > 0.5, "then press 1"
    assert tone_share(bob_heard, ALICE_HZ) > 0.6, "Bob hears Alice in the room"
    # the SMS: only Carol (who = not-joined), retried after the gateway's 503, with the token
    assert {urllib.parse.parse_qs(urllib.parse.urlsplit(r["path"]).query)["to"][0] for r in gateway.requests} == {carol}
    assert len(gateway.requests) == 2 and all(r["auth"] == "Bearer sms-gateway-token" for r in gateway.requests)
    sms = gateway.requests[-1]["body"]["text"]
    assert room in sms and PIN in sms and "Crisis" in sms
    assert people["Carol"]["sms"].startswith("sent to") and people["Alice"]["sms"] == ""
    assert any(e["kind"] == "sms" and "try 1" in e["detail"] and "503" in e["detail"] for e in st["events"])
    # the email: only Carol
    assert [m["To"] for m in inbox.messages] == ["carol@example.org"]
    body = inbox.messages[0].get_payload()
    assert room in body and PIN in body and PIN in inbox.messages[0]["Subject"]


# ---------------------------------------------------------------- attacks and bad input

def endpoint(proxy) -> dict:
    return json.loads((Path(proxy.settings.var_dir) / "run" / "launch-http.json").read_text())


def call_api(info: dict, method: str, path: str, body: bytes | None = None, token: str | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(info["url"] + path, data=body, method=method, headers=headers or {})
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_http_endpoint_launches_with_the_token_and_refuses_everything_else(proxy):
    room = f"88{os.getpid() % 100:02d}{next(_n):03d}"
    proxy.kemictl("conference", "add", room, "--pin", PIN)
    info = endpoint(proxy)
    assert oct(os.stat(Path(proxy.settings.var_dir) / "run" / "launch-http.json").st_mode & 0o777) == "0o600"
    token = info["token"]
    good = {"room": room, "pin": PIN, "contacts": [{"name": "Dora", "work": "0000999001"}], "title": "From HTTP"}
    status, answer = call_api(info, "POST", "/launches", json.dumps(good).encode(), token)
    assert status == 201, answer
    launch_id = answer["id"]
    status, shown = call_api(info, "GET", f"/launches/{launch_id}", token=token)
    assert status == 200 and shown["room"] == room and shown["source"] == "http"
    assert shown["contacts"][0]["name"] == "Dora"
    proxy.kemictl("launch", "stop", str(launch_id))

    assert call_api(info, "POST", "/launches", json.dumps(good).encode())[0] == 401            # no token
    assert call_api(info, "GET", f"/launches/{launch_id}", token="guess")[0] == 401            # wrong token
    status, answer = call_api(info, "POST", "/launches", b"{" + b" " * 20000 + b"}", token)   # oversized
    assert status == 413, answer
    bad = {**good, "contacts": [{"name": "Eve", "work": "12;user=phone"}]}
    status, answer = call_api(info, "POST", "/launches", json.dumps(bad).encode(), token)
    assert status == 400 and "contacts[0].work" in answer["error"], answer
    status, answer = call_api(info, "POST", "/launches", json.dumps({**good, "pin": "1111"}).encode(), token)
    assert status == 403 and "pin" in answer["error"], answer
    # guessing tokens: soon 429, even for the right token for a moment
    codes = [call_api(info, "GET", "/launches/1", token=f"guess{i}")[0] for i in range(4)]
    assert codes[-1] == 429 and set(codes) <= {401, 429}, codes
    with __import__("psycopg").connect(proxy.settings.database_url) as conn:
        count = conn.execute("SELECT count(*) FROM launch WHERE room = %s", (room,)).fetchone()[0]
    assert count == 1, "only the good request created a launch"


def test_kemictl_launch_errors_name_the_field(proxy):
    room = f"89{os.getpid() % 100:02d}{next(_n):03d}"
    proxy.kemictl("conference", "add", room, "--pin", PIN)
    out = proxy.kemictl("launch", "start", "--room", room, "--pin", "9999", "--contact", "A,1001", check=False)
    assert out.returncode == 2 and "field 'pin'" in out.stderr
    out = proxy.kemictl("launch", "start", "--room", room, "--pin", PIN, "--contact", "A,10x1", check=False)
    assert out.returncode == 2 and "field 'contacts[0].work'" in out.stderr
    out = proxy.kemictl("launch", "start", "--room", room, "--pin", PIN, "--contact", "A,1001",
                        "--scheme", "NOPE", check=False)
    assert out.returncode == 2 and "field 'scheme'" in out.stderr
    # a free number: a temporary room with a generated PIN
    temp = f"89{os.getpid() % 100:02d}{next(_n):03d}"
    out = proxy.kemictl("launch", "start", "--room", temp, "--contact", "A,0000999002")
    assert "(temporary)" in out.stdout and " PIN " in out.stdout
    launch_id = out.stdout.split()[1]
    assert temp in proxy.kemictl("conference", "list").stdout
    proxy.kemictl("launch", "stop", launch_id)


def test_forged_launch_origin_is_not_trusted(proxy):
    """Only the media service may send `X-Kemi-Origin: launch`: from a trunk it gets the
    trunk's rules (404, only its DIDs), from a stranger the digest challenge."""
    async def scenario():
        carrier = await Carrier(f"127.0.0.{next(_ips)}").open()
        n = next(_n)
        await asyncio.to_thread(proxy.kemictl, "trunk", "add", f"lf{n}", "--address",
                                f"{carrier.address}:{carrier.port}")
        await asyncio.to_thread(proxy.kemictl, "route", "add", f"97{n}", f"lf{n}")
        forged = [("X-Kemi-Origin", "launch;id=1;contact=0")]
        uri = f"sip:97{n}555@{proxy.address[0]}:{proxy.address[1]}"
        via_trunk = await carrier.call(proxy.address, uri, forged, wait_for=())
        stranger = await Phone("intruder", None, f"127.0.0.{next(_ips)}").open()
        as_stranger = await stranger.call(proxy.address, uri, forged, wait_for=())
        with pytest.raises(asyncio.TimeoutError):
            await carrier.next_call(3)           # nothing reached the public network
        stranger.close()
        carrier.close()
        return via_trunk.final, as_stranger.final

    via_trunk, as_stranger = run(scenario(), 60)
    assert via_trunk.status == 404, via_trunk
    assert as_stranger.status in (401, 407), as_stranger
