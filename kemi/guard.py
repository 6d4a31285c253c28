"""The edge's adapter (issue 9): reads the facts of a request with KSR, asks kemi.edge what
to do and applies it: bans, the request-rate limit (pike), failed-authentication counters and
number lock-outs (htables that expire by themselves, see kamailio.cfg), silent drops and
refusals. The handler calls it at the request entry, before any routing.

Table entries (read by `kemictl ban list`): ban[ADDRESS] = "REASON:UNTIL" (epoch seconds),
lockout[NUMBER] = "auth:UNTIL", authfail["ip:ADDRESS" | "n:NUMBER"] = failures in the window.
"""
from __future__ import annotations

import json
import time

import KSR  # provided by app_python3

from kemi import edge, metrics
from kemi.ksr import log_info, pv

BAN, AUTHFAIL, LOCKOUT, TCPOK = "ban", "authfail", "lockout", "tcpok"


def _get(table: str, key: str):
    try:
        value = KSR.htable.sht_get(table, key)
    except Exception:
        return None
    return value if value not in (None, "", 0) else None


def _inc(table: str, key: str) -> int:
    """Add one to a counter; a missing (or expired) counter starts at 1. sht_inc returns the
    new value, or -255 when the item does not exist."""
    count = KSR.htable.sht_inc(table, key)
    if not isinstance(count, int) or count <= 0:
        KSR.htable.sht_seti(table, key, 1)
        count = 1
    return count


