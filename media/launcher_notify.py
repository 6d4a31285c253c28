"""The launcher's SMS and email (seed 003: the number to call and the PIN), blocking I/O run in
a thread by media/launcher.py, each retried with back-off and every try reported.

SMS: an HTTP gateway. `KEMI_LAUNCH_SMS_URL` is a URL template; `{to}` and `{text}` are
replaced (URL-quoted). The request is a POST with a JSON body `{"to": ..., "text": ...}` and,
when `KEMI_LAUNCH_SMS_TOKEN` is set, `Authorization: Bearer <token>`; any 2xx is success.
Email: the SMTP server of the settings (`KEMI_SMTP_HOST`, `KEMI_SMTP_PORT`, `KEMI_SMTP_FROM`),
the same one call-flow email nodes use (tools/flow_helper.py).
"""
from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from urllib.parse import quote

TRIES = 3
BACKOFF = (1.0, 3.0)       # seconds before the 2nd and 3rd try
TIMEOUT = 10.0


class NotifyError(Exception):
    pass


def sms_url(template: str, to: str, text: str) -> str:
    return template.replace("{to}", quote(to, safe="")).replace("{text}", quote(text, safe=""))


def send_sms(settings, to: str, text: str) -> str:
    """One try; returns a short description of the gateway's answer, raises NotifyError."""
    if not settings.launch_sms_url:
        raise NotifyError("no SMS gateway configured (KEMI_LAUNCH_SMS_URL)")
    url = sms_url(settings.launch_sms_url, to, text)
    if not url.startswith(("http://", "https://")):
        raise NotifyError("KEMI_LAUNCH_SMS_URL must be an http(s) URL")
    headers = {"Content-Type": "application/json"}
    if settings.launch_sms_token:
        headers["Authorization"] = f"Bearer {settings.launch_sms_token}"
    req = urllib.request.Request(url, data=json.dumps({"to": to, "text": text}).encode(), headers=headers,
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:   # noqa: S310 (operator's URL)
            return f"gateway {resp.status}"
    except urllib.error.HTTPError as err:
        raise NotifyError(f"gateway answered {err.code}") from None
    except (OSError, ValueError) as err:
        raise NotifyError(f"gateway unreachable: {err}") from None


def send_email(settings, to: str, subject: str, text: str) -> str:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT) as smtp:
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as err:
        raise NotifyError(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {err}") from None
    return f"accepted by {settings.smtp_host}:{settings.smtp_port}"
