"""The measured proxies recover the properties the synthetic audio was made with."""

from __future__ import annotations

import numpy as np
import pytest

from expressive_retrieval.audio.proxies import PROXY_COLUMNS, measure_proxies
from tests.audio.signals import RATE, note_train


@pytest.mark.parametrize("bpm", [80.0, 104.0, 126.0, 150.0])
def test_tempo_within_five_percent_of_a_clear_beat(bpm: float) -> None:
    tempo = measure_proxies(note_train(5.0, bpm), RATE)["tempo_bpm"]
    assert abs(tempo - bpm) / bpm < 0.05, tempo


def test_loudness_steps_within_one_db() -> None:
    levels = [
        measure_proxies(note_train(5.0, 120, gain_db=g), RATE)["loudness_db"]
        for g in (-24, -18, -6)
    ]
    assert abs((levels[1] - levels[0]) - 6) < 1 and abs((levels[2] - levels[0]) - 18) < 1


def test_sharp_attacks_are_sharper_than_soft_ones() -> None:
    sharpness = [
        measure_proxies(note_train(5.0, 110, attack_s=a), RATE)["onset_sharpness"]
        for a in (0.002, 0.02, 0.08)
    ]
    assert sharpness[0] > sharpness[1] > sharpness[2] > 0


def test_bright_timbre_has_the_higher_centroid() -> None:
    centroid = [
        measure_proxies(note_train(5.0, 110, harmonics=h), RATE)["spectral_centroid"]
        for h in (1, 4, 12)
    ]
    assert centroid[0] < centroid[1] < centroid[2]


def test_arcs_against_flat_envelopes() -> None:
    arc = [measure_proxies(note_train(5.0, 110, arc_db=a), RATE)["phrase_arc"] for a in (0, 6, 18)]
    # A flat train stays near 0 dB (within how its notes fall on the quarters).
    assert abs(arc[0]) < 2 and arc[0] < arc[1] < arc[2]


def test_silence_gives_nan_never_a_made_up_value() -> None:
    quiet = np.random.default_rng(0).normal(0, 1e-6, 5 * RATE).astype(np.float32)
    assert all(np.isnan(v) for v in measure_proxies(quiet, RATE).values())
    steady = 0.3 * np.sin(2 * np.pi * 440 * np.arange(5 * RATE) / RATE).astype(np.float32)
    values = measure_proxies(steady, RATE)  # a held tone: level and timbre, no onsets
    assert np.isnan(values["onset_sharpness"]) and np.isfinite(values["loudness_db"])
    assert list(values) == list(PROXY_COLUMNS)