class Guard:
    def __init__(self, settings):
        self.exempt = edge.exempt_sources(settings.flood_exempt)
        self.limits = edge.GuessLimits(settings.auth_failures_per_source, settings.auth_failures_per_number)
        self.own = (settings.sip_address, settings.sip_port)
        # The proxy's own requests (pua's PUBLISH, keepalives) and the media service's (MWI
        # NOTIFY, BYE) come from trusted sockets: never rate-limited, never banned.
        media_host, _, media_port = settings.media_sip.rpartition(":")
        self.trusted_sockets = {self.own, (media_host, int(media_port or 0))}
        self.ban_seconds = settings.ban_seconds
        self.lockout_seconds = settings.lockout_seconds
        self.tcp_per_source = settings.tcp_connections_per_source
        self.tcp_idle = settings.tcp_idle_seconds
        self.first_seen: dict[int, float] = {}     # the TCP guard's own (one timer process)

    # ------------------------------------------------------------ every request, first

    @staticmethod
    def mark_stream() -> None:
        """A whole SIP message (request or reply) arrived on this TCP/TLS connection: the
        TCP guard keeps it."""
        if pv("$pr") in ("tcp", "tls"):
            KSR.htable.sht_seti(TCPOK, pv("$conid") or "0", 1)

    def admit(self, is_trunk) -> bool:
        """False: the request was dropped or answered here and the route must end.
        `is_trunk(ip, port)` tells a provisioned trunk (never rate-limited)."""
        ip = pv("$si") or ""
        if _get(BAN, ip):
            metrics.edge_dropped("banned")
            return False
        port = int(pv("$sp") or 0)
        if (ip not in self.exempt and (ip, port) not in self.trusted_sockets and not is_trunk(ip, port)
                and not self.retransmission() and KSR.pike.pike_check_req() < 0):
            self.ban(ip, "flood")
            metrics.edge_dropped("flood")
            return False
        method = pv("$rm") or ""
        ruri = pv("$ru")
        if ruri is None:   # not parsed (an unknown scheme?): the R-URI as written on the first line
            ruri = edge.first_line_uri(pv("$(mb{s.substr,0,512})") or "")
        facts = edge.RequestFacts(method=method, ruri=ruri, version=pv("$rv"),
                                  user_agent=pv("$ua") or "",
                                  proxy_require=pv("$(hdr(Proxy-Require)[*])") or "")
        verdict = edge.screen(facts)
        if isinstance(verdict, edge.Drop):
            metrics.edge_dropped(verdict.reason)
            return False
        if isinstance(verdict, edge.Refuse):
            reason = {505: "version", 416: "scheme", 420: "proxy_require"}.get(verdict.status, "other")
            metrics.edge_refused(reason)
            log_info(f"edge: {method} from {ip}:{pv('$sp')} refused {verdict.status} ({reason})")
            if method != "ACK":
                for header in verdict.headers:
                    KSR.hdr.append_to_reply(header + "\r\n")
                KSR.sl.sl_send_reply(verdict.status, verdict.reason)
            return False
        if KSR.siputils.has_totag() < 0 and KSR.hdr.is_present("Route") > 0:
            # A preloaded route on an initial request: the proxy decides where requests go.
            KSR.hdr.remove("Route")
            metrics.edge_refused("preloaded_route")
            log_info(f"edge: removed preloaded Route from {method} from {ip}:{pv('$sp')}")
        return True

    @staticmethod
    def retransmission() -> bool:
        """A request tm already holds a transaction for: a retransmission, or the ACK of a
        negative final reply. It is not counted toward the flood limit: a phone retransmits
        when the proxy is slow to answer (CPU contention, a hung rtpengine, a restart), and
        counting that got the phones' own address banned for the proxy's slowness (issue 9:
        the hung-rtpengine "stall" was a flood ban of the load generator's address). tm
        answers a retransmission from the transaction (the last reply again).

        Initial requests only, not ACK or CANCEL: their route checks the transaction itself
        (t_precheck_trans / t_check_trans reuse this lookup). An in-dialog request goes
        straight to t_relay(), which must do its own lookup: a transaction found here first
        makes it refuse ("transaction already in process"), and end-to-end ACKs were lost
        that way."""
        if pv("$rm") in ("ACK", "CANCEL") or KSR.siputils.has_totag() > 0:
            return False
        return KSR.tm.t_lookup_request() > 0

    # ------------------------------------------------------------ REGISTER

    def self_contact(self) -> bool:
        """True (after replying 403) when a REGISTER contact points at the proxy itself."""
        uri = edge.self_contact(pv("$(hdr(Contact)[*])") or "", self.own)
        if uri is None:
            return False
        metrics.edge_refused("self_contact")
        log_info(f"edge: REGISTER from {pv('$si')} with a contact at this proxy ({uri}) refused")
        KSR.sl.sl_send_reply(403, "Forbidden - contact points at this proxy")
        return True

    # ------------------------------------------------------------ authentication

    def digest_uri_mismatch(self) -> str | None:
        """The credentials' `uri=` when it names another resource than the R-URI the
        request arrived with ($ou: before any rewriting), else None. Checked after the
        digest itself, so it tells nobody whether a number exists."""
        digest_uri, ruri = pv("$adu") or "", pv("$ou") or ""
        if edge.digest_uri_matches(digest_uri, ruri, self.own):
            return None
        metrics.edge_refused("digest_uri")
        return digest_uri

    def locked_out(self, number: str) -> bool:
        return bool(number) and _get(LOCKOUT, number) is not None

    def auth_failed(self, number: str | None) -> None:
        """A wrong password or an unknown user: count per source and per number; ban the
        source or lock the number out past the limits."""
        ip = pv("$si") or ""
        by_source = _inc(AUTHFAIL, "ip:" + ip)
        by_number = _inc(AUTHFAIL, "n:" + number) if number else 0
        ban, lock = edge.after_failure(by_source, by_number, self.limits)
        if ban and ip not in self.exempt:
            self.ban(ip, "auth")
        if lock and not self.locked_out(number):
            KSR.htable.sht_sets(LOCKOUT, number, f"auth:{int(time.time()) + self.lockout_seconds}")
            metrics.edge_lockout()
            log_info(f"edge: number {number} locked out for {self.lockout_seconds}s after {by_number} "
                     f"failed authentications (last from {ip})")

    def ban(self, ip: str, reason: str) -> None:
        if not ip or _get(BAN, ip):
            return
        KSR.htable.sht_sets(BAN, ip, f"{reason}:{int(time.time()) + self.ban_seconds}")
        metrics.edge_ban(reason)
        log_info(f"edge: banned {ip} for {self.ban_seconds}s ({reason})")

    # ------------------------------------------------------------ replies

    @staticmethod
    def reply_dropped() -> bool:
        """True when a reply must not be forwarded (broadcast/multicast Via)."""
        verdict = edge.screen_reply(pv("$(hdr(Via)[*])") or "")
        if verdict is None:
            return False
        metrics.edge_dropped(verdict.reason)
        log_info(f"edge: reply {pv('$rs')} from {pv('$si')} dropped ({verdict.reason})")
        return True

    # ------------------------------------------------------------ TCP (rtimer, every second)

    def tcp_sweep(self) -> None:
        """Close connections that never completed a SIP message in time, and every
        half-open connection of an address over its limit (which is then banned)."""
        KSR.jsonrpcs.exec('{"jsonrpc": "2.0", "method": "core.tcp_list", "id": 1}')
        reply = json.loads(pv("$jsonrpl(body)") or "{}")
        listed = edge.parse_tcp_list(reply.get("result"))
        now = time.monotonic()
        seen = {cid: self.first_seen.get(cid, now) for cid, _ in listed}
        self.first_seen = seen
        conns = [edge.TcpConn(cid, ip, now - seen[cid], _get(TCPOK, str(cid)) is not None) for cid, ip in listed]
        banned = frozenset(ip for ip in {c.src_ip for c in conns} if _get(BAN, ip))
        close, ban = edge.tcp_sweep(conns, self.tcp_per_source, self.tcp_idle, banned)
        for ip in ban:
            self.ban(ip, "tcp")
        for cid in close:
            KSR.tcpops.tcp_close_connection_id(cid)
        if close:
            metrics.tcp_closed(len(close))
            log_info(f"edge: closed {len(close)} TCP connections (no SIP message in {self.tcp_idle}s, "
                     f"or over {self.tcp_per_source} from one address: {', '.join(ban) or '-'})")
