"""Starts and stops the whole stack: PostgreSQL (private cluster), the journal shipper,
rtpengine, the metrics exporter and Kamailio.

`python -m tools.stack run` is what `make run` calls; the tests use `Stack` directly with
their own ports and directory, so they never collide with a running `make run`.
Readiness is always asked for (pg_isready-style connect, NG ping, SIP OPTIONS), never slept.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

from kemi.config import ROOT, Settings
from rtpengine.ng import NgClient, NgError
from tools import migrate

PG_BIN = Path("/usr/lib/postgresql/15/bin")
KAMAILIO = "/usr/sbin/kamailio"
RTPENGINE = "/usr/bin/rtpengine"


class StackError(RuntimeError):
    pass


def wait_for(what: str, check, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode}; see {log}\n{tail(log)}")
        if check():
            return
        time.sleep(0.05)
    raise StackError(f"{what} not ready after {timeout}s; see {log}\n{tail(log)}")


def tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def as_postgres(*cmd: str, log: Path | None = None) -> None:
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, stdout=out, stderr=out)
    except subprocess.CalledProcessError as err:
        raise StackError(f"{' '.join(cmd)} failed ({err.returncode}); see {log}\n{tail(log)}") from None
    finally:
        if log:
            out.close()


class Postgres:
    """A private cluster owned by the postgres user (initdb refuses root), on loopback only."""

    def __init__(self, settings: Settings, durable: bool = True):
        self.settings = settings
        self.base = Path(settings.var_dir) / "pg"
        self.data = self.base / "data"
        self.sockets = self.base / "run"
        self.log = Path(settings.var_dir) / "log" / "postgres.log"
        self.durable = durable

    def running(self) -> bool:
        try:
            psycopg.connect(self._admin_dsn(), connect_timeout=1).close()
            return True
        except psycopg.Error:
            return False

    def _admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.settings.pg_port}/postgres"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if not (self.data / "PG_VERSION").exists():
            self.base.mkdir(parents=True, exist_ok=True)
            self.sockets.mkdir(exist_ok=True)
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
            # Loopback-only development cluster: trust auth on 127.0.0.1 (see README).
            as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-instructions", log=self.log)
        shutil.chown(self.log, "postgres", "postgres") if self.log.exists() else None
        if not self.running():
            opts = (f"-c listen_addresses=127.0.0.1 -c port={self.settings.pg_port} "
                    f"-c unix_socket_directories={self.sockets} -c max_connections=200")
            if not self.durable:
                opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            self.log.touch()
            shutil.chown(self.log, "postgres", "postgres")
            as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                        "-o", opts, "-w", "-t", "30", "start", log=self.log)
        wait_for("PostgreSQL", self.running, 30, log=self.log)
        self._ensure_database()

    def _ensure_database(self) -> None:
        name = psycopg.conninfo.conninfo_to_dict(self.settings.database_url)["dbname"]
        with psycopg.connect(self._admin_dsn(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", log=self.log)
            except StackError:
                pass


class Process:
    """A foreground daemon with its output in a log file."""

    name = "process"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.log = Path(settings.var_dir) / "log" / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 20, inherit_output: bool = False) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = None if inherit_output else open(self.log, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT if out else None,
                                     env=self.environment(), cwd=ROOT, start_new_session=True)
        if out:
            out.close()
        wait_for(self.name, self.ready, timeout, proc=self.proc, log=self.log)

    def stop(self, timeout: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class RtpEngine(Process):
    name = "rtpengine"

    def command(self) -> list[str]:
        s = self.settings
        return [RTPENGINE, "--config-file=none", "--table=-1", "--foreground", "--log-stderr",
                "--log-level=5", f"--interface={s.sip_address}", f"--listen-ng={s.rtpengine_ng}",
                f"--port-min={s.rtp_port_min}", f"--port-max={s.rtp_port_max}", "--delete-delay=0",
                f"--pidfile={Path(s.var_dir) / 'rtpengine.pid'}"] + (
                [f"--listen-http={s.rtpengine_http}"] if s.rtpengine_http else [])  # its Prometheus /metrics

    def ready(self) -> bool:
        try:
            return NgClient(self.settings.rtpengine_ng, timeout=0.2, retries=0).ping()
        except (NgError, OSError):
            return False


class Kamailio(Process):
    name = "kamailio"

    def command(self) -> list[str]:
        s = self.settings
        run_dir = Path(s.var_dir) / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        return [KAMAILIO, "-f", str(ROOT / "kamailio.cfg"), "-DD", "-E",
                "-Y", str(run_dir), "-n", str(s.children), "-m", str(s.shm_mb), "-M", str(s.pkg_mb),
                "-l", f"udp:{s.sip_address}:{s.sip_port}", "-l", f"tcp:{s.sip_address}:{s.sip_port}",
                "-A", f'DBURL="{s.kamailio_db_url}"',
                "-A", f'RTPENGINE_SOCK="udp:{s.rtpengine_ng}"',
                "-A", f'KEMI_ENTRY="{ROOT / "kemi" / "entry.py"}"',
                "-A", f'CTL_SOCK="unix:{self.ctl_socket}"']

    @property
    def ctl_socket(self) -> Path:
        return Path(self.settings.var_dir) / "run" / "kamailio-ctl.sock"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.to_env())
        site = ROOT / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        env["PYTHONPATH"] = f"{ROOT}:{site}"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        from tools.exporter import fresh_metrics_dir  # here: tools.exporter imports this module
        env["PROMETHEUS_MULTIPROC_DIR"] = str(fresh_metrics_dir(self.settings))  # kemi/metrics.py
        return env

    def ready(self) -> bool:
        return sip_options(self.settings.sip_address, self.settings.sip_port) == 200

    def rpc(self, *args: str) -> str:
        out = subprocess.run(["kamcmd", "-s", f"unix:{self.ctl_socket}", *args],
                             capture_output=True, text=True, timeout=10)
        return out.stdout + out.stderr


class JournalShipper(Process):
    """tools/journal_shipper.py: call-journal files into PostgreSQL. Started before Kamailio
    and stopped after it, so it ships every record written up to a clean stop."""

    name = "journal_shipper"

    @property
    def pidfile(self) -> Path:
        return Path(self.settings.var_dir) / "run" / "journal-shipper.pid"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tools.journal_shipper"]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.settings.to_env()}

    def ready(self) -> bool:  # connected, and holding its directory
        try:
            return self.pidfile.read_text() == str(self.proc.pid)
        except OSError:
            return False

    def stop(self, timeout: float = 30) -> None:  # it drains for up to 20 s
        super().stop(timeout)


# media: the media service (issue 13), one more supervised process; its log is var/log/media.log.
class MediaService(Process):
    name = "media"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "media"]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.settings.to_env(), "PYTHONDONTWRITEBYTECODE": "1"}

    def ready(self) -> bool:
        host, _, port = self.settings.media_sip.rpartition(":")
        return sip_options(host, int(port)) == 200

    def start(self, timeout: float = 60, inherit_output: bool = False) -> None:   # first start makes the prompts
        super().start(timeout, inherit_output)


def sip_options(host: str, port: int, timeout: float = 0.3) -> int | None:
    """Send one OPTIONS to the proxy itself; returns the reply code or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.settimeout(timeout)
        lport = sock.getsockname()[1]
        tag = uuid.uuid4().hex[:10]
        msg = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {host}:{lport};branch=z9hG4bK{tag};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:ping@{host}>;tag={tag}\r\nTo: <sip:{host}:{port}>\r\n"
               f"Call-ID: ping-{tag}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        try:
            sock.sendto(msg.encode(), (host, port))
            data = sock.recv(65535).decode(errors="replace")
        except (socket.timeout, OSError):
            return None
        try:
            return int(data.split(" ", 2)[1])
        except (IndexError, ValueError):
            return None


