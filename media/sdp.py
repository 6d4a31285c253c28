"""SDP offer/answer for one G.711 audio stream with RFC 4733 events. Pure."""
from __future__ import annotations

from dataclasses import dataclass

from media.g711 import PCMA, PCMU


class SdpError(ValueError):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Offer:
    address: str
    port: int
    payload_type: int          # the G.711 codec chosen (caller's preference order)
    event_type: int | None     # telephone-event payload type, if offered
    direction: str = "sendrecv"


def parse_offer(body: str) -> Offer:
    address = None
    media_address = None
    port = None
    formats: list[int] = []
    rtpmap: dict[int, str] = {}
    direction = "sendrecv"
    in_audio = False
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith("c=") and len(line.split()) >= 3:
            if in_audio:
                media_address = line.split()[2]
            else:
                address = line.split()[2]
        elif line.startswith("m="):
            parts = line[2:].split()
            in_audio = parts[0] == "audio" and port is None
            if in_audio:
                try:
                    port = int(parts[1])
                    formats = [int(f) for f in parts[3:] if f.isdigit()]
                except (IndexError, ValueError):
                    raise SdpError(400, "Bad Request - malformed m=audio line") from None
        elif in_audio and line.startswith("a=rtpmap:"):
            pt, _, name = line[9:].partition(" ")
            if pt.isdigit():
                rtpmap[int(pt)] = name.split("/")[0].lower()
        elif in_audio and line[2:] in ("sendrecv", "sendonly", "recvonly", "inactive"):
            direction = line[2:]
    if port is None:
        raise SdpError(488, "Not Acceptable Here - no audio stream offered")
    address = media_address or address
    if not address:
        raise SdpError(400, "Bad Request - SDP without a connection address")
    codec = next((pt for pt in formats if (pt in (PCMU, PCMA) and rtpmap.get(pt, "pcmu" if pt == 0 else "pcma") in ("pcmu", "pcma"))), None)
    if codec is None:
        raise SdpError(488, "Not Acceptable Here - the media service speaks PCMU or PCMA only")
    event = next((pt for pt in formats if rtpmap.get(pt) == "telephone-event"), None)
    return Offer(address, port, codec, event, direction)


def answer(offer: Offer, address: str, port: int, session_id: int) -> str:
    fmts = [offer.payload_type] + ([offer.event_type] if offer.event_type is not None else [])
    name = "PCMU" if offer.payload_type == PCMU else "PCMA"
    lines = ["v=0", f"o=kemi-media {session_id} {session_id} IN IP4 {address}", "s=kemi media",
             f"c=IN IP4 {address}", "t=0 0", f"m=audio {port} RTP/AVP {' '.join(map(str, fmts))}",
             f"a=rtpmap:{offer.payload_type} {name}/8000"]
    if offer.event_type is not None:
        lines += [f"a=rtpmap:{offer.event_type} telephone-event/8000", f"a=fmtp:{offer.event_type} 0-15"]
    lines += ["a=ptime:20", "a=sendrecv"]
    return "\r\n".join(lines) + "\r\n"


def offer(address: str, port: int, session_id: int, event_type: int = 101) -> str:
    """An offer as a test phone or a future outgoing leg sends it (PCMU, PCMA, events)."""
    lines = ["v=0", f"o=kemi-media {session_id} {session_id} IN IP4 {address}", "s=kemi media",
             f"c=IN IP4 {address}", "t=0 0", f"m=audio {port} RTP/AVP 0 8 {event_type}",
             "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
             f"a=rtpmap:{event_type} telephone-event/8000", f"a=fmtp:{event_type} 0-15", "a=ptime:20",
             "a=sendrecv"]
    return "\r\n".join(lines) + "\r\n"
