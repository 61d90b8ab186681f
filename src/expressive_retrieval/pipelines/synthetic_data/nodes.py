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
) -> tuple[pd.DataFrame, dict[str, Callable[[], np.ndarray]], pd.DataFrame, dict, pd.DataFrame]:
    """The seeded synthetic catalogue as the four raw entries plus its latents.

    See docs/design.md, "Synthetic default".

    Segment arrays are returned as callables, so they are generated one track at a time
    while the ``segments`` dataset writes them.
    """
    config = SyntheticConfig(**{**params, "no_discovery": tuple(params.get("no_discovery", ()))})
    catalogue = generate_catalogue(config, aspects)
    logger.info(
        "Synthetic catalogue: %d tracks, %d segments, L=%d, D=%d, %s",
        len(catalogue.tracks),
        len(catalogue.proxy_targets),
        config.num_layers,
        config.dim,
        config.dtype,
    )
    return (
        catalogue.tracks,
        catalogue.segments,
        catalogue.proxy_targets,
        catalogue.discovery,
        catalogue.latents,
    )
