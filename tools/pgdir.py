"""Where the private PostgreSQL cluster of a checkout lives, and why it could not start.

The cluster runs as the `postgres` system user, which cannot enter a checkout below a
directory only root may traverse (`/root`, a `mktemp -d` folder). So what that user must
reach (data directory, socket directory, its log) lives outside the checkout, in a folder of
its own under /var/lib/kemi, named after the checkout's runtime directory (`KEMI_VAR_DIR`):

    /var/lib/kemi/<last part of the path>-<12 hex digits of sha256(resolved path)>/
        data/  run/  postgres.log  owner   (owner: the var dir it belongs to, for humans)

The name is a pure function of the path, so `make clean` finds it again without any state;
`KEMI_PG_DIR` overrides it. Standard library only: `make clean` runs it with /usr/bin/python3
even before the virtual environment exists.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

SYSTEM_BASE = Path("/var/lib/kemi")
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def cluster_dir(var_dir: str, override: str = "", base: Path = SYSTEM_BASE) -> Path:
    """The per-checkout folder of the private cluster (pure)."""
    if override:
        return Path(override)
    resolved = str(Path(var_dir).resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:12]
    parts = [p for p in Path(resolved).parts if p not in ("/", "var")]
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", parts[-1] if parts else "root")[:40].lstrip(".") or "x"
    return base / f"{slug}-{digest}"


# (pattern in the postgres/initdb output, why, what to do) -- first match wins.
_REASONS = [
    (r"could not bind IPv4 address .*Address already in use|port \d+ .*in use|Is another postmaster",
     "its port is already taken by another program",
     "stop that program or choose another port with KEMI_PG_PORT=..."),
    (r"No space left on device",
     "the disk is full", "free space on the file system of {dir}"),
    (r"Permission denied|could not access directory|could not change directory|Operation not permitted",
     "the postgres user cannot reach {dir}",
     "make every parent of {dir} traversable by 'postgres' (chmod o+x), or set KEMI_PG_DIR to a folder it can reach"),
    (r"user .?postgres.? does not exist|runuser: user postgres does not exist|invalid user",
     "the 'postgres' system user does not exist", "install PostgreSQL 15: run 'make setup' (apt-get install postgresql)"),
    (r"No such file or directory.*(initdb|pg_ctl)|initdb: not found|pg_ctl: not found",
     "PostgreSQL 15 is not installed", "run 'make setup' (apt-get install postgresql)"),
    (r"database files are incompatible with server|could not read .*PG_VERSION|invalid value for parameter",
     "the existing cluster in {dir} is damaged or from another PostgreSQL version",
     "run 'make clean' to remove it (the data is lost) and start again"),
    (r"could not create shared memory segment|could not map anonymous shared memory",
     "the system refused shared memory", "lower max_connections or raise the kernel's shared memory limits"),
    (r"lock file .* already exists",
     "another PostgreSQL owns {dir}", "stop it ('make clean' stops this checkout's) and start again"),
]


def explain(output: str, directory: Path) -> str:
    """One line saying why PostgreSQL could not be created or started, and what to do (pure)."""
    for pattern, why, todo in _REASONS:
        if re.search(pattern, output, re.IGNORECASE):
            return f"{why.format(dir=directory)}; {todo.format(dir=directory)}"
    last = next((ln.strip() for ln in reversed(output.splitlines()) if ln.strip()), "no output")
    return f"{last[:200]}; see {directory / 'postgres.log'}, or run 'make clean' and start again"


def stop(directory: Path) -> None:
    data = directory / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data),
                        "-m", "fast", "-w", "-t", "30", "stop"], cwd="/",
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def remove(directory: Path) -> None:
    """Stop the cluster and delete its folder (only a folder this module names)."""
    stop(directory)
    if not directory.exists():
        return
    if not (directory / "owner").exists():  # never delete a folder this project did not make
        raise SystemExit(f"error: {directory} has no 'owner' file; not removing it")
    shutil.rmtree(directory)
    try:
        directory.parent.rmdir()  # /var/lib/kemi itself, once the last checkout is gone
    except OSError:
        pass


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from kemi.config import Settings  # stdlib only as well

    settings = Settings.from_env()
    where = cluster_dir(settings.var_dir, settings.pg_dir)
    cmd = argv[1] if len(argv) > 1 else "where"
    if cmd == "where":
        print(where)
    elif cmd == "stop":
        stop(where)
    elif cmd == "clean":
        if settings.dsn:
            return 0
        remove(where)
        print(f"removed {where}")
    else:
        print("usage: python3 -m tools.pgdir [where|stop|clean]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
