"""All configuration in one place: environment variables with defaults that work out of the box.

Every setting is read from the environment (``KEMI_*``); `make run` uses the defaults, the tests
override ports and the database. The same `Settings` object is used by the Kamailio workers,
the stack launcher and `kemictl`, so they always agree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    # Where SIP is served (UDP and TCP on the same address and port).
    sip_address: str = "127.0.0.1"
    sip_port: int = 5060
    # The SIP domain phones use and the digest realm; ha1 values depend on the realm, so
    # changing it means setting every password again.
    realm: str = "kemi"
    # PostgreSQL. Empty: the private cluster under var/pg that `make run` creates.
    dsn: str = ""
    pg_port: int = 5433
    # rtpengine's NG control socket and its RTP port range.
    rtpengine_ng: str = "127.0.0.1:2223"
    rtp_port_min: int = 30000   # 4 ports a call: 10000 ports carry 2500 calls
    rtp_port_max: int = 39999
    # Monitoring: rtpengine's own HTTP /metrics (empty: off) and the proxy's Prometheus
    # endpoint that tools/exporter.py serves (/metrics on metrics_address:metrics_port).
    rtpengine_http: str = "127.0.0.1:9092"
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9091
    # Hunt groups: seconds a member rings before the hunt moves on, and whether a 603
    # Decline moves the hunt on (True) or ends it with the 603 (False).
    ring_timeout: int = 15
    hunt_on_decline: bool = True
    # Kamailio: SIP worker processes per listener, shared and private memory (MB).
    children: int = 4
    shm_mb: int = 256
    pkg_mb: int = 32
    # scale: hash slots (as a power of two) of the shared-memory subscriber table; 16 = 65,536
    # slots, fine up to a few hundred thousand subscribers; 20 for a million (README "Data path").
    subscriber_slots_log2: int = 16
    # Where runtime state lives (database cluster, sockets, logs).
    var_dir: str = str(ROOT / "var")
    # edge: flood, guessing and replay protection (issue 9; README "Security").
    # A source sending more than flood_requests requests in flood_window seconds (Kamailio's
    # pike) is banned for ban_seconds; flood_exempt lists addresses (comma-separated) never
    # rate-limited, e.g. an SBC or a load generator (trunks are exempt by their address).
    flood_requests: int = 300
    flood_window: int = 2
    flood_exempt: str = ""
    ban_seconds: int = 600
    # Failed authentications (wrong password or unknown user) within auth_failure_window
    # seconds: this many from one address bans it; this many for one number locks that
    # number out for lockout_seconds (it is then challenged even with the right password).
    auth_failures_per_source: int = 10
    auth_failures_per_number: int = 20
    auth_failure_window: int = 600
    lockout_seconds: int = 900
    # Digest nonces are single-use (qop=auth with nonce counting) and live this long.
    nonce_expire: int = 30
    # TCP: connections in total, connections one address may hold, and the seconds a
    # connection may stay open without completing a SIP message.
    tcp_max_connections: int = 4096
    tcp_connections_per_source: int = 64
    tcp_idle_seconds: int = 10

    # faults: where the private PostgreSQL cluster lives (data, sockets, its log). Empty:
    # /var/lib/kemi/<name>-<hash of var_dir> (tools/pgdir.py), a place the postgres user can
    # reach wherever the checkout is.
    pg_dir: str = ""

    # flows: the media service's SIP address (contract.md), the flow helper's UDP port (0: a
    # free one, published in var_dir/run/flow_helper.json), the SMTP server email nodes use,
    # and, for tests only, a file holding the ISO time the flow engine takes as "now".
    media_sip: str = "127.0.0.1:5080"
    flow_helper_port: int = 0
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "kemi@localhost"
    flow_clock_file: str = ""

    # media: the media service (issue 13, media/). Its SIP UDP address (the flow/media
    # contract's name and default), who may send it INVITEs (empty: the proxy's own
    # sip_address:sip_port), how many calls it carries at once, the voicemail access number.
    media_trusted: str = ""
    media_max_legs: int = 500
    voicemail_number: str = "8999"

    # phones: feature codes dialled from a phone (kemi/feature_codes.py). Pickup: code alone
    # picks up a call ringing in one of the caller's groups, code + number that member's call.
    # Agent keys: login/logout (+ queue number: one queue, alone: all), pause (+ reason code),
    # unpause, do-not-disturb toggle. Each must start with * or #; no code may prefix another.
    code_pickup: str = "*8"
    code_login: str = "*61"
    code_logout: str = "*62"
    code_pause: str = "*63"
    code_unpause: str = "*64"
    code_dnd: str = "*65"

    # launcher: the conference launcher (seed 003, media/launcher.py). SMS gateway: a URL
    # template ({to}, {text} replaced, POSTed with a JSON body) and its bearer token (empty:
    # none); the loopback HTTP endpoint other systems launch with (port 0: a free one) and its
    # token (empty: a random one); both published in var_dir/run/launch-http.json (mode 0600).
    launch_sms_url: str = ""
    launch_sms_token: str = ""
    launch_http_port: int = 0
    launch_http_token: str = ""

    @property
    def database_url(self) -> str:
        """libpq DSN for psycopg."""
        return self.dsn or f"postgresql://postgres@127.0.0.1:{self.pg_port}/kemi"

    @property
    def kamailio_db_url(self) -> str:
        """The same database in the URL form Kamailio's db_postgres expects."""
        url = self.database_url
        for scheme in ("postgresql://", "postgres://"):
            if url.startswith(scheme):
                return "postgres://" + url[len(scheme):]
        raise ValueError(f"KEMI_DSN must be a postgresql:// URL for Kamailio, got {url!r}")

    @property
    def domain(self) -> str:
        return self.sip_address

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = env.get("KEMI_" + f.name.upper())
            if raw is None:
                continue
            if f.type in ("int", int):
                values[f.name] = int(raw)
            elif f.type in ("bool", bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[f.name] = raw
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in another process."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out["KEMI_" + f.name.upper()] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out
