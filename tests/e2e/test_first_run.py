"""Issue 8: a checkout inside a directory only root can enter (/root/..., `mktemp -d`) starts
its database, and `make clean` removes everything it created, wherever that lives. Runs the
launcher's database start alone (`python -m tools.stack db`) from a copy of this checkout."""
from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from kemi.config import ROOT
from tools.pgdir import cluster_dir
from tools.ports import free_port

PYTHON = str(ROOT / ".venv" / "bin" / "python")


@pytest.fixture(autouse=True)
def stop_phones():
    """Overrides conftest's: these tests need no shared proxy stack."""
    yield


@pytest.fixture
def checkout():
    """A copy of this checkout's files (tracked and new, not ignored) in a 0700 folder."""
    private = Path(tempfile.mkdtemp(prefix="kemi-first-run-"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    dest = private / "kemi"
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    yield dest
    subprocess.run(["make", "-s", "clean"], cwd=dest, env=clean_env(dest, 0), capture_output=True, timeout=120)
    shutil.rmtree(private, ignore_errors=True)


def clean_env(dest: Path, pg_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEMI_")}
    if pg_port:
        env["KEMI_PG_PORT"] = str(pg_port)
    return env


def launcher_db(dest: Path, pg_port: int) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "tools.stack", "db"], cwd=dest, env=clean_env(dest, pg_port),
                          capture_output=True, text=True, timeout=180)


def postgres_pids_of(data: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"postgres -D {data}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_database_starts_from_a_checkout_in_a_private_directory_and_make_clean_removes_it(checkout):
    port = free_port()
    run = launcher_db(checkout, port)
    assert run.returncode == 0, run.stderr
    where = cluster_dir(str(checkout / "var"))
    assert (where / "data" / "PG_VERSION").exists()
    assert where.stat().st_uid == int(subprocess.check_output(["id", "-u", "postgres"]))
    # the user's directories were not loosened
    assert stat.S_IMODE(checkout.parent.stat().st_mode) == 0o700
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/kemi", connect_timeout=5) as conn:
        applied = {r[0] for r in conn.execute("SELECT name FROM schema_migration")}
    assert applied == {p.name for p in (checkout / "sql").glob("[0-9][0-9][0-9]_*.sql")}
    assert (checkout / "var" / "log" / "postgres.log").resolve() == where / "postgres.log"

    # a second start reuses the cluster
    again = launcher_db(checkout, port)
    assert again.returncode == 0, again.stderr
    assert "migrate: applied" not in again.stderr

    clean = subprocess.run(["make", "-s", "clean"], cwd=checkout, env=clean_env(checkout, port),
                           capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr
    assert not where.exists()
    assert not (checkout / "var").exists()
    assert postgres_pids_of(where / "data") == []


def test_a_database_that_cannot_start_says_why_in_one_line(checkout):
    with socket.socket() as busy:  # the port is taken by someone else
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        run = launcher_db(checkout, busy.getsockname()[1])
    assert run.returncode == 1
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert "PostgreSQL could not be started" in errors[0] and "KEMI_PG_PORT" in errors[0], errors[0]
