"""A second catalogue generator, shaped like a real one (tests and benchmarks only).

Not ``synthetic_data``: the project must work on a world it was not built on. Here
artists specialise in a repertoire family but sometimes cross over, and every work has
several performers, so the work/artist graph is **one giant component**. Aspects and
proxy columns have names unlike the defaults, segments are float32, and discovery
evidence looks like layer probes: small negative scores, one aspect missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

ASPECTS = {
    "pulse": {"proxies": ["ioi_median_ms"], "aggregate": ["mean"], "default_weight": 1.0},
    "weight": {"proxies": ["rms_dbfs"], "aggregate": ["mean", "std"], "default_weight": 1.0},
    "touch": {"proxies": ["attack_ms", "legato_ratio"], "aggregate": ["mean"]},
}
# Probe-style evidence for all but this aspect, which falls back to layer-wise probes.
NO_EVIDENCE = "touch"


def work_artist_graph(
    num_tracks: int,
    seed: int = 0,
    tracks_per_work: int = 8,
    tracks_per_artist: int = 10,
    works_per_family: int = 5,
    crossover: float = 0.05,
) -> pd.DataFrame:
    """``track_id, artist_id, work_id``: one connected component over families of works.

    Each artist plays mostly works of their family, with probability ``crossover`` a
    work of any family; family ``f`` has one artist who also plays a work of ``f + 1``.
    """
    rng = np.random.default_rng(seed)
    num_works = max(2, num_tracks // tracks_per_work)
    num_artists = max(2, num_tracks // tracks_per_artist)
    families = max(1, num_works // works_per_family)
    work_family = np.arange(num_works) % families
    artist = np.arange(num_tracks) % num_artists
    artist_family = artist % families
    family_works = [np.flatnonzero(work_family == f) for f in range(families)]
    work = np.array([rng.choice(family_works[f]) for f in artist_family])
    cross = rng.random(num_tracks) < crossover
    work[cross] = rng.integers(num_works, size=int(cross.sum()))
    # Bridge each family to the next, and give every work at least one track.
    for f in range(families - 1):
        t = int(np.flatnonzero(artist_family == f)[0])
        work[t] = family_works[f + 1][0]
    unused = np.setdiff1d(np.arange(num_works), work)
    for w in unused:
        t = int(rng.choice(np.flatnonzero(artist_family == work_family[w])))
        work[t] = w
    return pd.DataFrame(
        {
            "track_id": [f"perf-{t:06d}" for t in range(num_tracks)],
            "artist_id": [f"player{a}" for a in artist],
            "work_id": [f"opus{w}" for w in work],
        }
    )


def write_catalogue(
    raw: Path,
    num_tracks: int = 160,
    num_layers: int = 5,
    dim: int = 32,
    segments: tuple[int, int] = (9, 12),
    seed: int = 0,
) -> pd.DataFrame:
    """Write the four raw entries under ``raw`` (the contract's file names); return tracks.

    Each track has a latent style per aspect (half from its artist); the aspect's proxies
    measure it with noise (5% missing) and it enters the segments in a band of layers.
    """
    rng = np.random.default_rng(seed)
    tracks = work_artist_graph(num_tracks, seed)
    counts = rng.integers(segments[0], segments[1] + 1, size=num_tracks)
    tracks["duration_s"] = counts * 5.0
    tracks["label"] = "extra columns are kept"
    artist_codes = pd.factorize(tracks["artist_id"])[0]
    artist_style = rng.normal(size=(artist_codes.max() + 1, len(ASPECTS)))
    style = 0.7 * artist_style[artist_codes] + 0.7 * rng.normal(size=(num_tracks, len(ASPECTS)))
    bands = np.linspace(1, num_layers - 2, len(ASPECTS)).round().astype(int)
    directions = rng.normal(size=(len(ASPECTS), dim)) / np.sqrt(dim)
    folder = raw / "segments"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for t, (track_id, n) in enumerate(zip(tracks["track_id"], counts, strict=True)):
        drift = style[t] + 0.3 * rng.normal(size=(n, len(ASPECTS)))  # [n, A]
        array = rng.normal(scale=0.5, size=(n, num_layers, dim))
        for a, layer in enumerate(bands):
            array[:, layer, :] += 2.0 * drift[:, [a]] * directions[a]
        np.save(folder / f"{track_id}.npy", array.astype(np.float32))
        for i in range(n):
            rows.append((track_id, i, *drift[i]))
    latent = pd.DataFrame(rows, columns=["track_id", "segment_idx", *ASPECTS])
    proxies = latent[["track_id", "segment_idx"]].copy()
    for aspect, spec in ASPECTS.items():
        for k, column in enumerate(spec["proxies"]):
            scale, offset = (10.0 + 5 * k), 50.0 * (k + 1)
            value = offset + scale * latent[aspect] + rng.normal(scale=2.0, size=len(latent))
            proxies[column] = np.where(rng.random(len(latent)) < 0.05, np.nan, value)
    proxies.to_parquet(raw / "proxy_targets.parquet")
    tracks.to_parquet(raw / "tracks.parquet")
    layers = np.arange(num_layers)
    evidence = {
        aspect: {"layer_scores": (np.exp(-0.5 * (layers - band) ** 2) - 0.05).round(4).tolist()}
        for (aspect, band) in zip(ASPECTS, bands, strict=True)
        if aspect != NO_EVIDENCE
    }
    discovery = {
        "schema_version": 1,
        "embedding": {"model": "probe-study/mert-like", "num_layers": num_layers, "dim": dim},
        "aspects": evidence,
    }
    (raw / "discovery.json").write_text(json.dumps(discovery, indent=2))
    return tracks
