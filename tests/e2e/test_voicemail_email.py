"""Voicemail by email (issue 13, section 2): a box with an address gets each new message
mailed through the project's mail path (KEMI_SMTP_*, a local aiosmtpd server here) with
the WAV attached (checked: it holds the caller's tone), the caller, time and duration; the
message is then kept or deleted per box; a mail server that is down is retried; kemictl
refuses addresses that could become extra mail headers."""
from __future__ import annotations

import email
import email.message

import numpy as np
import pytest
from aiosmtpd.controller import Controller

from media import audio
from tests.e2e.helpers import wait_until
from tests.e2e.media_helpers import tone_share
from tests.e2e.test_voicemail import TONE, box, db, leave_message, messages, run


class Inbox:
    def __init__(self):
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def smtp_server(proxy, inbox: Inbox) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=proxy.settings.smtp_port)
    controller.start()
    return controller


def attachment(msg: email.message.Message) -> np.ndarray:
    for part in msg.walk():
        if part.get_content_type() == "audio/wav":
            return audio.from_wav(part.get_payload(decode=True))
    raise AssertionError("no WAV attached")


def test_message_is_mailed_with_the_recording_then_deleted(proxy):
    inbox = Inbox()
    server = smtp_server(proxy, inbox)
    try:
        owner, _ = box(proxy, "--always", "yes", "--email", "owner@example.com", "--email-keep", "no")
        caller, caller_pw = proxy.subscriber()
        run(leave_message(proxy, caller, caller_pw, owner, seconds=2.0))
        wait_until(lambda: inbox.messages, timeout=30)
        msg = inbox.messages[0]
        assert msg["To"] == "owner@example.com" and caller in msg["Subject"]
        text = next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
        assert f"caller: {caller}" in text and f"box: {owner}" in text and "time: " in text and "duration: " in text
        pcm = attachment(msg)
        assert 1.5 <= len(pcm) / 8000 <= 6.0
        assert tone_share(pcm, TONE) > 0.5, "the attached recording must hold what the caller said"
        wait_until(lambda: messages(proxy, owner) == [], timeout=15)   # email-keep no: deleted once sent
    finally:
        server.stop()


def test_mail_server_down_is_retried_and_the_message_kept(proxy):
    owner, _ = box(proxy, "--always", "yes")
    proxy.kemictl("voicemail", "box", "rule", owner, "--email", "desk@example.org")   # keep: default yes
    caller, caller_pw = proxy.subscriber()
    run(leave_message(proxy, caller, caller_pw, owner, seconds=1.5))
    log = proxy.stack.media.log
    wait_until(lambda: "failed (attempt 1)" in log.read_text(), timeout=30)   # nobody listens on the SMTP port
    inbox = Inbox()
    server = smtp_server(proxy, inbox)
    try:
        wait_until(lambda: inbox.messages, timeout=30)   # the retry (2 s later) gets through
        assert inbox.messages[0]["To"] == "desk@example.org"
        wait_until(lambda: "sent to desk@example.org, kept" in log.read_text(), timeout=10)
        rows = messages(proxy, owner)
        assert len(rows) == 1 and rows[0][3] == "new", rows   # kept, still new (lamp stays on)
    finally:
        server.stop()


@pytest.mark.parametrize("address", ["owner@example.com\r\nBcc: all@example.com", "a@b.com, c@d.com",
                                     "<a@b.com>", "no-at-sign", "a b@example.com", "x@" + "y" * 300 + ".com"])
def test_kemictl_refuses_addresses_that_are_not_plain(proxy, address):
    owner, _ = box(proxy)
    result = proxy.kemictl("voicemail", "box", "rule", owner, "--email", address, check=False)
    assert result.returncode == 2 and "field 'email'" in result.stderr, result
    assert db(proxy, "SELECT email FROM voicemail_box WHERE number = %s", (owner,)) == [(None,)]


def test_kemictl_email_keep_must_be_yes_or_no(proxy):
    owner, _ = box(proxy)
    result = proxy.kemictl("voicemail", "box", "rule", owner, "--email", "a@example.com", "--email-keep", "maybe",
                           check=False)
    assert result.returncode == 2 and "--email-keep" in result.stderr
