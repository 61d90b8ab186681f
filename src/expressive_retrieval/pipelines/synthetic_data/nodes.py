"""Nodes of ``synthetic_data``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.data.synthetic import SyntheticConfig, generate_catalogue

logger = logging.getLogger(__name__)


def generate_synthetic_catalogue(
    params: dict[str, Any], aspects: dict[str, dict]
) -> tuple[
    pd.DataFrame,
    dict[str, Callable[[], np.ndarray]],
    pd.DataFrame,
    dict,
    pd.DataFrame,
    pd.DataFrame,
    dict[str, Callable[[], np.ndarray]],
]:
    """The seeded synthetic catalogue as the four raw entries, its latents and its twins.

    See docs/design.md, "Synthetic default". The twins (``twins``, ``twin_segments``) are
    kept apart from the catalogue: only the evaluation's selectivity check reads them.

    Segment arrays are returned as callables, so they are generated one track at a time
    while the ``segments`` and ``twin_segments`` datasets write them.
    """
    config = SyntheticConfig(**{**params, "no_discovery": tuple(params.get("no_discovery", ()))})
    catalogue = generate_catalogue(config, aspects)
    logger.info(
        "Synthetic catalogue: %d tracks, %d segments, L=%d, D=%d, %s; %d twins of %d tracks",
        len(catalogue.tracks),
        len(catalogue.proxy_targets),
        config.num_layers,
        config.dim,
        config.dtype,
        len(catalogue.twins),
        catalogue.twins["source_track_id"].nunique(),
    )
    return (
        catalogue.tracks,
        catalogue.segments,
        catalogue.proxy_targets,
        catalogue.discovery,
        catalogue.latents,
        catalogue.twins,
        catalogue.twin_segments,
    )