class Stack:
    def __init__(self, settings: Settings, durable: bool = True):
        if settings.rtp_port_min <= settings.sip_port <= settings.rtp_port_max:
            # rtpengine could take the SIP port for a call; Kamailio would then hear no SIP.
            raise StackError(f"KEMI_SIP_PORT {settings.sip_port} lies inside the RTP port range "
                             f"{settings.rtp_port_min}-{settings.rtp_port_max}")
        self.settings = settings
        self.postgres = None if settings.dsn else Postgres(settings, durable)
        self.rtpengine = RtpEngine(settings)
        self.kamailio = Kamailio(settings)
        from tools.exporter import Exporter  # here: tools.exporter imports this module
        self.exporter = Exporter(settings)
        self.shipper = JournalShipper(settings)
        self.media = MediaService(settings)   # media

    def start_database(self) -> None:
        if self.postgres:
            self.postgres.start()
        migrate.apply(self.settings.database_url, log=lambda m: print(m, file=sys.stderr))

    def start(self, inherit_kamailio_output: bool = False) -> None:
        self.start_database()
        self.shipper.start()
        self.rtpengine.start()
        self.media.start()   # media
        self.kamailio.start(inherit_output=inherit_kamailio_output)
        self.exporter.start()

    def stop(self) -> None:
        self.exporter.stop()
        self.kamailio.stop()
        self.shipper.stop()  # after Kamailio: ships what it wrote up to its stop
        self.rtpengine.stop()
        self.media.stop()   # media
        if self.postgres:
            self.postgres.stop()


def run() -> int:
    from provision import demo
    settings = Settings.from_env()
    stack = Stack(settings)
    # Started from a script, SIGINT may arrive ignored; Ctrl-C and SIGTERM must always stop all.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        stack.start_database()
        demo.load_if_empty(settings)
        stack.shipper.start()
        print(f"journal: shipping {settings.var_dir}/journal to the database, log {stack.shipper.log}")
        stack.rtpengine.start()
        print(f"rtpengine: NG on {settings.rtpengine_ng}, log {stack.rtpengine.log}")
        stack.media.start()   # media
        print(f"media service: SIP on udp {settings.media_sip}, log {stack.media.log}")   # media
        stack.exporter.start()
        print(f"metrics: {stack.exporter.url} (rtpengine's: http://{settings.rtpengine_http}/metrics)")
        print(f"kamailio: SIP on udp+tcp {settings.sip_address}:{settings.sip_port} "
              f"(realm {settings.realm!r}); Ctrl-C stops everything")
        stack.kamailio.start(inherit_output=True)
        stack.kamailio.proc.wait()
        print("kamailio exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", file=sys.stderr)
        return 0
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "run"
    if cmd == "run":
        sys.exit(run())
    if cmd == "stop":
        Postgres(Settings.from_env()).stop()
        sys.exit(0)
    sys.exit("usage: python -m tools.stack [run|stop]")
