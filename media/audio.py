"""Audio conversion and generation: anything the store accepts becomes 8 kHz mono signed
16-bit PCM. Pure (bytes in, numpy out); errors say what is wrong with the upload."""
from __future__ import annotations

import io
import wave

import numpy as np

RATE = 8000
MAX_SECONDS = 600
SUPPORTED = "WAV (PCM 8/16/24/32-bit integer, any rate, any channels)"


class AudioError(ValueError):
    pass


def from_wav(data: bytes) -> np.ndarray:
    if data[:3] == b"ID3" or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        raise AudioError(f"MP3 is not supported (no pinned decoder): convert it to WAV first; accepted: {SUPPORTED}")
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"not a WAV file (no RIFF/WAVE header); accepted: {SUPPORTED}")
    try:
        with wave.open(io.BytesIO(data)) as wav:
            channels, width, rate, frames = (wav.getnchannels(), wav.getsampwidth(),
                                             wav.getframerate(), wav.getnframes())
            raw = wav.readframes(frames)
    except (wave.Error, EOFError) as err:
        raise AudioError(f"unreadable WAV: {err} (only integer PCM is accepted, not float or compressed)") from None
    if not 4000 <= rate <= 192000:
        raise AudioError(f"sample rate {rate} Hz is outside 4000-192000 Hz")
    if frames == 0 or not raw:
        raise AudioError("the WAV file holds no audio")
    if frames / rate > MAX_SECONDS:
        raise AudioError(f"{frames / rate:.0f} s is longer than the limit of {MAX_SECONDS} s")
    usable = len(raw) - len(raw) % (width * channels)
    raw = raw[:usable]
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128) / 128
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64) / (1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2**31
    else:
        raise AudioError(f"{8 * width}-bit samples are not supported")
    x = x.reshape(-1, channels).mean(axis=1)
    return to_int16(resample(x, rate, RATE))


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling: a windowed-sinc low-pass below the lower Nyquist, then
    linear interpolation at the target instants (good enough for speech and prompts)."""
    if rate == target:
        return x
    if rate > target:
        cutoff = 0.45 * target / rate          # cycles per input sample
        taps = 63
        n = np.arange(taps) - (taps - 1) / 2
        kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
        x = np.convolve(x, kernel / kernel.sum(), mode="same")
    count = int(round(len(x) * target / rate))
    positions = np.arange(count) * (rate / target)
    return np.interp(positions, np.arange(len(x)), x)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def tone(freqs: tuple[float, ...], seconds: float, level: float = 0.3, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs) * (level / len(freqs))
    ramp = min(len(t) // 2, int(0.005 * rate))       # 5 ms fade in/out: no clicks
    if ramp:
        env = np.ones(len(t))
        env[:ramp] = np.linspace(0, 1, ramp)
        env[-ramp:] = np.linspace(1, 0, ramp)
        x = x * env
    return to_int16(x)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def to_wav(pcm: np.ndarray, rate: int = RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.astype("<i2").tobytes())
    return out.getvalue()


def pcm_bytes(pcm: np.ndarray) -> bytes:
    return pcm.astype("<i2").tobytes()


def from_pcm_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data[:len(data) - len(data) % 2], dtype="<i2").astype(np.int16)


def dominant_frequency(pcm: np.ndarray, rate: int = RATE) -> float:
    """The strongest frequency in a signal (Hann-windowed FFT); tests and checks use it."""
    x = pcm.astype(np.float64)
    if len(x) < 64:
        return 0.0
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spectrum[:3] = 0
    return float(np.argmax(spectrum) * rate / len(x))
