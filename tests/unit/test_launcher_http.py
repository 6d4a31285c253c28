"""The launcher's HTTP endpoint decisions (media/launcher_http.decide) and the proxy's parsing
of the launch origin header (kemi/launch_route.py)."""
from __future__ import annotations

import json

import pytest

from kemi import launch_route
from media import launcher_http as H

TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
GOOD = json.dumps({"room": "8100", "pin": "2468", "contacts": [{"name": "Alice", "work": "1001"}]}).encode()


def test_create_and_show():
    created = H.decide("POST", "/launches", AUTH, GOOD, TOKEN)
    assert isinstance(created, H.Create) and created.request.room == "8100"
    assert H.decide("GET", "/launches/42", AUTH, b"", TOKEN) == H.Show(42)


@pytest.mark.parametrize("method, path, headers, body, status, words", [
    ("POST", "/launches", {}, GOOD, 401, "token"),
    ("POST", "/launches", {"authorization": "Bearer wrong"}, GOOD, 401, "token"),
    ("POST", "/launches", {"authorization": TOKEN}, GOOD, 401, "token"),          # no "Bearer "
    ("POST", "/launches", {"authorization": f"Basic {TOKEN}"}, GOOD, 401, "token"),
    ("GET", "/launches", AUTH, b"", 405, "POST"),
    ("DELETE", "/launches/1", AUTH, b"", 405, "GET"),
    ("GET", "/launches/abc", AUTH, b"", 404, "no such"),
    ("GET", "/../etc/passwd", AUTH, b"", 404, "no such"),
    ("POST", "/launches", AUTH, b"x" * (H.MAX_BODY + 1), 413, "16384"),
    ("POST", "/launches", AUTH, b"\xff\xfe", 400, "JSON"),
    ("POST", "/launches", AUTH, b"[1, 2]", 400, "body"),
    ("POST", "/launches", AUTH, json.dumps({"room": "8100", "contacts": [{"name": "A", "work": "1001"}]}).encode(),
     400, "field 'pin'"),
    ("POST", "/launches", AUTH, json.dumps({"room": "8100", "pin": "2468", "contacts": [{"name": "A"}]}).encode(),
     400, "contacts[0]"),
])
def test_refusals(method, path, headers, body, status, words):
    refusal = H.decide(method, path, headers, body, TOKEN)
    assert isinstance(refusal, H.Refusal) and refusal.status == status, refusal
    assert words in refusal.error


@pytest.mark.parametrize("header, expected", [
    ("launch;id=17;contact=2", launch_route.LaunchOrigin("17")),
    (" launch ; id=3 ", launch_route.LaunchOrigin("3")),
    ("launch;id=x", None),
    ("launch", None),
    ("launch;id=" + "9" * 19, None),
    ("callback;number=7000", None),
    ("", None),
    (None, None),
])
def test_origin_header(header, expected):
    assert launch_route.parse(header) == expected


def test_sms_url_template_quotes_what_it_inserts():
    from media.launcher_notify import sms_url
    url = sms_url("https://sms.example.org/send?to={to}&msg={text}", "+4917 1", "PIN 2468 & more/#")
    assert url == "https://sms.example.org/send?to=%2B4917%201&msg=PIN%202468%20%26%20more%2F%23"


def test_no_sms_gateway_is_a_reported_failure():
    from kemi.config import Settings
    from media.launcher_notify import NotifyError, send_sms
    with pytest.raises(NotifyError, match="no SMS gateway"):
        send_sms(Settings(launch_sms_url=""), "4917", "hi")
    with pytest.raises(NotifyError, match="http"):
        send_sms(Settings(launch_sms_url="file:///etc/passwd?{to}"), "4917", "hi")
