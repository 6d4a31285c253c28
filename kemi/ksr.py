"""Small helpers over KSR shared by the adapter modules (handler, ring, outbound)."""
from __future__ import annotations

import KSR  # provided by app_python3

from kemi.edge import safe_text
from kemi.identity import Identity, quoted_display

EXIT = -255
IDENTITY_HEADERS = ("P-Asserted-Identity", "P-Preferred-Identity")


def _log(fn, msg: str) -> None:
    """A log line that any text can be in (control characters and invalid UTF-8 escaped);
    logging never raises into a route."""
    try:
        fn(f"kemi: {safe_text(msg, 16000, newlines=True)}\n")
    except Exception:
        pass


def log_info(msg: str) -> None:
    _log(KSR.info, msg)


def log_error(msg: str) -> None:
    _log(KSR.err, msg)


def pv(name: str) -> str | None:
    """A pseudo-variable as text, or None. Safe for any bytes a sender put in the message:
    app_python3 raises when a value is not valid UTF-8; such a value reads as None."""
    try:
        value = KSR.pv.get(name)
    except Exception:
        return None
    return None if value is None else str(value)


def new_transaction() -> bool:
    """Create the INVITE's transaction. False means stop: an error (answered) or a
    retransmission that tm absorbed (t_newtran() == 0, nothing to answer)."""
    rc = KSR.tm.t_newtran()
    if rc < 0:
        KSR.sl.sl_reply_error()
    return rc > 0


def from_display() -> str | None:
    """The From display name without its quotes."""
    name = (pv("$fn") or "").strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return name or None


def strip_identity_headers() -> None:
    """A phone's (or an untrusted trunk's) identity claims are never passed on."""
    for name in IDENTITY_HEADERS:
        KSR.hdr.remove(name)


def quoted(display: str | None) -> str:
    return quoted_display(display)  # kemi/identity.py: escaping, control characters, length


def replace_from(display: str | None, uri: str) -> None:
    """Rewrite From; uac restores the original in the rest of the dialog (rr mode)."""
    KSR.uac.uac_replace_from(quoted(display), uri)


def apply_identity(who: Identity, domain: str) -> None:
    """Write an Identity into the request: From, Privacy and the P-Asserted-Identity /
    P-Preferred-Identity that kemi.identity allows only toward trusted trunks."""
    replace_from(who.from_display, who.from_uri(domain))
    if who.anonymous:
        KSR.hdr.remove("Privacy")
        KSR.hdr.append("Privacy: id\r\n")
    if who.assert_identity:
        KSR.hdr.append(f"P-Asserted-Identity: <sip:{who.number}@{domain}>\r\n")
    if who.preferred_identity:
        name = f"{quoted(who.display)} " if who.display else ""
        KSR.hdr.append(f"P-Preferred-Identity: {name}<sip:{who.number}@{domain}>\r\n")


def encode_identity(who: Identity) -> str:
    return "|".join((who.number, who.display or "", str(int(who.anonymous)),
                     str(int(who.assert_identity)), str(int(who.preferred_identity))))


def decode_identity(text: str) -> Identity:
    number, rest = text.split("|", 1)
    display, anonymous, pai, ppi = rest.rsplit("|", 3)   # the display may contain "|"
    return Identity(number, display or None, anonymous == "1", pai == "1", ppi == "1")
