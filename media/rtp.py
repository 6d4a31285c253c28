"""RTP (RFC 3550) fixed header and RFC 4733 telephone events. Pure."""
from __future__ import annotations

import struct
from dataclasses import dataclass

EVENT_DIGITS = "0123456789*#ABCD"


@dataclass(frozen=True)
class Packet:
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


class RtpError(ValueError):
    pass


def pack(payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF,
                       timestamp & 0xFFFFFFFF, ssrc) + payload


def unpack(data: bytes) -> Packet:
    if len(data) < 12:
        raise RtpError("shorter than an RTP header")
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    if b0 >> 6 != 2:
        raise RtpError("not RTP version 2")
    offset = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:   # header extension
        if len(data) < offset + 4:
            raise RtpError("truncated header extension")
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    end = len(data)
    if b0 & 0x20:   # padding
        end -= data[-1]
    if offset > end:
        raise RtpError("truncated packet")
    return Packet(b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), data[offset:end])


@dataclass(frozen=True)
class Event:
    digit: str
    end: bool
    volume: int
    duration: int


def parse_event(payload: bytes) -> Event:
    if len(payload) < 4:
        raise RtpError("telephone-event payload shorter than 4 bytes")
    code, flags, duration = struct.unpack_from("!BBH", payload)
    if code >= len(EVENT_DIGITS):
        raise RtpError(f"telephone-event {code} is not a DTMF digit")
    return Event(EVENT_DIGITS[code], bool(flags & 0x80), flags & 0x3F, duration)


def pack_event(digit: str, end: bool, duration: int, volume: int = 10) -> bytes:
    return struct.pack("!BBH", EVENT_DIGITS.index(digit), (0x80 if end else 0) | volume, duration)
