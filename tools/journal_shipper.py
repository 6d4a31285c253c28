"""The journal shipper: moves call-journal records from var_dir/journal/*.jsonl (written by
the Kamailio workers, kemi/journal.py) into PostgreSQL (journal_event, sql/004_journal.sql).

tools/stack.py starts it before Kamailio and stops it after Kamailio, so every record
written up to a clean stop lands. Every TICK it reads the new complete lines of every file,
at most BATCH records, and inserts them in one transaction together with the new read
offsets (journal_file): a crash or restart neither loses nor repeats a record. One shipper
per directory (a PostgreSQL advisory lock). SIGTERM or SIGINT: ship what is left, exit.
A file that is fully shipped, finished (its writer ended it or is gone) and idle for
REMOVE_IDLE seconds is removed. If PostgreSQL is away, records wait in the files.

    python -m tools.journal_shipper        # settings from KEMI_* like everything else
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psycopg

from kemi import journal
from kemi.config import Settings
from tools import journal_files
from tools.journal_files import COLUMNS, Chunk

TICK = 0.2            # seconds between looks at the files
BATCH = 500           # records per transaction at most
REMOVE_IDLE = 60.0    # a finished file is removed once shipped and untouched this long
HOUSEKEEPING = 5.0    # seconds between looks for files to remove
DRAIN_SECONDS = 20.0  # at most this long shipping what is left after SIGTERM
RECONNECT = 1.0
COPY = f"COPY journal_event (file_id, file_offset, {', '.join(COLUMNS)}) FROM STDIN"
INSERT = (f"INSERT INTO journal_event (file_id, file_offset, {', '.join(COLUMNS)}) "
          f"VALUES ({', '.join(['%s'] * (len(COLUMNS) + 2))})")


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} journal-shipper: {message}", flush=True)


class Busy(RuntimeError):
    """Another shipper holds this directory."""


class Shipper:
    def __init__(self, settings: Settings, tick: float = TICK, remove_idle: float = REMOVE_IDLE):
        self.dir = os.path.abspath(journal.directory(settings.var_dir))
        self.dsn = settings.database_url
        self.tick = tick
        self.remove_idle = remove_idle
        self.pidfile = Path(settings.var_dir) / "run" / "journal-shipper.pid"
        self.conn: psycopg.Connection | None = None
        self.files: dict[str, tuple[int, int]] = {}  # name -> (journal_file id, bytes shipped)
        self.stopping = False
        self.shipped = 0
        self._next = 0  # file to start the next batch with (round robin)

    # ---------------------------------------------------------------- database

    def connect(self) -> None:
        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        try:
            if not conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", ("kemi-journal " + self.dir,)).fetchone()[0]:
                raise Busy(f"another journal shipper is shipping {self.dir}")
            prefix = self.dir + os.sep
            rows = conn.execute("SELECT id, path, shipped FROM journal_file WHERE starts_with(path, %s)", (prefix,)).fetchall()
        except BaseException:
            conn.close()
            raise
        present = journal_files.names(self.dir)
        gone = [file_id for file_id, path, _ in rows if os.path.basename(path) not in present]
        if gone:  # removed after their last batch; their names never come back
            conn.execute("DELETE FROM journal_file WHERE id = ANY(%s)", (gone,))
        self.files = {os.path.basename(path): (file_id, shipped) for file_id, path, shipped in rows
                      if file_id not in gone}
        self.conn = conn

    def disconnect(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg.Error:
                pass
        self.conn = None

    def file_id(self, name: str) -> tuple[int, int]:
        if name not in self.files:
            self.files[name] = tuple(self.conn.execute(
                "INSERT INTO journal_file (path) VALUES (%s) ON CONFLICT (path) DO UPDATE SET path = EXCLUDED.path "
                "RETURNING id, shipped", (os.path.join(self.dir, name),)).fetchone())
        return self.files[name]

    # ---------------------------------------------------------------- shipping

    def ship_once(self) -> int:
        """One batch: returns the number of lines consumed (0: nothing new)."""
        present = journal_files.names(self.dir)
        names = sorted(n for n, st in present.items() if st.st_size > self.files.get(n, (0, 0))[1])
        if not names:
            return 0
        self._next %= len(names)
        names = names[self._next:] + names[:self._next]
        self._next += 1
        chunks: list[tuple[str, int, Chunk]] = []
        room = BATCH
        for name in names:
            file_id, offset = self.file_id(name)
            try:
                chunk = journal_files.read(os.path.join(self.dir, name), offset, room)
            except FileNotFoundError:
                continue
            if chunk.end > chunk.start:
                chunks.append((name, file_id, chunk))
                room -= len(chunk.rows) + len(chunk.bad)
            if room <= 0:
                break
        if not chunks:
            return 0
        try:
            self.insert(chunks, careful=False)
        except (psycopg.DataError, psycopg.IntegrityError) as err:
            log(f"a batch was refused ({err}); inserting its records one by one")
            self.insert(chunks, careful=True)
        lines = 0
        for name, file_id, chunk in chunks:
            self.files[name] = (file_id, chunk.end)
            lines += len(chunk.rows) + len(chunk.bad)
            self.shipped += len(chunk.rows)
            for offset in chunk.bad:
                log(f"skipped a broken line at {name}:{offset}")
        return max(lines, 1)

    def insert(self, chunks: list[tuple[str, int, Chunk]], careful: bool) -> None:
        """The records and the new offsets, in one transaction. careful: one savepoint per
        record, skipping (and logging) any the database refuses."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            if careful:
                for name, file_id, chunk in chunks:
                    for row in chunk.rows:
                        try:
                            with self.conn.transaction():
                                cur.execute(INSERT, (file_id, *row))
                        except (psycopg.DataError, psycopg.IntegrityError) as err:
                            log(f"skipped the record at {name}:{row[0]}: {err}")
            else:
                with cur.copy(COPY) as copy:
                    for _, file_id, chunk in chunks:
                        for row in chunk.rows:
                            copy.write_row((file_id, *row))
            for name, file_id, chunk in chunks:
                cur.execute("UPDATE journal_file SET shipped = %s, shipped_at = now() WHERE id = %s AND shipped = %s",
                            (chunk.end, file_id, chunk.start))
                if cur.rowcount != 1:
                    raise psycopg.OperationalError(f"the offset of {name} changed under us; reloading")

    def remove_finished(self) -> None:
        """Remove files that are fully shipped and that nobody writes to any more: first the
        file, then its offset row (a crash in between leaves a row that connect() drops)."""
        now = time.time()
        for name, st in journal_files.names(self.dir).items():
            file_id, shipped = self.files.get(name, (None, 0))
            path = os.path.join(self.dir, name)
            if not journal_files.finished(path, st, now, self.remove_idle):
                continue
            if shipped < st.st_size:
                if journal_files.read(path, shipped, 1).end > shipped:
                    continue  # complete lines still to ship
                log(f"dropping {st.st_size - shipped} bytes of an unfinished last line of {name}")
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            if file_id is not None:
                self.conn.execute("DELETE FROM journal_file WHERE id = %s", (file_id,))
                del self.files[name]

    # ---------------------------------------------------------------- the process

    def stop(self, *_) -> None:
        self.stopping = True

    def run(self) -> int:
        os.makedirs(self.dir, exist_ok=True)
        log(f"shipping {self.dir} to the database, pid {os.getpid()}")
        last_error, housekeeping = "", 0.0
        while not self.stopping:
            try:
                if self.conn is None:
                    self.connect()
                    self.write_pidfile()
                    last_error = ""
                lines = self.ship_once()
                if time.monotonic() >= housekeeping:
                    self.remove_finished()
                    housekeeping = time.monotonic() + HOUSEKEEPING
            except (psycopg.Error, Busy, OSError) as err:
                if str(err) != last_error:
                    log(f"waiting: {err}")
                    last_error = str(err)
                self.disconnect()
                time.sleep(RECONNECT)
                continue
            if lines < BATCH:
                time.sleep(self.tick)
        return self.drain()

    def drain(self) -> int:
        """Ship what is left (Kamailio has stopped), for at most DRAIN_SECONDS."""
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            if self.conn is None:
                self.connect()
            while time.monotonic() < deadline and self.ship_once():
                pass
        except (psycopg.Error, Busy, OSError) as err:
            log(f"stopping without shipping everything (it waits in {self.dir}): {err}")
        self.disconnect()
        self.pidfile.unlink(missing_ok=True)
        log(f"stopped; {self.shipped} records shipped since start")
        return 0

    def write_pidfile(self) -> None:
        """Tells tools/stack.py the shipper is connected and holds its directory."""
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.pidfile.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(self.pidfile)


def main() -> int:
    shipper = Shipper(Settings.from_env())
    signal.signal(signal.SIGTERM, shipper.stop)
    signal.signal(signal.SIGINT, shipper.stop)
    return shipper.run()


if __name__ == "__main__":
    sys.exit(main())
