"""A throw-away copy of the project's configuration over another data folder.

Tests and benchmarks run the real pipelines, catalog and hooks through a ``KedroSession``
whose ``conf_source`` is a copy of ``conf/base`` with every ``data/...`` path moved under
``root`` and parameters overridden (deep-merged) in ``conf/local/parameters.yml``.
"""

from __future__ import annotations

import resource
import shutil
import time
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from kedro.framework.hooks import hook_impl

REPO = Path(__file__).resolve().parents[1]


def base_parameters(name: str | None = None) -> dict[str, Any]:
    """``conf/base/parameters_<name>.yml`` (``parameters.yml`` without a name), as read."""
    file = "parameters.yml" if name is None else f"parameters_{name}.yml"
    return yaml.safe_load((REPO / "conf" / "base" / file).read_text())


def _relocate(node: Any, data_root: Path) -> Any:
    """Move every ``data/...`` path of a config tree under ``data_root``."""
    if isinstance(node, dict):
        return {k: _relocate(v, data_root) for k, v in node.items()}
    if isinstance(node, list):
        return [_relocate(v, data_root) for v in node]
    if isinstance(node, str) and node.startswith("data/"):
        return str(data_root / node)
    return node


def parameter_groups(folder: Path) -> dict[str, Any]:
    """The top-level parameter groups of every ``parameters*.yml`` in a conf ``folder``."""
    groups: dict[str, Any] = {}
    for file in sorted(Path(folder).glob("parameters*.yml")):
        groups.update(yaml.safe_load(file.read_text()) or {})
    return groups


@cache
def _bootstrap() -> None:
    """Configure Kedro for this repository, once per process (it reloads the settings,
    about a second inside pytest's deep stacks, and never changes between sessions)."""
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(REPO)


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` merged into ``base``, recursively for nested dicts."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class ScratchProject:
    """The project's conf copied to ``root/conf`` over ``root/data``, with a runner."""

    def __init__(
        self, root: Path, params: dict[str, Any] | None = None, create: bool = True
    ) -> None:
        self.root = Path(root).resolve()  # Kedro resolves relative paths from the repository
        self.conf = self.root / "conf"
        self._paths_catalog: Any = None
        if not create:  # attach to a scratch project made earlier
            return
        shutil.copytree(REPO / "conf" / "base", self.conf / "base")
        (self.conf / "local").mkdir()
        for name in ("catalog.yml", "globals.yml"):
            path = self.conf / "base" / name
            path.write_text(yaml.safe_dump(_relocate(yaml.safe_load(path.read_text()), self.root)))
        self.set_params(params or {})

    @property
    def data(self) -> Path:
        return self.root / "data"

    def set_params(self, params: dict[str, Any]) -> None:
        """Override parameters in ``conf/local/parameters.yml``.

        Kedro replaces a whole top-level group from ``conf/local``, so each overridden
        group is written in full: base values deep-merged with ``params``. A new
        ``aspects`` mapping replaces the default set instead of adding to it.
        """
        path = self.conf / "local" / "parameters.yml"
        current = yaml.safe_load(path.read_text()) if path.exists() else {}
        base = parameter_groups(self.conf / "base")
        merged = dict(current or {})
        for key, value in params.items():
            start = merged.get(key, base.get(key))
            replace = key == "aspects" or not isinstance(value, dict) or not isinstance(start, dict)
            merged[key] = value if replace else deep_merge(start, value)
        path.write_text(yaml.safe_dump(merged))

    def _session(self) -> Any:
        from kedro.framework.session import KedroSession

        _bootstrap()
        return KedroSession.create(project_path=REPO, conf_source=str(self.conf))

    def run(self, *pipelines: str, timer: NodeTimer | None = None, **kwargs: Any) -> None:
        """Run pipelines by name (all of ``__default__`` when none is given).

        A ``timer`` is registered as an extra hook for this run and records node times.
        """
        with self._session() as session:
            if timer is not None:
                session._hook_manager.register(timer)
            session.run(pipeline_names=list(pipelines) or None, **kwargs)

    def catalog(self) -> Any:
        with self._session() as session:
            return session.load_context().catalog

    def load(self, name: str) -> Any:
        return self.catalog().load(name)

    def versions(self, name: str) -> list[str]:
        """Saved versions of a versioned dataset (folder names), sorted.

        Paths come from the catalog config alone, which a scratch project never changes:
        one catalog (never used to load or save) answers every later call.
        """
        if self._paths_catalog is None:
            self._paths_catalog = self.catalog()
        path = Path(self._paths_catalog.get(name)._filepath)
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


class NodeTimer:
    """A Kedro hook that records each node's wall time (seconds, by node name) and the
    process's peak RSS after it (MB): the first node after which the peak jumps holds it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}
        self._started: dict[str, float] = {}

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        self.seconds[node.name] = round(time.perf_counter() - self._started.pop(node.name), 3)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.peak_rss_mb[node.name] = round(peak, 1)


def profile_pipelines(
    root: str,
    pipelines: list[str],
    to_nodes: list[str] | None = None,
    from_nodes: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Run ``pipelines`` (from ``from_nodes`` and up to ``to_nodes``, if given) in the
    scratch project made earlier at ``root`` (for ``measured``): each node's wall time
    (``nodes_s``) and the peak RSS after it (``peak_rss_after_mb``)."""
    timer = NodeTimer()
    ScratchProject(Path(root), create=False).run(
        *pipelines, timer=timer, to_nodes=to_nodes, from_nodes=from_nodes
    )
    return {"nodes_s": timer.seconds, "peak_rss_after_mb": timer.peak_rss_mb}


def run_pipelines(root: str, pipelines: list[str], **nodes: list[str] | None) -> dict[str, float]:
    """``profile_pipelines``' node times alone."""
    return profile_pipelines(root, pipelines, **nodes)["nodes_s"]
