"""Starts and stops the whole stack: PostgreSQL (private cluster), the journal shipper,
rtpengine, the metrics exporter and Kamailio.

`python -m tools.stack run` is what `make run` calls; the tests use `Stack` directly with
their own ports and directory, so they never collide with a running `make run`.
Readiness is always asked for (pg_isready-style connect, NG ping, SIP OPTIONS), never slept.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg

from kemi.config import ROOT, Settings
from rtpengine.ng import NgClient, NgError
from tools import migrate, pgdir
from tools.supervise import Supervisor, restarts_file

PG_BIN = pgdir.PG_BIN
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


def as_postgres(*cmd: str, log: Path) -> None:
    """Run a PostgreSQL tool as the postgres user (from /, a directory it can enter)."""
    with open(log, "ab") as out:
        try:
            subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, stdout=out, stderr=out, cwd="/")
        except subprocess.CalledProcessError as err:
            raise StackError(f"{Path(cmd[0]).name} failed ({err.returncode})") from None
        except OSError as err:
            raise StackError(f"runuser: {err}") from None


class Postgres:
    """A private cluster owned by the postgres user (initdb refuses root), on loopback only.
    It lives in tools/pgdir.cluster_dir (by default /var/lib/kemi/<name>-<hash>), a place the
    postgres user can reach wherever the checkout is; var/log/postgres.log links to its log.
    Failures raise a one-line StackError: why, and what to do."""

    def __init__(self, settings: Settings, durable: bool = True):
        self.settings = settings
        self.base = pgdir.cluster_dir(settings.var_dir, settings.pg_dir)
        self.data = self.base / "data"
        self.sockets = self.base / "run"
        self.log = self.base / "postgres.log"
        self.log_link = Path(settings.var_dir) / "log" / "postgres.log"
        self.durable = durable
        self.name = "postgres"
        self.wanted = False
        self.lock = threading.RLock()

    def _pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def exit_reason(self) -> str:
        return f"is not running (postmaster.pid {'stale' if self._pid() else 'gone'}; see {self.log})"

    def restart(self) -> None:
        self.start()

    def running(self) -> bool:
        try:
            psycopg.connect(self._admin_dsn(), connect_timeout=1).close()
            return True
        except psycopg.Error:
            return False

    def _admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.settings.pg_port}/postgres"

    def _fail(self, doing: str, detail: str, since: int = 0) -> StackError:
        try:
            with open(self.log, "rb") as f:
                f.seek(since)
                output = f.read().decode(errors="replace")
        except OSError:
            output = ""
        why = pgdir.explain(f"{detail}\n{output}", self.base)
        return StackError(f"PostgreSQL could not be {doing} in {self.base}: {why}")

    def _create(self) -> None:
        try:
            self.base.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            self.base.mkdir(mode=0o700, exist_ok=True)
            (self.base / "owner").write_text(f"{Path(self.settings.var_dir).resolve()}\n")
            self.sockets.mkdir(mode=0o700, exist_ok=True)
            self.log.touch()
            for path in (self.base, self.sockets, self.log):
                shutil.chown(path, "postgres", "postgres")
        except (OSError, LookupError) as err:
            raise StackError(f"PostgreSQL could not be created in {self.base}: "
                             f"{pgdir.explain(str(err), self.base)} (run as root, or set KEMI_PG_DIR)") from None
        try:
            # Loopback-only development cluster: trust auth on 127.0.0.1 (see README).
            as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-instructions", log=self.log)
        except StackError as err:
            raise self._fail("created", str(err)) from None

    def _link_log(self) -> None:
        try:
            self.log_link.parent.mkdir(parents=True, exist_ok=True)
            if self.log_link.is_symlink() or self.log_link.exists():
                self.log_link.unlink()
            self.log_link.symlink_to(self.log)
        except OSError:
            pass  # a convenience only

    def start(self) -> None:
        with self.lock:
            self.wanted = True
            self._start()

    def _start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._create()
        self._link_log()
        if self.running():
            self._ensure_database()
            return
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.settings.pg_port} "
                f"-c unix_socket_directories={self.sockets} -c max_connections=200")
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        since = self.log.stat().st_size if self.log.exists() else 0
        try:
            as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                        "-o", opts, "-w", "-t", "30", "start", log=self.log)
            wait_for("PostgreSQL", self.running, 30)
        except StackError as err:
            raise self._fail("started", str(err), since) from None
        self._ensure_database()

    def _ensure_database(self) -> None:
        name = psycopg.conninfo.conninfo_to_dict(self.settings.database_url)["dbname"]
        with psycopg.connect(self._admin_dsn(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))

    def stop(self) -> None:
        with self.lock:
            self.wanted = False
            pgdir.stop(self.base)

    def remove(self) -> None:
        """Stop the cluster and delete its folder: what `make clean` does."""
        with self.lock:
            self.wanted = False
            pgdir.remove(self.base)


class Process:
    """A foreground daemon with its output in a log file, supervisable (tools/supervise.py):
    `wanted` is False after a deliberate stop, and `lock` keeps the supervisor out while it
    starts or stops."""

    name = "process"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.log = Path(settings.var_dir) / "log" / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self.wanted = False
        self.lock = threading.RLock()
        self.inherit_output = False

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 20, inherit_output: bool | None = None) -> None:
        with self.lock:
            if inherit_output is not None:
                self.inherit_output = inherit_output
            self.wanted = True
            self.log.parent.mkdir(parents=True, exist_ok=True)
            out = None if self.inherit_output else open(self.log, "ab")
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT if out else None,
                                         env=self.environment(), cwd=ROOT, start_new_session=True)
            if out:
                out.close()
            wait_for(self.name, self.ready, timeout, proc=self.proc, log=self.log)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_reason(self) -> str:
        code = None if self.proc is None else self.proc.poll()
        if code is None:
            return "is not running"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def restart(self) -> None:
        with self.lock:
            self._kill_leftovers()
            self.start()

    def _kill_leftovers(self) -> None:
        """Children of a dead main process (Kamailio's workers) must not keep its sockets."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, timeout: float = 10) -> None:
        with self.lock:
            self.wanted = False
            if self.proc is None:
                return
            if self.proc.poll() is not None:
                self._kill_leftovers()
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

    def exit_reason(self) -> str:
        return super().exit_reason() + " (Kamailio's main process exits when any child dies; see its log)"

    def start(self, timeout: float = 300, inherit_output: bool | None = None) -> None:
        # scale: Kamailio loads every subscriber into shared memory before it answers (a
        # million rows take minutes on a loaded 2-core machine); a Kamailio that dies says so at once.
        super().start(timeout, inherit_output)

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
                "-A", f'CTL_SOCK="unix:{self.ctl_socket}"',
                # edge (issue 9): flood/guessing tables, nonce lifetime, TCP limits
                "-A", f"FLOOD_REQUESTS={s.flood_requests}", "-A", f"FLOOD_WINDOW={s.flood_window}",
                "-A", f'BAN_TABLE="ban=>size=10;autoexpire={s.ban_seconds};"',
                "-A", f'AUTHFAIL_TABLE="authfail=>size=10;autoexpire={s.auth_failure_window};"',
                "-A", f'LOCKOUT_TABLE="lockout=>size=10;autoexpire={s.lockout_seconds};"',
                "-A", f"NONCE_EXPIRE={s.nonce_expire}", "-A", f"TCP_MAX_CONNECTIONS={s.tcp_max_connections}",
                # scale: the shared-memory subscriber table (kemi/subscribers.py)
                "-A", f'SUBSCRIBER_TABLE="subs=>size={s.subscriber_slots_log2};dbtable=kemi_subscriber_htable;"']

    @property
    def ctl_socket(self) -> Path:
        return Path(self.settings.var_dir) / "run" / "kamailio-ctl.sock"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.to_env())
        site = ROOT / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        env["PYTHONPATH"] = f"{ROOT}:{site}"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_directory(self.settings))  # kemi/metrics.py
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


