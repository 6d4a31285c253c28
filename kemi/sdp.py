"""Is an offer's SDP well-formed enough to hand to rtpengine? Pure (no KSR).

A caller's broken SDP must get its own `488 Not Acceptable Here` with a reason, before
rtpengine sees it, so one caller can never make Kamailio's rtpengine module give up on
rtpengine for everybody else. The rules are the RFC 4566 basics rtpengine needs: `v=0`
first, an `o=` and an `s=` line, every line `x=value` with printable text, at least one `m=`
line with a numeric port and a format, and an IP connection address for every active stream.
`problem()` returns what is wrong, in words fit for a reason phrase, or None.
"""
from __future__ import annotations

import ipaddress
import re

MAX_BYTES = 32 * 1024
_LINE = re.compile(r"^[a-z]=[\x20-\x7e\x80-\U0010ffff]*$")
_MEDIA = re.compile(r"^m=([A-Za-z0-9_.-]+) (\d{1,5})(?:/\d{1,5})? ([A-Za-z0-9/_.-]+)((?: [^ ]+)+)$")


def _address(c_value: str) -> str | None:
    parts = c_value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        return "c= must be 'IN IP4|IP6 address'"
    try:
        ip = ipaddress.ip_address(parts[2].split("/", 1)[0])
    except ValueError:
        return "the connection address must be an IP address"
    if (ip.version == 4) != (parts[1] == "IP4"):
        return "the connection address does not match its address type"
    return None


def problem(body: str | bytes | None) -> str | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return "malformed SDP: not UTF-8"
    if len(body.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return f"malformed SDP: larger than {MAX_BYTES} bytes"
    lines = [ln for ln in body.replace("\r\n", "\n").split("\n") if ln != ""]
    if not lines:
        return None     # no offer in this INVITE (late offer): nothing to check
    if lines[0] != "v=0":
        return "malformed SDP: it must start with v=0"
    for number, line in enumerate(lines, 1):
        if not _LINE.match(line):
            return f"malformed SDP: line {number} is not type=value text"
    kinds = [ln[0] for ln in lines]
    if "o" not in kinds or len(lines[kinds.index("o")][2:].split()) != 6:
        return "malformed SDP: the o= line needs 6 fields"
    if "s" not in kinds:
        return "malformed SDP: no s= line"
    if "m" not in kinds:
        return "malformed SDP: no m= line"
    first_media = kinds.index("m")
    session_c = [ln[2:] for ln in lines[:first_media] if ln[0] == "c"]
    for c in session_c:
        why = _address(c)
        if why:
            return f"malformed SDP: {why}"
    sections = []
    for line in lines[first_media:]:
        if line[0] == "m":
            sections.append([line])
        else:
            sections[-1].append(line)
    for index, section in enumerate(sections, 1):
        match = _MEDIA.match(section[0])
        if not match or int(match.group(2)) > 65535:
            return f"malformed SDP: m= line {index} needs media, a port 0-65535, a protocol and formats"
        media_c = [ln[2:] for ln in section if ln[0] == "c"]
        for c in media_c:
            why = _address(c)
            if why:
                return f"malformed SDP: {why}"
        if int(match.group(2)) != 0 and not media_c and not session_c:
            return f"malformed SDP: stream {index} has no connection address (c=)"
    return None
