"""The media service's PostgreSQL access (psycopg async): stored audio (cached per process),
voicemail boxes, messages and PIN attempts. Every query is parameterised."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg

from media import audio, pin


@dataclass(frozen=True)
class Box:
    number: str
    pin_hash: str
    greeting: bytes | None
    max_seconds: int
    failed_pins: int
    locked: bool
    name: bytes | None = None     # the owner's recorded name (key 5), said in the default greeting


@dataclass(frozen=True)
class MessageInfo:
    id: int
    caller: str
    created_at: datetime
    duration_ms: int
    state: str


class Store:
    def __init__(self, dsn: str, log=lambda m: None):
        self.dsn = dsn
        self.log = log
        self._conn: psycopg.AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._audio: dict[str, np.ndarray] = {}

    async def _db(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, connect_timeout=2)
        return self._conn

    async def query(self, sql: str, params=(), fetch: str = "all"):
        async with self._lock:
            for attempt in (1, 2):
                try:
                    conn = await self._db()
                    cur = await conn.execute(sql, params)
                    if fetch == "one":
                        return await cur.fetchone()
                    if fetch == "none":
                        return None
                    return await cur.fetchall()
                except psycopg.OperationalError:
                    self._conn = None
                    if attempt == 2:
                        raise

    async def audio(self, name: str) -> np.ndarray | None:
        if name in self._audio:
            return self._audio[name]
        row = await self.query("SELECT pcm FROM audio WHERE name = %s", (name,), "one")
        if row is None:
            return None
        pcm = audio.from_pcm_bytes(bytes(row[0]))
        if len(self._audio) > 200:
            self._audio.clear()
        self._audio[name] = pcm
        return pcm

    def forget_audio(self) -> None:
        self._audio.clear()

    async def box(self, number: str) -> Box | None:
        row = await self.query("SELECT number, pin_hash, greeting, max_seconds, failed_pins, "
                               "coalesce(locked_until > now(), false), name_pcm FROM voicemail_box WHERE number = %s",
                               (number,), "one")
        if row is None:
            return None
        return Box(row[0], row[1], bytes(row[2]) if row[2] is not None else None, *row[3:6],
                   bytes(row[6]) if row[6] is not None else None)

    async def pin_failed(self, box: Box) -> bool:
        """Count a wrong PIN; True when the box is now locked."""
        failures, lock = pin.after_failure(box.failed_pins)
        await self.query("UPDATE voicemail_box SET failed_pins = %s, locked_until = CASE WHEN %s "
                         "THEN now() + make_interval(secs => %s) ELSE locked_until END WHERE number = %s",
                         (failures, lock, pin.LOCK_SECONDS, box.number), "none")
        return lock

    async def pin_ok(self, number: str) -> None:
        await self.query("UPDATE voicemail_box SET failed_pins = 0 WHERE number = %s", (number,), "none")

    async def set_pin(self, number: str, new_pin: str) -> None:
        await self.query("UPDATE voicemail_box SET pin_hash = %s WHERE number = %s",
                         (pin.hash_pin(new_pin), number), "none")

    async def set_greeting(self, number: str, pcm: np.ndarray) -> None:
        await self.query("UPDATE voicemail_box SET greeting = %s WHERE number = %s",
                         (audio.pcm_bytes(pcm), number), "none")

    async def set_name(self, number: str, pcm: np.ndarray) -> None:
        await self.query("UPDATE voicemail_box SET name_pcm = %s WHERE number = %s",
                         (audio.pcm_bytes(pcm), number), "none")

    async def new_message(self, box: str, caller: str) -> int:
        row = await self.query("INSERT INTO voicemail_message (box, caller) VALUES (%s, %s) RETURNING id",
                               (box, caller), "one")
        return row[0]

    async def append(self, message_id: int, pcm: np.ndarray, complete: bool = False) -> None:
        """Add recorded audio to a message (called every second while recording)."""
        await self.query("UPDATE voicemail_message SET pcm = pcm || %s, duration_ms = "
                         "(length(pcm) + %s) / 16, complete = %s WHERE id = %s",
                         (audio.pcm_bytes(pcm), 2 * len(pcm), complete, message_id), "none")

    async def drop_message(self, message_id: int) -> None:
        await self.query("DELETE FROM voicemail_message WHERE id = %s", (message_id,), "none")

    async def messages(self, box: str) -> list[MessageInfo]:
        rows = await self.query("SELECT id, caller, created_at, duration_ms, state FROM voicemail_message "
                                "WHERE box = %s AND length(pcm) > 0 "
                                "ORDER BY state = 'saved', created_at, id", (box,))
        return [MessageInfo(*r) for r in rows]

    async def message_audio(self, message_id: int) -> np.ndarray:
        row = await self.query("SELECT pcm FROM voicemail_message WHERE id = %s", (message_id,), "one")
        return audio.from_pcm_bytes(bytes(row[0])) if row else np.zeros(0, dtype=np.int16)

    async def mark(self, message_id: int, state: str) -> None:
        await self.query("UPDATE voicemail_message SET state = %s WHERE id = %s", (state, message_id), "none")

    async def delete(self, message_id: int) -> None:
        await self.drop_message(message_id)

    async def unsolicited_contacts(self, box: str) -> list[tuple[str, str | None]]:
        """(contact, received) of the box owner's registered phones, if the box asks for
        unsolicited message-waiting NOTIFYs; else nothing."""
        rows = await self.query("SELECT l.contact, l.received FROM location l JOIN voicemail_box b "
                                "ON b.number = l.username WHERE b.number = %s AND b.mwi_unsolicited "
                                "AND l.expires > localtimestamp", (box,))
        return [(r[0], r[1]) for r in rows]

    async def counts(self, box: str) -> tuple[int, int]:
        row = await self.query("SELECT count(*) FILTER (WHERE state = 'new'), count(*) FILTER (WHERE state = 'saved') "
                               "FROM voicemail_message WHERE box = %s AND length(pcm) > 0", (box,), "one")
        return int(row[0]), int(row[1])
