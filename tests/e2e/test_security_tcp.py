"""Issue 9 item 3: one address cannot starve TCP.

A stack of its own with a small connection table (tcp_max_connections 200), so that a bounded
flood of half-open connections (500, from 127.0.0.x) really fills it, as 3,000 did with the
old defaults. The TCP guard closes them (more than tcp_connections_per_source half-open from
one address: all closed and the address banned), and a genuine TCP REGISTER from another
address succeeds; a connection that never completes a message is closed after
tcp_idle_seconds while one that carried SIP stays."""
from __future__ import annotations

import os
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

from kemi.config import Settings
from tests.e2e.conftest import Proxy
from tests.e2e.helpers import wait_until
from tests.e2e.sipraw import Client, digest, request
from tools.ports import free_port
from tools.stack import Stack

FLOOD = 500


@pytest.fixture(scope="module")
def small():
    base = Path(tempfile.mkdtemp(prefix="kemi-e2e-tcp-"))
    base.chmod(0o755)
    rtp_base = 10000 + ((os.getpid() + 23) % 45) * 200
    settings = Settings(sip_port=free_port(), pg_port=free_port(), rtpengine_ng=f"127.0.0.1:{free_port()}",
                        rtpengine_http="", metrics_port=free_port(), rtp_port_min=rtp_base,
                        rtp_port_max=rtp_base + 199, children=2, var_dir=str(base),
                        tcp_max_connections=200, tcp_connections_per_source=32, tcp_idle_seconds=3)
    stack = Stack(settings, durable=False)
    try:
        stack.start()
    except Exception:
        stack.stop()
        raise
    (base / "sipp").mkdir()
    yield Proxy(settings, stack, base / "sipp")
    stack.stop()
    if stack.postgres:
        stack.postgres.remove()  # its cluster lives under /var/lib/kemi (tools/pgdir.py)


def tcp_register(proxy: Proxy, number: str, password: str, ip: str = "127.0.0.1") -> int | None:
    """One REGISTER over a new TCP connection; the final status, or None if refused/unanswered."""
    try:
        client = Client(proxy.address, ip=ip, tcp=True)
    except OSError:
        return None
    try:
        ruri = f"sip:{proxy.address[0]}:{proxy.address[1]};transport=tcp"
        call_id = uuid.uuid4().hex
        first = client.request(request("REGISTER", ruri, client, number, call_id=call_id), timeout=2)
        if first is None or first.status != 401:
            return first and first.status
        auth = digest("REGISTER", ruri, number, password, first.header("WWW-Authenticate"), "Authorization")
        reply = client.request(request("REGISTER", ruri, client, number, call_id=call_id, cseq=2, extra=auth),
                               timeout=2)
        return reply and reply.status
    except OSError:
        return None
    finally:
        client.close()


def closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_half_open_flood_does_not_starve_a_genuine_tcp_client(small):
    number, password = small.subscriber()
    assert tcp_register(small, number, password) == 200
    attacker_ip = "127.0.0.31"
    held = []
    for _ in range(FLOOD):                      # bounded: 500 connections, never a byte sent
        s = socket.socket()
        s.bind((attacker_ip, 0))
        s.settimeout(2)
        try:
            s.connect(small.address)
        except OSError:
            s.close()
            continue
        held.append(s)
    assert len(held) >= 200, "the flood did not even fill the table"

    statuses = []

    def genuine_registers() -> bool:
        statuses.append(tcp_register(small, number, password, ip="127.0.0.32"))
        return statuses[-1] == 200
    wait_until(genuine_registers, timeout=15)
    wait_until(lambda: all(closed_by_peer(s) for s in held), timeout=10)
    listing = small.kemictl("ban", "list").stdout
    assert attacker_ip in listing and "tcp" in listing
    for s in held:
        s.close()
    print(f"genuine REGISTER attempts until 200: {statuses}")


def test_a_connection_without_a_message_is_closed_but_a_sip_one_stays(small):
    idle = socket.create_connection(small.address, timeout=2, source_address=("127.0.0.33", 0))
    talker = Client(small.address, ip="127.0.0.33", tcp=True)
    reply = talker.request(request("OPTIONS", f"sip:{small.address[0]}:{small.address[1]};transport=tcp", talker, "1"))
    assert reply is not None and reply.status == 200
    wait_until(lambda: closed_by_peer(idle), timeout=small.settings.tcp_idle_seconds + 10)
    assert not closed_by_peer(talker.sock), "a connection that carried SIP must stay"
    talker.sock.setblocking(True)
    reply = talker.request(request("OPTIONS", f"sip:{small.address[0]}:{small.address[1]};transport=tcp", talker, "1"))
    assert reply is not None and reply.status == 200
    talker.close()
    idle.close()


def test_tcp_message_without_content_length_is_not_accepted(small):
    client = Client(small.address, ip="127.0.0.34", tcp=True)
    msg = request("OPTIONS", f"sip:{small.address[0]}:{small.address[1]};transport=tcp", client, "1")
    msg = msg.replace(b"Content-Length: 0\r\n", b"")
    reply = client.request(msg, timeout=2)
    assert reply is None or reply.status >= 400, reply.text
    client.close()
