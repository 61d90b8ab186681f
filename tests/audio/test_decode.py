"""Decoding to mono at the model's rate, the segment rule, and refusals of bad audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from expressive_retrieval.audio.decode import AudioError, AudioSegments, Segmentation
from tests.audio.signals import RATE, note_train

RULE = Segmentation(RATE, segment_seconds=1.0, min_last_segment_seconds=0.5)


def _lengths(source, rule: Segmentation = RULE, sample_rate: int | None = None) -> list[int]:
    return [len(s) for s in AudioSegments(source, rule, sample_rate)]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(3.7, [RATE] * 3 + [round(0.7 * RATE)]), (3.3, [RATE] * 3), (0.6, [round(0.6 * RATE)])],
)
def test_a_short_last_segment_is_kept_unpadded_or_dropped(seconds: float, expected) -> None:
    samples = note_train(seconds, 120)
    assert _lengths(samples, sample_rate=RATE) == expected


def test_stereo_44k_file_becomes_mono_at_the_model_rate(tmp_path: Path) -> None:
    t = np.arange(round(2.5 * 44100)) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(tmp_path / "a.wav", np.stack([tone, tone], axis=1), 44100)
    decoded = AudioSegments(tmp_path / "a.wav", RULE)
    segments = list(decoded)
    assert [len(s) for s in segments] == [RATE, RATE, RATE // 2]
    assert decoded.duration_s == pytest.approx(2.5)
    spectrum = np.abs(np.fft.rfft(segments[0]))
    assert np.argmax(spectrum) * RATE / len(segments[0]) == pytest.approx(440, abs=2)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_formats_decode(tmp_path: Path, fmt: str) -> None:
    if fmt not in soundfile.available_formats():
        pytest.skip(f"this libsndfile does not write {fmt}")
    path = tmp_path / f"a.{fmt.lower()}"
    soundfile.write(path, note_train(2.2, 120), RATE, format=fmt)
    assert len(_lengths(path)) == 2


def test_an_array_with_channels_is_downmixed() -> None:
    left = note_train(1.0, 120)
    stereo = np.stack([left, -left], axis=1)  # cancels out when averaged
    (segment,) = AudioSegments(stereo, RULE, RATE)
    assert np.abs(segment).max() < 1e-6


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(b"RIFF" + np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioError, match=r"bad\.wav: unreadable or corrupt"):
        list(AudioSegments(path, RULE))


def test_nan_samples_are_refused(tmp_path: Path) -> None:
    samples = note_train(2.0, 120)
    samples[RATE + 5] = np.nan
    soundfile.write(tmp_path / "nan.wav", samples, RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        list(AudioSegments(tmp_path / "nan.wav", RULE))


def test_zero_length_and_too_short_audio_are_refused(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(AudioError, match="zero-length"):
        list(AudioSegments(tmp_path / "empty.wav", RULE))
    with pytest.raises(AudioError, match="shorter than one segment"):
        list(AudioSegments(note_train(0.4, 120), RULE, RATE))
