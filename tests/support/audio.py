"""Reading what a bot recorded: decode its Opus-in-WebM segments (PyAV) onto the host clock,
and measure which scripted tones sound in a window (the share of the window's energy near
each tone's frequency: a tone present reads near 1, an absent one near 0)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
from numpy.typing import NDArray

RATE = 48_000
BAND_HZ = 25.0


@dataclass
class Recording:
    """Mono samples at RATE, the first one at `start_ms` on the host clock."""

    start_ms: int
    samples: NDArray[np.float32]
    rate: int = RATE

    def window(self, from_ms: int, to_ms: int) -> NDArray[np.float32]:
        a = max(0, (from_ms - self.start_ms) * self.rate // 1000)
        b = max(0, (to_ms - self.start_ms) * self.rate // 1000)
        return self.samples[a:b]


def decode(data: bytes) -> NDArray[np.float32]:
    """One segment's samples (mono, RATE)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def assemble(segments: list[tuple[int, bytes]]) -> Recording:
    """Segments (start_ms, bytes) laid on one timeline; silence where none covers."""
    segments = sorted(segments)
    start = segments[0][0]
    decoded = [(s, decode(d)) for s, d in segments]
    end = max(s + len(p) * 1000 // RATE for s, p in decoded)
    timeline = np.zeros((end - start) * RATE // 1000 + RATE, np.float32)
    for s, pcm in decoded:
        offset = (s - start) * RATE // 1000
        timeline[offset : offset + len(pcm)] = pcm
    return Recording(start, timeline)


def pcm_timeline(frames: list[tuple[int, bytes]], rate: int) -> Recording:
    """PCM16 frames (first sample's ms, bytes), as a live stream sends them, on one timeline."""
    frames = sorted(frames)
    start = frames[0][0]
    decoded = [(t, np.frombuffer(d, "<i2").astype(np.float32) / 32768) for t, d in frames]
    end = max(t + len(p) * 1000 // rate for t, p in decoded)
    timeline = np.zeros((end - start) * rate // 1000 + rate, np.float32)
    for t, pcm in decoded:
        offset = (t - start) * rate // 1000
        timeline[offset : offset + len(pcm)] = pcm
    return Recording(start, timeline, rate)


def rms(samples: NDArray[np.float32]) -> float:
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def tone_share(samples: NDArray[np.float32], frequency: float, rate: int = RATE) -> float:
    """The share of the window's energy within BAND_HZ of `frequency`."""
    if len(samples) == 0:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    total = float(spectrum.sum())
    if total == 0:
        return 0.0
    return float(spectrum[np.abs(freqs - frequency) <= BAND_HZ].sum()) / total
