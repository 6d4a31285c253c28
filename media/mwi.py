"""Message waiting (RFC 3842): the message-summary body and the subscription's timing. Pure."""
from __future__ import annotations

MIN_EXPIRES = 60
MAX_EXPIRES = 3600
CONTENT_TYPE = "application/simple-message-summary"


def expires(requested: str | None) -> int:
    """The granted subscription duration: 0 (unsubscribe), else clamped to 60..3600 s."""
    try:
        value = int((requested or "3600").strip())
    except ValueError:
        return MAX_EXPIRES
    if value <= 0:
        return 0
    return max(MIN_EXPIRES, min(MAX_EXPIRES, value))


def summary(account: str, new: int, saved: int) -> str:
    return (f"Messages-Waiting: {'yes' if new else 'no'}\r\n"
            f"Message-Account: {account}\r\n"
            f"Voice-Message: {new}/{saved} (0/0)\r\n")
