"""rtpengine NG protocol: a pure bencode codec and a small UDP client with timeout and retry.

A request is `<cookie> <bencoded dict>`; the reply echoes the cookie. rtpengine answers
errors with result=error and an `error-reason`, raised here as NgError.
"""
from __future__ import annotations

import os
import socket


class NgError(Exception):
    pass


def bencode(value) -> bytes:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes):
    try:
        value, end = _decode(data, 0)
    except RecursionError:
        raise NgError("bencoded value nested too deeply") from None
    if end != len(data):
        raise NgError(f"trailing bytes after bencoded value at offset {end}")
    return value


def _decode(data: bytes, i: int):
    try:
        lead = data[i:i + 1]
        if lead == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1:end]), end + 1
        if lead == b"l":
            out, i = [], i + 1
            while data[i:i + 1] != b"e":
                item, i = _decode(data, i)
                out.append(item)
            return out, i + 1
        if lead == b"d":
            out, i = {}, i + 1
            while data[i:i + 1] != b"e":
                key, i = _decode(data, i)
                if not isinstance(key, str):
                    raise NgError(f"bencoded dictionary key at offset {i} is not a string")
                out[key], i = _decode(data, i)
            return out, i + 1
        if lead.isdigit():
            colon = data.index(b":", i)
            length = int(data[i:colon])
            start = colon + 1
            if start + length > len(data):
                raise NgError("truncated bencoded string")
            return data[start:start + length].decode("utf-8", "replace"), start + length
    except (ValueError, IndexError) as err:
        raise NgError(f"malformed bencode at offset {i}: {err}") from None
    raise NgError(f"malformed bencode at offset {i}")


class NgClient:
    def __init__(self, address: str, timeout: float = 0.5, retries: int = 1):
        host, _, port = address.rpartition(":")
        self.addr = (host or "127.0.0.1", int(port))
        self.timeout = timeout
        self.retries = retries

    def request(self, command: str, **params) -> dict:
        cookie = os.urandom(6).hex().encode()
        body = dict(params, command=command)
        packet = cookie + b" " + bencode(body)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(self.timeout)
            for _attempt in range(self.retries + 1):
                sock.sendto(packet, self.addr)
                try:
                    while True:
                        data, _ = sock.recvfrom(65535)
                        got_cookie, _, payload = data.partition(b" ")
                        if got_cookie == cookie:
                            break
                except socket.timeout:
                    continue
                reply = bdecode(payload)
                if reply.get("result") == "error":
                    raise NgError(f"rtpengine {command}: {reply.get('error-reason', 'unknown error')}")
                return reply
        raise NgError(f"rtpengine {command}: no answer from {self.addr[0]}:{self.addr[1]} "
                      f"after {self.retries + 1} tries of {self.timeout}s")

    def ping(self) -> bool:
        return self.request("ping").get("result") == "pong"

    # The commands the proxy uses beyond Kamailio's rtpengine module: call state and the
    # subscriptions behind supervisor listen-in (4#).
    def query(self, call_id: str, **params) -> dict:
        return self.request("query", **{"call-id": call_id}, **params)

    def list_calls(self, limit: int = 32) -> list[str]:
        return self.request("list", limit=limit).get("calls", [])

    def statistics(self) -> dict:
        return self.request("statistics").get("statistics", {})

    def delete(self, call_id: str, **params) -> dict:
        return self.request("delete", **{"call-id": call_id}, **params)

    def subscribe_request(self, call_id: str, from_tags: list[str] | None = None, **params) -> dict:
        """A send-only copy of the call's media: every participant, or those of `from_tags`.
        The reply carries the offer `sdp` (one m-line per source) and the subscription's `to-tag`."""
        if from_tags:
            params["from-tags"] = from_tags
        else:
            params.setdefault("flags", []).append("all")
        return self.request("subscribe request", **{"call-id": call_id}, **params)

    def subscribe_answer(self, call_id: str, to_tag: str, sdp: str, **params) -> dict:
        return self.request("subscribe answer", **{"call-id": call_id, "to-tag": to_tag, "sdp": sdp}, **params)

    def unsubscribe(self, call_id: str, to_tag: str) -> dict:
        return self.request("unsubscribe", **{"call-id": call_id, "to-tag": to_tag})
