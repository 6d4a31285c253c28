"""G.711 mu-law (PCMU, payload type 0) and A-law (PCMA, 8) with numpy lookup tables.
Pure: encode int16 samples -> bytes, decode bytes -> int16 samples."""
from __future__ import annotations

import numpy as np

_ULAW_BIAS = 0x84
_CLIP = 32635


def _ulaw_byte(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, _CLIP) + _ULAW_BIAS
    exponent = max(0, sample.bit_length() - 8)
    exponent = min(exponent, 7)
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _ulaw_sample(byte: int) -> int:
    byte = ~byte & 0xFF
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 0x07, byte & 0x0F
    sample = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return -sample if sign else sample


def _alaw_byte(sample: int) -> int:
    sign = 0x80 if sample >= 0 else 0
    if sample < 0:
        sample = -sample - 1 if sample > -32768 else 32767
    sample >>= 3   # 13-bit magnitude
    if sample < 32:
        byte = sample >> 1
    else:
        exponent = sample.bit_length() - 5
        byte = (exponent << 4) | ((sample >> exponent) & 0x0F)
    return (byte | sign) ^ 0x55


def _alaw_sample(byte: int) -> int:
    byte ^= 0x55
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 0x07, byte & 0x0F
    if exponent == 0:
        sample = (mantissa << 4) + 8
    else:
        sample = ((mantissa << 4) + 0x108) << (exponent - 1)
    return sample if sign else -sample


_ALL = range(-32768, 32768)
ULAW_ENCODE = np.array([_ulaw_byte(s) for s in _ALL], dtype=np.uint8)
ALAW_ENCODE = np.array([_alaw_byte(s) for s in _ALL], dtype=np.uint8)
ULAW_DECODE = np.array([_ulaw_sample(b) for b in range(256)], dtype=np.int16)
ALAW_DECODE = np.array([_alaw_sample(b) for b in range(256)], dtype=np.int16)

PCMU, PCMA = 0, 8
_ENCODE = {PCMU: ULAW_ENCODE, PCMA: ALAW_ENCODE}
_DECODE = {PCMU: ULAW_DECODE, PCMA: ALAW_DECODE}


def encode(samples: np.ndarray, payload_type: int) -> bytes:
    return _ENCODE[payload_type][samples.astype(np.int32) + 32768].tobytes()


def decode(payload: bytes, payload_type: int) -> np.ndarray:
    return _DECODE[payload_type][np.frombuffer(payload, dtype=np.uint8)]
