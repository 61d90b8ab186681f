"""``audio_features``: proxy and embedding throughput, and peak RSS against corpus size.

* ``proxies``: the five proxies over 5 s segments of synthetic note trains at 24 kHz:
  seconds of audio measured per CPU-second (``time.process_time``, all threads).
* ``embedding``: hidden states of every layer per 5 s segment at 24 kHz, batches of 8, on
  CPU: the tests' tiny model, and a random model of MERT-v1-95M's size (HuBERT-base,
  12 × 768) for the real per-segment cost without its weights.
* ``rss``: the whole ``audio_features`` pipeline (decode, proxies, tiny-model embedding,
  cache, raw entries) over 10 and then 100 recordings of 20 s, each run in a fresh
  process: peak RSS should stay flat (target: ratio ≤ 1.1).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import measured, write_result
from benchmarks.random_models import MERT_95M, TINY, save_random_hubert

RATE, SEGMENT_S, PROXY_SEGMENTS = 24000, 5.0, 24
TRACK_S, CORPORA = 20.0, (10, 100)
TARGET_RSS_RATIO = 1.1


def _note_train(seconds: float, bpm: float, rate: int, seed: int) -> np.ndarray:
    """Decaying harmonic notes on every beat, with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(60 / bpm * rate)) / rate
    tone = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 6)) * np.exp(-t / 0.15)
    beats = np.tile(tone, int(np.ceil(seconds * bpm / 60)))[: round(seconds * rate)]
    return (0.2 * beats + rng.normal(0, 1e-3, len(beats))).astype(np.float32)


def proxy_throughput() -> dict[str, Any]:
    from expressive_retrieval.audio.proxies import measure_proxies

    segments = [_note_train(SEGMENT_S, 80 + 4 * i, RATE, i) for i in range(PROXY_SEGMENTS)]
    measure_proxies(segments[0], RATE)  # librosa's numba kernels compile on first use
    cpu, wall = time.process_time(), time.perf_counter()
    for segment in segments:
        measure_proxies(segment, RATE)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    audio = PROXY_SEGMENTS * SEGMENT_S
    return {
        "audio_s": audio,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "audio_s_per_cpu_s": round(audio / cpu, 1),
        "audio_s_per_wall_s": round(audio / wall, 1),
    }


def embedding_throughput(size: str, segments: int) -> dict[str, Any]:
    import torch

    from expressive_retrieval.audio.embedding import AudioEmbedder

    preset = {"tiny": TINY, "mert_95m": MERT_95M}[size]
    with tempfile.TemporaryDirectory() as folder:
        model = save_random_hubert(Path(folder), **{**preset, "sample_rate": RATE})
        embedder = AudioEmbedder(model, device="cpu")
        batch = [_note_train(SEGMENT_S, 100, RATE, i) for i in range(8)]
        embedder.embed(batch[:1])  # warm-up
        cpu, wall, done = time.process_time(), time.perf_counter(), 0
        while done < segments:
            embedder.embed(batch[: min(8, segments - done)])
            done += min(8, segments - done)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "L": embedder.num_layers,
        "D": embedder.dim,
        "torch_threads": torch.get_num_threads(),
        "segments": segments,
        "wall_s_per_segment": round(wall / segments, 4),
        "cpu_s_per_segment": round(cpu / segments, 4),
        "audio_s_per_wall_s": round(segments * SEGMENT_S / wall, 1),
    }


def pipeline_run(root: str, tracks: int) -> dict[str, Any]:
    """``audio_features`` over ``tracks`` recordings in the scratch project at ``root``."""
    import pandas as pd
    import soundfile

    from benchmarks.scratch import ScratchProject

    project = ScratchProject(Path(root), {"audio_features": {"progress": False}})
    model = save_random_hubert(Path(root) / "model", **{**TINY, "sample_rate": RATE})
    project.set_params({"audio_features": {"model": str(model)}})
    folder = project.data / "01_raw" / "audio"
    folder.mkdir(parents=True)
    rows = []
    for i in range(tracks):
        soundfile.write(folder / f"t{i}.flac", _note_train(TRACK_S, 70 + i % 90, RATE, i), RATE)
        rows.append(
            {"track_id": f"t{i}", "artist_id": f"a{i}", "work_id": f"w{i}", "path": f"t{i}.flac"}
        )
    pd.DataFrame(rows).to_csv(project.data / "01_raw" / "recordings.csv", index=False)
    started = time.perf_counter()
    project.run("audio_features")
    return {
        "tracks": tracks,
        "audio_s": tracks * TRACK_S,
        "run_s": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    proxies = measured("benchmarks.bench_audio_features:proxy_throughput")
    tiny = measured(
        "benchmarks.bench_audio_features:embedding_throughput", size="tiny", segments=64
    )
    mert = measured(
        "benchmarks.bench_audio_features:embedding_throughput", size="mert_95m", segments=8
    )
    rss = {}
    for tracks in CORPORA:
        with tempfile.TemporaryDirectory() as root:
            rss[tracks] = measured(
                "benchmarks.bench_audio_features:pipeline_run", root=root, tracks=tracks
            )
    small, large = (rss[n]["peak_rss_mb"] for n in CORPORA)
    ratio = round(large / small, 3)
    write_result(
        "audio_features",
        {
            "note": "2 cores shared with other work: figures are under contention",
            "proxies": proxies["value"],
            "embedding_tiny": tiny["value"],
            "embedding_mert_95m_size": mert["value"],
            "pipeline_peak_rss_mb": {str(n): rss[n]["peak_rss_mb"] for n in CORPORA},
            "pipeline_runs": {str(n): rss[n]["value"] for n in CORPORA},
            "rss_ratio_100_vs_10": ratio,
            "target_rss_ratio": TARGET_RSS_RATIO,
            "passed": ratio <= TARGET_RSS_RATIO,
        },
    )
