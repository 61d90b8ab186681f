"""A seeded synthetic catalogue that behaves like the real problem.

docs/design.md, "Synthetic default".

The world:

* **Groups** ("schools") of artists each perform every work of their group, so tracks
  connected through ``work_id`` or ``artist_id`` stay inside a group and leak-safe splits
  exist.
* **Nuisance dominates cosine**: every segment carries a large per-layer offset shared by
  the whole corpus, the work's content at that position (shared by all performances of
  the work) and the recording channel of the track.
* **Aspects** come from the ``aspects`` parameter. Each aspect has a per-segment signal
  ``v_t = level + drift·(t - centre) + depth·sin(2πt/period + phase)``, where a component
  is present when the aspect aggregates its proxies by ``mean`` (level), ``slope``
  (drift) or ``std`` (arc depth). Drift and arc depth are only visible *across*
  segments. ``v_t`` enters the embedding non-linearly (random sinusoidal features) in the
  aspect's own band of layers.
* **Proxy targets** are noisy affine maps of ``v_t`` with missing values; **discovery
  evidence** is the aspect's layer band plus noise (aspects listed in ``no_discovery``
  get none, to exercise the probe fallback).
* **Twins** (``twin_sources_per_group`` tracks of each group): the same performance
  generated again with one aspect's style latent moved by ``twin_delta`` and everything
  else (content, channel, noise, the other aspects) unchanged, one twin per aspect. They
  are written apart from the catalogue (``twins``, ``twin_segments``) and only the
  evaluation's selectivity check reads them (docs/evaluation.md, "Aspect selectivity").

Tracks are generated lazily, one at a time, from per-track seeds: the catalogue can be
far larger than memory and any track can be regenerated alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from expressive_retrieval.data.twins import TWIN_COLUMNS, twin_id

SIGNAL_PREFIX = "signal_"


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes and strengths of the synthetic world (``parameters_synthetic_data.yml``)."""

    num_groups: int = 30
    artists_per_group: int = 2
    works_per_group: int = 3
    min_segments: int = 14
    max_segments: int = 22
    num_layers: int = 13
    dim: int = 768
    dtype: str = "float16"
    seed: int = 0
    segment_seconds: float = 5.0
    global_scale: float = 1.0
    content_scale: float = 1.0
    channel_scale: float = 0.8
    noise_scale: float = 0.25
    aspect_scale: float = 0.5
    band_width: float = 1.0
    artist_style_share: float = 0.5
    proxy_noise: float = 0.15
    missing_rate: float = 0.05
    discovery_noise: float = 0.15
    no_discovery: tuple[str, ...] = field(default_factory=tuple)
    model_name: str = "synthetic-mert"
    twin_sources_per_group: int = 0
    twin_delta: float = 1.0


@dataclass
class SyntheticCatalogue:
    """The four raw entries, with segments as lazy per-track callables."""

    tracks: pd.DataFrame
    segments: dict[str, Callable[[], np.ndarray]]
    proxy_targets: pd.DataFrame
    discovery: dict
    latents: pd.DataFrame  # noise-free per-segment aspect signals, for diagnostics and tests
    twins: pd.DataFrame  # TWIN_COLUMNS: one row per twin track
    twin_segments: dict[str, Callable[[], np.ndarray]]


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class _World:
    """Shared, seeded structure: layer offsets, aspect bands and aspect feature maps."""

    num_features = 8

    def __init__(self, config: SyntheticConfig, aspects: dict[str, dict]) -> None:
        self.config = config
        self.aspects = list(aspects)
        c, L, D = config, config.num_layers, config.dim
        rng = _rng(c.seed, 0)
        self.layer_offset = c.global_scale * _unit_rows(rng, L, D)
        layers = np.arange(L)
        self.content_gain = np.linspace(1.0, 0.4, L)[:, None]
        centres = np.linspace(0, L - 1, len(self.aspects) + 2)[1:-1]
        self.bands = np.exp(-0.5 * ((layers[None, :] - centres[:, None]) / c.band_width) ** 2)
        self.components = {
            a: {
                "level": "mean" in spec.get("aggregate", ["mean"]),
                "drift": "slope" in spec.get("aggregate", []),
                "arc": "std" in spec.get("aggregate", []),
            }
            for a, spec in aspects.items()
        }
        self.freq = rng.uniform(0.8, 2.5, (len(self.aspects), self.num_features))
        self.phase = rng.uniform(0, 2 * np.pi, (len(self.aspects), self.num_features))
        self.directions = np.stack(
            [_unit_rows(rng, self.num_features, D) for _ in self.aspects]
        )  # [A, F, D]
        self.proxy_maps = {
            p: (rng.uniform(-50, 150), rng.uniform(2, 20))
            for spec in aspects.values()
            for p in spec["proxies"]
        }

    def aspect_embedding(self, signals: np.ndarray) -> np.ndarray:
        """``[n, A]`` signals → ``[n, L, D]`` aspect contribution (non-linear in each signal)."""
        feats = np.sin(signals[:, :, None] * self.freq[None] + self.phase[None])  # [n, A, F]
        vectors = np.einsum("naf,afd->nad", feats, self.directions) / np.sqrt(self.num_features)
        return self.config.aspect_scale * np.einsum("al,nad->nld", self.bands, vectors)


