"""The encoding of one subscriber in Kamailio's shared memory (htable `subs`, kemi/names.py).

The value is what the SQL view `kemi_subscriber_htable` (sql/012) builds, a JSON array in
this fixed order:

    [ha1, active, display_name, public_name, default_caller_id, hide_caller_id, send_pai,
     [caller_id, ...]]

`encode` is the same encoding in Python (tests, and the consistency check against the
database); `decode` never raises: a value it cannot read is treated as no subscriber (the
caller is challenged and a log line says why), never as a crash in a SIP worker.
Pure: no I/O.
"""
from __future__ import annotations

import json

from kemi.directory import Subscriber

FIELDS = ("ha1", "active", "display_name", "public_name", "default_caller_id", "hide_caller_id",
          "send_pai", "caller_ids")


class SubscriberDecodeError(ValueError):
    pass


def encode(sub: Subscriber) -> str:
    return json.dumps([sub.ha1, sub.active, sub.display_name, sub.public_name, sub.default_caller_id,
                       sub.hide_caller_id, sub.send_pai, list(sub.caller_ids)], ensure_ascii=False)


def _text(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise SubscriberDecodeError(f"{name} must be text or null")


def decode_strict(number: str, value: str) -> Subscriber:
    """The subscriber `value` encodes; SubscriberDecodeError names what is wrong."""
    try:
        items = json.loads(value)
    except (ValueError, TypeError) as err:
        raise SubscriberDecodeError(f"not JSON: {err}") from None
    if not isinstance(items, list) or len(items) != len(FIELDS):
        raise SubscriberDecodeError(f"want a list of {len(FIELDS)} fields")
    ha1, active, display, public, default, hide, pai, cids = items
    if not isinstance(ha1, str) or len(ha1.strip()) != 32:
        raise SubscriberDecodeError("ha1 must be 32 hex digits")
    if not all(isinstance(b, bool) for b in (active, hide, pai)):
        raise SubscriberDecodeError("active, hide_caller_id and send_pai must be booleans")
    if not isinstance(cids, list) or not all(isinstance(c, str) for c in cids):
        raise SubscriberDecodeError("caller_ids must be a list of text")
    return Subscriber(number, ha1.strip(), active, _text(display, "display_name"), _text(public, "public_name"),
                      _text(default, "default_caller_id"), hide, pai, tuple(cids))


def decode(number: str, value: object) -> Subscriber | None:
    """As decode_strict, but None for anything unreadable (including no value at all)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return decode_strict(number, value)
    except SubscriberDecodeError:
        return None
