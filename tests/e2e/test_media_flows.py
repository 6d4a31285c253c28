"""A flow's play and menu nodes against the REAL media service (issue 13, section 3): the
caller hears the play node's audio and the menu's prompt (FFT) on early media, and a DTMF
digit (RFC 4733 or SIP INFO) takes the menu's outcome; no digit takes the timeout."""
from __future__ import annotations

import asyncio
import itertools
import uuid

import pytest
import yaml

from media import audio
from tests.e2e.media_helpers import add_audio, tone_share, wait_until_async
from tests.e2e.media_peer import Phone

WELCOME_HZ = 700.0
PROMPT_HZ = 900.0
_ids = itertools.count(1)


def run(coro, timeout: float = 90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def menu_flow(proxy) -> str:
    tag = uuid.uuid4().hex[:6]
    add_audio(proxy.settings.database_url, f"welcome-{tag}", audio.tone((WELCOME_HZ,), 1.5, 0.5))
    add_audio(proxy.settings.database_url, f"choose-{tag}", audio.tone((PROMPT_HZ,), 3.0, 0.5))
    number = f"49320{next(_ids):03d}{abs(hash(tag)) % 100:02d}"
    doc = {"start": "hello", "nodes": {
        "hello": {"type": "play", "audio": f"welcome-{tag}", "next": {"done": "menu", "error": "broken"}},
        "menu": {"type": "menu", "prompt": f"choose-{tag}", "valid": ["1", "2"], "timeout": 2, "retries": 0,
                 "next": {"1": "one", "2": "two", "invalid": "none", "timeout": "quiet"}},
        "one": {"type": "reject", "code": 403, "reason": "chose one"},
        "two": {"type": "reject", "code": 486, "reason": "chose two"},
        "none": {"type": "reject", "code": 480, "reason": "no valid choice"},
        "quiet": {"type": "reject", "code": 404, "reason": "no choice at all"},
        "broken": {"type": "reject", "code": 503, "reason": "media broken"}}}
    proxy.kemictl("flow", "import", number, "-", stdin=yaml.safe_dump(doc))
    return number


@pytest.mark.parametrize("how,digit,expected", [
    ("rfc4733", "2", (486, "chose two")),
    ("rfc4733", "1", (403, "chose one")),
    ("info", "2", (486, "chose two")),
    ("rfc4733", "7", (480, "no valid choice")),
    ("none", "", (404, "no choice at all")),
])
def test_play_then_menu_with_the_real_media_service(proxy, how, digit, expected):
    number = menu_flow(proxy)
    caller, caller_pw = proxy.subscriber()

    async def scenario():
        phone = await Phone(caller, caller_pw).open()
        try:
            call = await phone.call(proxy.address, f"sip:{number}@{proxy.address[0]}:{proxy.address[1]}",
                                    wait_for=(183,))
            assert call.answer is not None and call.answer.status == 183, [r.status for r in call.responses]
            await wait_until_async(lambda: tone_share(call.received()[-2400:], WELCOME_HZ) > 0.7, timeout=20)
            await wait_until_async(lambda: tone_share(call.received()[-2400:], PROMPT_HZ) > 0.7, timeout=20)
            if how == "rfc4733":
                call.dtmf(digit)
            elif how == "info":
                call.info(digit)
            final = await call.wait_final(30)
            return final
        finally:
            phone.close()

    final = run(scenario())
    assert (final.status, final.reason) == expected