def _track_style(config: SyntheticConfig, world: _World, artist: int, track: int) -> dict:
    """Per-aspect style: the ``latent`` ``[A, 3]`` (level, drift and arc depth, part artist,
    part track, so relevance crosses artists) and the arc's period and phase."""
    a_rng, t_rng = _rng(config.seed, 1, artist), _rng(config.seed, 2, track)
    share = config.artist_style_share
    shape = (len(world.aspects), 3)
    latent = np.sqrt(share) * a_rng.standard_normal(shape) + np.sqrt(
        1 - share
    ) * t_rng.standard_normal(shape)
    return {
        "latent": latent,
        "period": t_rng.uniform(4.0, 8.0, len(world.aspects)),
        "phase": t_rng.uniform(0, 2 * np.pi, len(world.aspects)),
    }


def _signals(
    world: _World, style: dict, latent: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Noise-free per-segment aspect signals ``[n, A]`` of a style with the given ``latent``."""
    t = np.arange(n)[:, None]
    on = np.array(
        [[world.components[a][k] for a in world.aspects] for k in ("level", "drift", "arc")]
    )
    depth = 0.4 + 1.2 / (1 + np.exp(-1.5 * latent[:, 2]))
    signal = (
        on[0] * latent[:, 0]
        + on[1] * 0.25 * latent[:, 1] * (t - (n - 1) / 2)
        + on[2] * depth * np.sin(2 * np.pi * t / style["period"] + style["phase"])
    )
    return signal + 0.05 * rng.standard_normal(signal.shape)


def _segments_fn(
    config: SyntheticConfig, world: _World, work: int, track: int, signals: np.ndarray
) -> Callable[[], np.ndarray]:
    def make() -> np.ndarray:
        n, (L, D) = len(signals), (config.num_layers, config.dim)
        work_rng, track_rng = _rng(config.seed, 3, work), _rng(config.seed, 4, track)
        # A work's content: its theme (shared by every position) plus what each position adds.
        theme = _unit_rows(work_rng, 1, D)
        content = (
            config.content_scale * (theme + 0.5 * _unit_rows(work_rng, config.max_segments, D))[:n]
        )
        channel = config.channel_scale * _unit_rows(track_rng, 1, D)[0]
        noise = config.noise_scale / np.sqrt(D) * track_rng.standard_normal((n, L, D))
        x = (
            world.layer_offset[None]
            + world.content_gain[None] * content[:, None, :]
            + channel[None, None, :]
            + world.aspect_embedding(signals)
            + noise
        )
        return x.astype(config.dtype)

    return make


def _twins(
    config: SyntheticConfig, world: _World, work: int, track: int, style: dict, n: int
) -> dict[str, Callable[[], np.ndarray]]:
    """One twin per aspect: the track regenerated with that aspect's latent moved by
    ``twin_delta`` (the same seeds for content, channel and noise)."""
    twins = {}
    for i, aspect in enumerate(world.aspects):
        latent = style["latent"].copy()
        latent[i] += config.twin_delta
        signals = _signals(world, style, latent, n, _rng(config.seed, 6, track))
        twins[aspect] = _segments_fn(config, world, work, track, signals)
    return twins


def generate_catalogue(config: SyntheticConfig, aspects: dict[str, dict]) -> SyntheticCatalogue:
    """Build the seeded catalogue; segment arrays are produced lazily per track.

    Args:
        config: sizes, strengths and seed.
        aspects: the ``aspects`` parameter; its proxies and aggregates decide what is planted.

    Returns:
        The raw entries (docs/design.md, "Raw inputs"), the noise-free latent signals and
        the twins of the first ``twin_sources_per_group`` tracks of every group.
    """
    world = _World(config, aspects)
    rng = _rng(config.seed, 5)
    tracks, segments, proxies, latents = [], {}, [], []
    twins: list[tuple[str, str, str, float]] = []
    twin_segments: dict[str, Callable[[], np.ndarray]] = {}
    track = 0
    for g in range(config.num_groups):
        for a in range(config.artists_per_group):
            artist = g * config.artists_per_group + a
            for w in range(config.works_per_group):
                work = g * config.works_per_group + w
                track_id = f"trk{track:05d}"
                n = int(rng.integers(config.min_segments, config.max_segments + 1))
                style = _track_style(config, world, artist, track)
                signals = _signals(world, style, style["latent"], n, _rng(config.seed, 6, track))
                segments[track_id] = _segments_fn(config, world, work, track, signals)
                if a * config.works_per_group + w < config.twin_sources_per_group:
                    for aspect, make in _twins(config, world, work, track, style, n).items():
                        twin_segments[twin_id(track_id, aspect)] = make
                        twins.append(
                            (twin_id(track_id, aspect), track_id, aspect, config.twin_delta)
                        )
                tracks.append(
                    {
                        "track_id": track_id,
                        "artist_id": f"art{artist:04d}",
                        "work_id": f"wrk{work:04d}",
                        "duration_s": n * config.segment_seconds,
                    }
                )
                frame = {"track_id": track_id, "segment_idx": np.arange(n)}
                latents.append(
                    pd.DataFrame(
                        frame
                        | {
                            f"{SIGNAL_PREFIX}{x}": signals[:, i]
                            for i, x in enumerate(world.aspects)
                        }
                    )
                )
                proxies.append(
                    pd.DataFrame(frame | _proxy_columns(config, world, aspects, signals, track))
                )
                track += 1
    tracks_df = pd.DataFrame(tracks)
    tracks_df["synthetic"] = True
    return SyntheticCatalogue(
        tracks=tracks_df,
        segments=segments,
        proxy_targets=pd.concat(proxies, ignore_index=True),
        discovery=_discovery(config, world),
        latents=pd.concat(latents, ignore_index=True),
        twins=pd.DataFrame(twins, columns=list(TWIN_COLUMNS)),
        twin_segments=twin_segments,
    )


def _proxy_columns(
    config: SyntheticConfig,
    world: _World,
    aspects: dict[str, dict],
    signals: np.ndarray,
    track: int,
) -> dict[str, np.ndarray]:
    rng = _rng(config.seed, 7, track)
    columns = {}
    for i, spec in enumerate(aspects.values()):
        for proxy in spec["proxies"]:
            offset, scale = world.proxy_maps[proxy]
            values = offset + scale * (
                signals[:, i] + config.proxy_noise * rng.standard_normal(len(signals))
            )
            values[rng.random(len(values)) < config.missing_rate] = np.nan
            columns[proxy] = values
    return columns


def _discovery(config: SyntheticConfig, world: _World) -> dict:
    rng = _rng(config.seed, 8)
    scores = world.bands + config.discovery_noise * np.abs(rng.standard_normal(world.bands.shape))
    scores = scores / scores.max(axis=1, keepdims=True)
    return {
        "schema_version": 1,
        "embedding": {
            "model": config.model_name,
            "num_layers": config.num_layers,
            "dim": config.dim,
        },
        "aspects": {
            a: {"layer_scores": [round(float(s), 6) for s in scores[i]]}
            for i, a in enumerate(world.aspects)
            if a not in config.no_discovery
        },
    }
