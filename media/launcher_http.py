"""The launcher's HTTP endpoint for other systems (seed 003), inside the media service, on
loopback only:

    POST /launches       {"room": "8100", "pin": "2468", "contacts": [{"name": ..., "work": ...,
                          "home": ..., "mobile": ..., "email": ...}], "title": ..., "welcome": ...,
                          "record": false, "scheme": "CONFCALL", "dial_in": ...}
                         -> 201 {"id": N}
    GET  /launches/N     -> 200 the launch's status (who joined, when, how; SMS/email results)

`Authorization: Bearer <token>`: `KEMI_LAUNCH_HTTP_TOKEN`, or when that is empty a random
token, published with the port in var/run/launch-http.json (mode 0600). Refusals: 401 (no or
wrong token), 413 (body over 16 kB or headers over 8 kB), 400 naming the field and the rule
(the same rules as kemictl: kemi/core/launcher.py), 403 (wrong PIN for the room), 404, 405,
429 (more than 5 requests/s, burst 10, or 1 wrong token/s, burst 3). Every refusal is logged
(rate-limited) and counted. `decide` is pure; the server below it does the I/O.
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

from kemi.core import launcher as core
from media import launcher_store as q, pin
from media.service import Bucket

MAX_BODY = 16 * 1024
MAX_HEAD = 8 * 1024
READ_TIMEOUT = 5.0
MAX_CONNECTIONS = 16
REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}
STATUS_PATH = re.compile(r"/launches/([0-9]{1,18})")


@dataclass(frozen=True)
class Create:
    request: core.Request


@dataclass(frozen=True)
class Show:
    launch_id: int


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str


def decide(method: str, path: str, headers: dict[str, str], body: bytes, token: str) -> Create | Show | Refusal:
    """What a request asks for, or why it is refused (pure)."""
    given = headers.get("authorization", "")
    if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].strip().encode(), token.encode()):
        return Refusal(401, "missing or wrong token (Authorization: Bearer ...)")
    if path == "/launches":
        if method != "POST":
            return Refusal(405, "use POST /launches")
        if len(body) > MAX_BODY:
            return Refusal(413, f"body over {MAX_BODY} bytes")
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return Refusal(400, "body must be JSON")
        try:
            req = core.parse_request(data)
        except core.LaunchError as err:
            return Refusal(400, str(err))
        if req.pin is None:
            return Refusal(400, "field 'pin': the room's PIN is required (it is sent to the contacts)")
        return Create(req)
    match = STATUS_PATH.fullmatch(path)
    if match:
        if method != "GET":
            return Refusal(405, "use GET /launches/ID")
        return Show(int(match.group(1)))
    return Refusal(404, "no such resource (POST /launches, GET /launches/ID)")


class Endpoint:
    def __init__(self, store, settings, log, counter=lambda name: None):
        self.store, self.settings, self.log, self.count = store, settings, log, counter
        self.token = settings.launch_http_token or secrets.token_urlsafe(32)
        self.requests = Bucket(rate=5, burst=10)
        self.bad_tokens = Bucket(rate=1, burst=3)
        self.log_bucket = Bucket(rate=1, burst=5)
        self.connections = 0
        self.port = 0

    async def start(self, var_dir: str) -> int:
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.settings.launch_http_port,
                                            limit=MAX_HEAD)
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        path = Path(var_dir) / "run" / "launch-http.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": f"http://127.0.0.1:{self.port}", "port": self.port, "token": self.token}, f)
        os.replace(tmp, path)
        self.log(f"launch endpoint on http://127.0.0.1:{self.port} (token in {path})")
        return self.port

    def refuse(self, status: int, why: str) -> None:
        self.count(f"launch_http_{status}")
        if self.log_bucket.allow("log"):
            self.log(f"launch endpoint: refused {status}: {why}")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            status, answer = await self._handle(reader)
        except Exception as err:      # never let one request take the service down
            self.count("launch_errors")
            self.log(f"launch endpoint: {err!r}")
            status, answer = 500, {"error": "internal error"}
        finally:
            self.connections -= 1
        if status >= 400:
            self.refuse(status, answer.get("error", ""))
        data = json.dumps(answer, default=str).encode()
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
        try:
            writer.write(head + data)
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, dict]:
        if self.connections > MAX_CONNECTIONS:
            return 503, {"error": "too many connections"}
        if not self.requests.allow("all"):
            return 429, {"error": "too many requests; slow down"}
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        except (asyncio.LimitOverrunError, ValueError):
            return 413, {"error": f"headers over {MAX_HEAD} bytes"}
        except (asyncio.IncompleteReadError, asyncio.TimeoutError):
            return 400, {"error": "incomplete request"}
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return 400, {"error": "not an HTTP/1.x request line"}
        method, path = parts[0], parts[1]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return 400, {"error": "Content-Length must be a number"}
        if length < 0 or length > MAX_BODY:
            body = b"x" * (MAX_BODY + 1) if length > MAX_BODY else b""
        else:
            try:
                body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError):
                return 400, {"error": "body shorter than Content-Length"}
        decision = decide(method, path, headers, body, self.token)
        if isinstance(decision, Refusal):
            if decision.status == 401 and not self.bad_tokens.allow("all"):
                return 429, {"error": "too many wrong tokens; slow down"}
            return decision.status, {"error": decision.error}
        if isinstance(decision, Show):
            return await self.show(decision.launch_id)
        return await self.create(decision.request)

    async def show(self, launch_id: int) -> tuple[int, dict]:
        launch = await self.store.query(q.STATUS, (launch_id,), "one")
        if launch is None:
            return 404, {"error": f"no launch {launch_id}"}
        contacts = await self.store.query(q.STATUS_CONTACTS, (launch_id,))
        events = await self.store.query(q.STATUS_EVENTS, (launch_id,))
        return 200, q.status_dict(launch, contacts, events)

    async def create(self, req: core.Request) -> tuple[int, dict]:
        room = await self.store.query(q.ROOM, (req.room,), "one")
        if room is None:
            return 400, {"error": f"field 'room': no conference room {req.room}"}
        ok = await asyncio.get_running_loop().run_in_executor(None, pin.verify, req.pin, room[0])
        if not ok:
            return 403, {"error": f"field 'pin': not the PIN of room {req.room}"}
        scheme = await self.store.query(q.SCHEME, (req.scheme,), "one")
        if scheme is None and req.scheme != core.CONFCALL.name:
            return 400, {"error": f"field 'scheme': no scheme {req.scheme!r} (kemictl launch scheme list)"}
        row = await self.store.query(q.INSERT, q.insert_params(req, req.pin or "", False, q.scheme_body(scheme),
                                                                "http"), "one")
        self.count("launch_http_created")
        self.log(f"launch {row[0]} created over HTTP: room {req.room}, {len(req.contacts)} contacts")
        return 201, {"id": row[0], "status": f"/launches/{row[0]}"}