class AgentShipper(JournalShipper):
    """agents (issue 11), tools/agent_shipper.py: agent state changes and queue statistics
    from var/agents/*.jsonl into PostgreSQL. Started before Kamailio and stopped after it."""

    name = "agent_shipper"

    @property
    def pidfile(self) -> Path:
        return Path(self.settings.var_dir) / "run" / "agent-shipper.pid"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tools.agent_shipper"]


class DirectoryLoader(Process):
    """tools/directory_loader.py: the only reader of routing data from PostgreSQL; writes the
    snapshot file every SIP worker reads (kemi/store.py). Ready: the file exists."""

    name = "directory_loader"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tools.directory_loader"]

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **self.settings.to_env()}
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_directory(self.settings))
        return env

    def ready(self) -> bool:
        from kemi.store import snapshot_path
        return snapshot_path(self.settings.var_dir).exists()

    def start(self, timeout: float = 30, inherit_output: bool | None = None) -> None:
        super().start(timeout, inherit_output)


def metrics_directory(settings: Settings) -> Path:
    """prometheus_client's multiprocess directory; emptied once per stack start (Stack.start)."""
    from tools.exporter import metrics_dir  # here: tools.exporter imports this module
    path = metrics_dir(settings)
    path.mkdir(parents=True, exist_ok=True)
    return path


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
    def __init__(self, settings: Settings, durable: bool = True, private_postgres: bool | None = None):
        if settings.rtp_port_min <= settings.sip_port <= settings.rtp_port_max:
            # rtpengine could take the SIP port for a call; Kamailio would then hear no SIP.
            raise StackError(f"KEMI_SIP_PORT {settings.sip_port} lies inside the RTP port range "
                             f"{settings.rtp_port_min}-{settings.rtp_port_max}")
        self.settings = settings
        if private_postgres is None:
            private_postgres = not settings.dsn
        self.postgres = Postgres(settings, durable) if private_postgres else None
        self.loader = DirectoryLoader(settings)
        self.rtpengine = RtpEngine(settings)
        self.kamailio = Kamailio(settings)
        from tools.exporter import Exporter  # here: tools.exporter imports this module
        self.exporter = Exporter(settings)
        self.shipper = JournalShipper(settings)
        # flows: HTTP and email for call flows, outside the SIP workers (tools/flow_helper.py)
        from tools.flow_helper import FlowHelper  # here: tools.flow_helper imports this module
        self.flow_helper = FlowHelper(settings)
        self.media = MediaService(settings)   # media
        self.agent_shipper = AgentShipper(settings)   # agents: state changes into PostgreSQL
        self.supervisor: Supervisor | None = None
        self.media_gate: MediaGate | None = None

    @property
    def supervised(self) -> list:
        """What the supervisor restarts when it dies, in start order. One more supervised
        process: one more Process subclass and one more entry here."""
        return [p for p in (self.postgres, self.loader, self.shipper, self.rtpengine, self.flow_helper,
                            self.media, self.kamailio, self.exporter, self.agent_shipper) if p is not None]

    def start_database(self) -> None:
        if self.postgres:
            self.postgres.start()
        migrate.apply(self.settings.database_url, log=lambda m: print(m, file=sys.stderr))

    def start(self, inherit_kamailio_output: bool = False, before_processes=None, say=lambda _m: None,
              supervise: bool = True) -> None:
        self.start_database()
        if before_processes:
            before_processes()
        from tools.exporter import fresh_metrics_dir
        fresh_metrics_dir(self.settings)   # an earlier run's values must not be summed in
        restarts_file(self.settings.var_dir).unlink(missing_ok=True)
        self.loader.start()
        self.shipper.start()
        say(f"journal: shipping {self.settings.var_dir}/journal to the database, log {self.shipper.log}")
        self.agent_shipper.start()   # agents
        self.rtpengine.start()
        say(f"rtpengine: NG on {self.settings.rtpengine_ng}, log {self.rtpengine.log}")
        self.flow_helper.start()
        say(f"flow helper: HTTP and email for call flows, log {self.flow_helper.log}")
        self.media.start()   # media
        say(f"media service: SIP on udp {self.settings.media_sip}, log {self.media.log}")
        self.exporter.start()
        say(f"metrics: {self.exporter.url} (rtpengine's: http://{self.settings.rtpengine_http}/metrics)")
        say(f"kamailio: SIP on udp+tcp {self.settings.sip_address}:{self.settings.sip_port} "
            f"(realm {self.settings.realm!r}); Ctrl-C stops everything")
        self.kamailio.start(inherit_output=inherit_kamailio_output)
        if supervise:
            log = supervisor_log(self.settings)
            self.supervisor = Supervisor(self.supervised, self.settings.var_dir, log=log)
            self.supervisor.start()
            self.media_gate = MediaGate(self, log)
            self.media_gate.start()

    def stop(self) -> None:
        if self.media_gate is not None:
            self.media_gate.stop()
        if self.supervisor is not None:
            self.supervisor.stop()
        self.exporter.stop()
        self.kamailio.stop()
        self.flow_helper.stop()  # flows:
        self.shipper.stop()  # after Kamailio: ships what it wrote up to its stop
        self.agent_shipper.stop()   # agents: likewise
        self.loader.stop()
        self.rtpengine.stop()
        self.media.stop()   # media
        if self.postgres:
            self.postgres.stop()


