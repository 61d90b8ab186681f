"""A second catalogue generator, shaped like a real one (tests and benchmarks only).

Not ``synthetic_data``: the project must work on a world it was not built on. Here
artists specialise in a repertoire family but sometimes cross over, and every work has
several performers, so the work/artist graph is **one giant component**. Aspects and
proxy columns have names unlike the defaults, segments are float32, and discovery
evidence looks like layer probes: small negative scores, one aspect missing.
"""

from __future__ import annotations

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
