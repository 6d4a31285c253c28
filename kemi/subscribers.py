"""Subscribers as a SIP worker sees them: one key of Kamailio's shared-memory htable
(`names.SUBSCRIBER_TABLE`) per lookup, decoded by kemi/subscriber_codec.py. The table is
loaded once per machine by Kamailio at start and kept current by the directory loader
(tools/directory_loader.py), so a worker's memory does not grow with the number of
subscribers and no worker ever reads the database for them.

A value that cannot be decoded counts as no subscriber (the caller is challenged as for an
unknown number), with a log line and a metric, never an exception in the worker."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Callable

from kemi import names
from kemi.directory import Subscriber


class SharedSubscribers(Mapping[str, Subscriber]):
    """Read-only mapping number -> Subscriber over a `get_raw(number) -> str | None` lookup.
    Not iterable: a worker never walks a million rows."""

    def __init__(self, get_raw: Callable[[str], object], on_bad: Callable[[str], None] = lambda _n: None):
        self.get_raw = get_raw
        self.on_bad = on_bad

    def get(self, number: str, default=None):   # type: ignore[override]
        if not number or not isinstance(number, str):
            return default
        raw = self.get_raw(number)
        if raw is None or raw == "":
            return default
        sub = names.decode_subscriber(number, raw)
        if sub is None:
            self.on_bad(number)
            return default
        return sub

    def __getitem__(self, number: str) -> Subscriber:
        sub = self.get(number)
        if sub is None:
            raise KeyError(number)
        return sub

    def __contains__(self, number: object) -> bool:
        return isinstance(number, str) and self.get(number) is not None

    def __iter__(self) -> Iterator[str]:
        raise TypeError("shared-memory subscribers are looked up by number, never listed in a worker")

    def __len__(self) -> int:
        raise TypeError("shared-memory subscribers are looked up by number, never counted in a worker")


def shared(log: Callable[[str], None] = lambda _m: None) -> SharedSubscribers:
    """The adapter for a Kamailio worker (the only function here that touches KSR)."""
    import KSR  # provided by app_python3

    from kemi import metrics

    def get_raw(number: str) -> object:
        return KSR.htable.sht_get(names.SUBSCRIBER_TABLE, number)

    def on_bad(number: str) -> None:
        log(f"subscriber {number!r}: unreadable value in htable {names.SUBSCRIBER_TABLE}, treated as unknown")
        metrics.handler_error("subscriber decode")

    return SharedSubscribers(get_raw, on_bad)