class MediaGate:
    """Keeps SIP workers from waiting on a hung rtpengine. Kamailio's rtpengine module only
    learns that rtpengine hangs by timing out a call's command (each worker on its own), and
    re-tests it with pings that block workers again. This thread pings rtpengine itself
    every INTERVAL s (TIMEOUT s each); after MISSES misses it switches the module's rtpengine
    off (`rtpengine.enable all 0`: calls connect at once, media end to end) and back on as
    soon as rtpengine answers again. While rtpengine is healthy it re-enables every REFRESH s,
    which also ends a false "disabled" that one slow reply caused in the module.

    When rtpengine comes back it works through the commands queued while it hung, creating
    sessions for offers Kamailio gave up on; twice after a recovery (RECONCILE s later) the
    gate deletes every rtpengine session older than MIN_AGE s that has no Kamailio dialog."""

    INTERVAL, TIMEOUT, MISSES, REFRESH = 0.25, 0.2, 2, 5.0
    RECONCILE, MIN_AGE = (3.0, 15.0), 2.0

    def __init__(self, stack: "Stack", log):
        self.stack = stack
        self.log = log
        self.client = NgClient(stack.settings.rtpengine_ng, timeout=self.TIMEOUT, retries=0)
        self.healthy = True
        self.misses = 0
        self.last_rpc = 0.0
        self.down_since = 0.0
        self.reconcile_at: list[float] = []
        self.switch_offs = 0
        self.published: bool | None = None   # the state last written for the exporter
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="media-gate", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _ping(self) -> bool:
        try:
            return self.client.ping()
        except (NgError, OSError):
            return False

    def _switch(self, on: bool) -> None:
        self.last_rpc = time.monotonic()
        if self.stack.kamailio.alive():
            self.stack.kamailio.rpc("rtpengine.enable", "all", "1" if on else "0")

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            try:
                self.check(self._ping())
            except Exception as err:   # never let the gate die
                self.log(f"media gate: {err!r}")

    def check(self, answered: bool) -> None:
        now = time.monotonic()
        self.misses = 0 if answered else self.misses + 1
        if self.healthy and self.misses >= self.MISSES:
            self.healthy, self.down_since = False, now
            self._switch(False)
            self.log(f"media gate: rtpengine does not answer NG pings ({self.MISSES} x {self.TIMEOUT} s); "
                     "calls connect without media anchoring until it does")
        elif not self.healthy and answered:
            self.healthy = True
            self._switch(True)
            self.log(f"media gate: rtpengine answers again after {now - self.down_since:.1f} s; "
                     "media anchoring back on")
            self.reconcile_at = [now + delay for delay in self.RECONCILE]
        elif now - self.last_rpc > self.REFRESH:
            self._switch(self.healthy)   # also after a Kamailio restart, which forgets the switch
        if self.healthy and self.reconcile_at and now >= self.reconcile_at[0]:
            self.reconcile_at.pop(0)
            self.reconcile()
        self._publish()

    def _publish(self) -> None:
        """kemi_media_anchoring / kemi_media_gate_switch_offs_total (tools/supervise.py)."""
        if self.published is self.healthy:
            return
        if not self.healthy:
            self.switch_offs += 1
        self.published = self.healthy
        var_dir = getattr(self.stack.settings, "var_dir", None)
        if var_dir:
            from tools.supervise import write_media_gate
            write_media_gate(var_dir, self.healthy, self.switch_offs)

    def reconcile(self) -> int:
        """Delete rtpengine sessions no Kamailio dialog knows (calls that failed or were
        connected unanchored while rtpengine hung). Returns how many were deleted."""
        client = NgClient(self.stack.settings.rtpengine_ng, timeout=2, retries=1)
        dialogs = set(re.findall(r"call-id:\s*(\S+)", self.stack.kamailio.rpc("dlg.list")))
        deleted = 0
        for call_id in client.list_calls(limit=100000):
            if call_id in dialogs:
                continue
            try:
                created = client.query(call_id).get("created", 0)
                if time.time() - float(created or 0) < self.MIN_AGE:
                    continue
                client.delete(call_id)
                deleted += 1
            except NgError:
                continue   # ended meanwhile
        if deleted:
            self.log(f"media gate: deleted {deleted} rtpengine session(s) without a call "
                     "(offers rtpengine handled after Kamailio had given up on them)")
        return deleted


