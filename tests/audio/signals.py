"""Synthetic audio with known properties, for the proxy and pipeline tests."""

from __future__ import annotations

import numpy as np

RATE = 16000


def note(
    seconds: float,
    pitch_hz: float = 220.0,
    harmonics: int = 1,
    attack_s: float = 0.002,
    rate: int = RATE,
) -> np.ndarray:
    """One decaying note: ``harmonics`` partials at 1/k amplitude, a linear attack."""
    t = np.arange(round(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * pitch_hz * k * t) / k for k in range(1, harmonics + 1))
    envelope = np.minimum(t / attack_s, 1.0) * np.exp(-t / 0.15)
    return (tone * envelope).astype(np.float32)


def note_train(
    seconds: float,
    bpm: float,
    gain_db: float = -12.0,
    pitch_hz: float = 220.0,
    harmonics: int = 1,
    attack_s: float = 0.002,
    arc_db: float = 0.0,
    rate: int = RATE,
    seed: int = 0,
) -> np.ndarray:
    """Notes on every beat at ``bpm``; ``arc_db`` > 0 swells to the middle and fades (dB)."""
    length = round(seconds * rate)
    out = np.zeros(length, dtype=np.float32)
    one = note(min(60.0 / bpm, 0.4), pitch_hz, harmonics, attack_s, rate)
    one /= np.abs(one).max()
    for start in np.arange(0, length, 60.0 / bpm * rate).round().astype(int):
        piece = one[: length - start]
        out[start : start + len(piece)] += piece
    t = np.linspace(-1, 1, length)
    gain = gain_db - arc_db * t**2
    out *= (10 ** (gain / 20)).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 1e-4, length).astype(np.float32)
    return out + noise
