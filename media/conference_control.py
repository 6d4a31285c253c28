"""The control socket of the live conference rooms (kemictl conference status|kick|mute).

TCP on 127.0.0.1 only, an ephemeral port; one JSON line in, one JSON line out:
    {"token": "...", "op": "status", "room": "8100"}            -> {"status": 200, ...room...}
    {"token": "...", "op": "kick", "room": "8100", "id": "..."}  -> {"status": 200} | 404
    {"token": "...", "op": "mute"|"unmute", "room": ..., "id": ...}
The service writes its address and a random token (32 bytes) to var/run/media-control.json
with mode 0600 at start: only the service's own user (who runs kemictl) can read it.
Safety: a request line is at most 4 kB and must arrive within 2 s; at most 16 connections at
once; 20 requests/s (burst 40) in all, and 2 wrong tokens/s (burst 5) - beyond either, 429
and the connection is closed. Every refusal is logged (rate-limited) and counted.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from media.service import Bucket

MAX_LINE = 4096
READ_TIMEOUT = 2.0
MAX_CONNECTIONS = 16
ROOM = re.compile(r"[0-9]{2,32}")
PARTICIPANT = re.compile(r"[!-~]{1,200}")   # a Call-ID: printable ASCII, no spaces
OPS = ("status", "kick", "mute", "unmute")


@dataclass(frozen=True)
class Command:
    op: str
    room: str | None
    participant: str | None


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str


def decide(line: bytes, token: str) -> Command | Refusal:
    """Pure: a request line -> the command, or why not (status like HTTP)."""
    try:
        request = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return Refusal(400, "request must be one line of JSON")
    if not isinstance(request, dict):
        return Refusal(400, "request must be a JSON object")
    given = request.get("token")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), token.encode()):
        return Refusal(401, "wrong or missing token")
    op = request.get("op")
    if op not in OPS:
        return Refusal(400, f"field 'op': must be one of {', '.join(OPS)}")
    room = request.get("room")
    if room is not None and (not isinstance(room, str) or not ROOM.fullmatch(room)):
        return Refusal(400, "field 'room': must be 2-32 digits")
    participant = request.get("id")
    if op != "status":
        if room is None:
            return Refusal(400, f"field 'room': required for {op}")
        if not isinstance(participant, str) or not PARTICIPANT.fullmatch(participant):
            return Refusal(400, "field 'id': must be a participant id (1-200 printable characters)")
    return Command(op, room, participant if op != "status" else None)


def execute(cmd: Command, rooms) -> dict:
    if cmd.op == "status":
        return {"status": 200, **rooms.status(cmd.room)}
    if cmd.op == "kick":
        ok = rooms.kick(cmd.room, cmd.participant)
    else:
        ok = rooms.mute(cmd.room, cmd.participant, cmd.op == "mute")
    return {"status": 200} if ok else {"status": 404, "error": f"no participant {cmd.participant} in room {cmd.room}"}


class Control:
    def __init__(self, rooms_of_service, log, counter=lambda name: None):
        self.rooms_of_service = rooms_of_service
        self.log = log
        self.count = counter
        self.token = secrets.token_urlsafe(32)
        self.requests = Bucket(rate=20, burst=40)
        self.bad_tokens = Bucket(rate=2, burst=5)
        self.log_bucket = Bucket(rate=1, burst=5)
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self, path: Path) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, limit=MAX_LINE)
        self.port = self.server.sockets[0].getsockname()[1]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"address": "127.0.0.1", "port": self.port, "token": self.token, "pid": os.getpid()}, f)
        os.replace(tmp, path)
        self.log(f"conference control on tcp 127.0.0.1:{self.port} (token in {path})")
        return self.port

    def refuse(self, why: str) -> None:
        self.count("control_refused")
        if self.log_bucket.allow("log"):
            self.log(f"conference control: refused: {why}")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.connections > MAX_CONNECTIONS:
                self.refuse("too many connections")
                return await self._reply(writer, {"status": 503, "error": "too many connections"})
            if not self.requests.allow("all"):
                self.refuse("rate limit")
                return await self._reply(writer, {"status": 429, "error": "too many requests; slow down"})
            try:
                line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
            except (asyncio.LimitOverrunError, ValueError):
                self.refuse("request too long")
                return await self._reply(writer, {"status": 400, "error": f"request longer than {MAX_LINE} bytes"})
            except (asyncio.TimeoutError, ConnectionError):
                self.refuse("no request within the time limit")
                return None
            decision = decide(line, self.token)
            if isinstance(decision, Refusal):
                if decision.status == 401 and not self.bad_tokens.allow("all"):
                    self.refuse("wrong tokens, rate limit")
                    return await self._reply(writer, {"status": 429, "error": "too many wrong tokens; slow down"})
                self.refuse(decision.error)
                return await self._reply(writer, {"status": decision.status, "error": decision.error})
            await self._reply(writer, execute(decision, self.rooms_of_service()))
        except Exception as err:   # never let a client stop the service
            self.log(f"conference control: error {err!r}")
        finally:
            self.connections -= 1
            try:
                writer.close()
            except Exception:
                pass

    async def _reply(self, writer: asyncio.StreamWriter, body: dict) -> None:
        writer.write((json.dumps(body) + "\n").encode())
        try:
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError):
            pass


def control_path(var_dir: str) -> Path:
    return Path(var_dir) / "run" / "media-control.json"


async def start(service, var_dir: str, log) -> Control:
    from media.conference import rooms_of
    control = Control(lambda: rooms_of(service), log, service.count)
    await control.start(control_path(var_dir))
    return control


def request(var_dir: str, op: str, timeout: float = 3.0, **fields: str) -> dict:
    """Client side (kemictl): one request to the local media service's control socket."""
    import socket
    info = json.loads(control_path(var_dir).read_text())
    payload = json.dumps({"token": info["token"], "op": op, **fields}).encode() + b"\n"
    with socket.create_connection((info["address"], info["port"]), timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.decode() or "{}")