def supervisor_log(settings: Settings):
    """Supervisor lines go to stderr (the `make run` terminal) and to var/log/supervisor.log."""
    path = Path(settings.var_dir) / "log" / "supervisor.log"

    def log(message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        print(line, file=sys.stderr, flush=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass
    return log


def run() -> int:
    from provision import demo
    settings = Settings.from_env()
    stack = Stack(settings)
    # Started from a script, SIGINT may arrive ignored; Ctrl-C and SIGTERM must always stop all.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        stack.start(inherit_kamailio_output=True, before_processes=lambda: demo.load_if_empty(settings),
                    say=print)
        while True:   # the supervisor thread restarts what dies; Ctrl-C ends this
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping ...", file=sys.stderr)
        return 0
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


def database_only() -> int:
    """`python -m tools.stack db`: create/start the private cluster and apply the migrations,
    leave it running (for kemictl, or to check a first start); `stop` stops it."""
    settings = Settings.from_env()
    try:
        Stack(settings).start_database()
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"database ready: {settings.database_url}")
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "run"
    if cmd == "run":
        sys.exit(run())
    if cmd == "db":
        sys.exit(database_only())
    if cmd == "stop":
        Postgres(Settings.from_env()).stop()
        sys.exit(0)
    sys.exit("usage: python -m tools.stack [run|db|stop]")
