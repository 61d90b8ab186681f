"""The project's config loader: ``--params`` overrides single keys, not whole groups."""

from __future__ import annotations

from typing import Any

from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf


class ProjectConfigLoader(OmegaConfigLoader):
    """``OmegaConfigLoader`` whose runtime parameters are merged key by key.

    Kedro 1.7 merges runtime parameters into the ``conf/local`` parameters and then lets
    each local top-level group replace the base one, so ``--params=group.key=value``
    replaced the whole ``group`` with ``{key: value}``. Here the files are merged as Kedro
    does (``conf/local`` groups still replace base groups) and the runtime parameters are
    deep-merged last: a dotted override changes only that key.
    """

    def __getitem__(self, key: str) -> dict[str, Any]:
        config = super().__getitem__(key)
        if key != "parameters" or not self.runtime_params:
            return config
        merged = OmegaConf.unsafe_merge(OmegaConf.create(config), self.runtime_params)
        return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]

    def _merge_and_resolve(self, key: str, config_per_file: dict) -> dict[str, Any]:
        if key != "parameters" or not config_per_file:
            return super()._merge_and_resolve(key, config_per_file)
        # The files only: runtime parameters are applied once, in __getitem__.
        merged = OmegaConf.unsafe_merge(*config_per_file.values())
        return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]
