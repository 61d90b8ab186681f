"""Proxies measured from a segment's audio: the default aspects' columns of ``proxy_targets``.

Each is a documented measurement with a well-kept library (librosa, pyloudnorm); a value
that is undefined for the segment (silence, no onset) is NaN, never a made-up number.

| column | measure |
|---|---|
| ``tempo_bpm`` | local tempo: librosa's tempogram estimate over the segment's onset envelope |
| ``loudness_db`` | ITU-R BS.1770-4 integrated loudness (LUFS, pyloudnorm), gated as the standard says |
| ``onset_sharpness`` | attack steepness: median over onsets of the RMS rise from 10 % of the peak to the peak, in dB per second |
| ``phrase_arc`` | arch of the loudness envelope: the level (dB) of the segment's middle half minus that of its outer quarters; > 0 swells and fades, ≈ 0 flat, < 0 sags |
| ``spectral_centroid`` | median spectral centroid (Hz) of the frames within 40 dB of the loudest |
"""

from __future__ import annotations

import warnings

import numpy as np

from expressive_retrieval.audio.optional import require

PROXY_COLUMNS = ("tempo_bpm", "loudness_db", "onset_sharpness", "phrase_arc", "spectral_centroid")
PROXY_VERSION = 1  # bump when a measure changes: cached tracks are then measured again
SILENCE_PEAK = 1e-4  # -80 dBFS: a quieter segment is silence and every proxy is NaN
HOP_SECONDS = 0.01  # onset envelope and tempogram
ATTACK_HOP_SECONDS = 0.0025  # RMS envelope for attacks
ATTACK_WINDOW_SECONDS = 0.15  # an onset's peak is searched this long after it, its rise before
CENTROID_RANGE_DB = 40.0
PURPOSE = "measuring proxies from audio"


def _hop(seconds: float, sample_rate: int) -> int:
    return max(1, round(seconds * sample_rate))


def tempo_bpm(onset_envelope: np.ndarray, sample_rate: int, hop: int) -> float:
    """Tempo (BPM) of the segment's onset envelope; NaN without onsets."""
    (librosa,) = require("librosa", purpose=PURPOSE)
    if not np.any(onset_envelope > 0):
        return float("nan")
    tempo = librosa.feature.tempo(onset_envelope=onset_envelope, sr=sample_rate, hop_length=hop)
    return float(tempo[0]) if tempo[0] > 0 else float("nan")


def loudness_db(samples: np.ndarray, sample_rate: int) -> float:
    """BS.1770 integrated loudness (LUFS); NaN when fully gated or shorter than a block."""
    (pyloudnorm,) = require("pyloudnorm", purpose=PURPOSE)
    meter = pyloudnorm.Meter(sample_rate)
    if len(samples) < meter.block_size * sample_rate:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyloudnorm warns about clipping only
        value = meter.integrated_loudness(samples.astype(np.float64))
    return float(value) if np.isfinite(value) else float("nan")


def onset_sharpness(samples: np.ndarray, onsets_s: np.ndarray, sample_rate: int) -> float:
    """Median attack slope (dB/s) of the onsets: 10 % of the peak RMS to the peak; NaN if none."""
    (librosa,) = require("librosa", purpose=PURPOSE)
    hop = _hop(ATTACK_HOP_SECONDS, sample_rate)
    envelope = librosa.feature.rms(y=samples, frame_length=4 * hop, hop_length=hop)[0]
    window = max(2, round(ATTACK_WINDOW_SECONDS / ATTACK_HOP_SECONDS))
    slopes = []
    for onset in librosa.time_to_frames(onsets_s, sr=sample_rate, hop_length=hop):
        lo, hi = max(0, onset - window), min(len(envelope), onset + window)
        if hi - lo < 2:
            continue
        peak = lo + int(np.argmax(envelope[lo:hi]))
        below = np.flatnonzero(envelope[lo : peak + 1] <= 0.1 * envelope[peak])
        if not below.size or envelope[peak] <= 0:
            continue
        start = lo + int(below[-1])
        rise_db = 20 * np.log10(envelope[peak] / max(envelope[start], 1e-10))
        slopes.append(min(rise_db, 20.0) / ((peak - start) * hop / sample_rate))
    return float(np.median(slopes)) if slopes else float("nan")


def phrase_arc(samples: np.ndarray) -> float:
    """Level (dB) of the middle half of the segment minus that of its outer quarters."""
    quarter = len(samples) // 4
    power = samples.astype(np.float64) ** 2
    middle = power[quarter : len(samples) - quarter].mean()
    outer = np.concatenate([power[:quarter], power[len(samples) - quarter :]]).mean()
    if not quarter or min(middle, outer) <= SILENCE_PEAK**2:
        return float("nan")
    return float(10 * np.log10(middle / outer))


def spectral_centroid(samples: np.ndarray, sample_rate: int, hop: int) -> float:
    """Median spectral centroid (Hz) of the frames within 40 dB of the loudest."""
    (librosa,) = require("librosa", purpose=PURPOSE)
    n_fft = 4 * hop
    centroid = librosa.feature.spectral_centroid(
        y=samples, sr=sample_rate, n_fft=n_fft, hop_length=hop
    )[0]
    rms = librosa.feature.rms(y=samples, frame_length=n_fft, hop_length=hop)[0]
    loud = rms >= rms.max() * 10 ** (-CENTROID_RANGE_DB / 20)
    return float(np.median(centroid[loud]))


def measure_proxies(samples: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Every proxy of one mono segment, ``{column: value}`` in ``PROXY_COLUMNS`` order."""
    (librosa,) = require("librosa", purpose=PURPOSE)
    if not len(samples) or np.abs(samples).max() < SILENCE_PEAK:
        return dict.fromkeys(PROXY_COLUMNS, float("nan"))
    hop = _hop(HOP_SECONDS, sample_rate)
    envelope = librosa.onset.onset_strength(y=samples, sr=sample_rate, hop_length=hop)
    onsets = librosa.onset.onset_detect(
        onset_envelope=envelope, sr=sample_rate, hop_length=hop, units="time"
    )
    return {
        "tempo_bpm": tempo_bpm(envelope, sample_rate, hop),
        "loudness_db": loudness_db(samples, sample_rate),
        "onset_sharpness": onset_sharpness(samples, onsets, sample_rate),
        "phrase_arc": phrase_arc(samples),
        "spectral_centroid": spectral_centroid(samples, sample_rate, hop),
    }
