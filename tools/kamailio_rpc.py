"""A small client for Kamailio's jsonrpcs FIFO (kamailio.cfg: jsonrpcs transport 2, the FIFO
`kamailio_rpc.fifo` in Kamailio's run directory, -Y). One request at a time: the request is
written to Kamailio's FIFO with a `reply_name`, the answer read from a FIFO of our own in
/tmp (jsonrpcs' fifo_reply_dir). Used by the directory loader to set and delete single
htable keys (about a millisecond each, no process started per call) and by tests.

    rpc = KamailioRpc.for_var_dir(var_dir)
    rpc.call("htable.sets", "subs", "1001", "...")   # -> the JSON-RPC result, or RpcError
"""
from __future__ import annotations

import itertools
import json
import os
import select
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any


def _remove(path: Path, fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
    path.unlink(missing_ok=True)


class RpcError(Exception):
    """Kamailio did not answer (not running, FIFO missing, timeout) or answered an error
    (`code`: the JSON-RPC error code, e.g. 404 for a missing htable key; None: no answer)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class KamailioRpc:
    def __init__(self, fifo: Path, timeout: float = 5.0):
        self.fifo = fifo
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._reply_dir = Path(tempfile.gettempdir())
        self._reply: Path | None = None
        self._reply_fd: int | None = None

    @classmethod
    def for_var_dir(cls, var_dir: str, timeout: float = 5.0) -> "KamailioRpc":
        return cls(Path(var_dir) / "run" / "kamailio_rpc.fifo", timeout)

    def _reply_fifo(self) -> tuple[Path, int]:
        if self._reply is None or self._reply_fd is None:
            path = self._reply_dir / f"kemi_rpc_{os.getpid()}_{id(self):x}"   # jsonrpcs allows no dot
            path.unlink(missing_ok=True)
            os.mkfifo(path, 0o600)
            # read-write: the FIFO never reports end-of-file between Kamailio's answers
            self._reply, self._reply_fd = path, os.open(path, os.O_RDWR | os.O_NONBLOCK)
            # removed when this object goes away or the interpreter exits (SIGTERM included)
            self._finalizer = weakref.finalize(self, _remove, path, self._reply_fd)
        return self._reply, self._reply_fd

    def close(self) -> None:
        if self._reply is not None:
            self._finalizer()
        self._reply = self._reply_fd = None

    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        reply, fd = self._reply_fifo()
        request_id = next(self._ids)
        request = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params),
                              "reply_name": reply.name, "id": request_id}) + "\n"
        try:
            out = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:   # ENOENT: no Kamailio; ENXIO: nobody reads the FIFO
            raise RpcError(f"Kamailio's RPC FIFO {self.fifo} is not served: {err.strerror}") from None
        try:
            data = request.encode()
            while data:
                try:
                    data = data[os.write(out, data):]
                except BlockingIOError:
                    select.select([], [out], [], 0.1)
        finally:
            os.close(out)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        buf = b""
        decoder = json.JSONDecoder()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()    # a late answer must not be read as the next call's
                raise RpcError(f"{method}: no answer from Kamailio within {self.timeout if timeout is None else timeout} s")
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                continue
            buf += chunk
            try:
                answer, _ = decoder.raw_decode(buf.decode("utf-8", errors="replace").lstrip())
            except ValueError:
                continue     # not complete yet
            if not isinstance(answer, dict) or answer.get("id") != request_id:
                buf = b""    # an answer to an older, timed-out request
                continue
            if "error" in answer:
                error = answer["error"] if isinstance(answer["error"], dict) else {}
                raise RpcError(f"{method}: {answer['error']}", error.get("code"))
            return answer.get("result")
