"""Free loopback ports for test and benchmark stacks."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A port free for both UDP and TCP on loopback."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


def udp_block_free(base: int, count: int = 4) -> bool:
    """Whether UDP ports base..base+count-1 can all be bound on loopback (SIPp binds its media
    ports base..base+3 even when no media flows)."""
    try:
        for port in range(base, base + count):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
