"""Project wiring: the registry, catalog layers for kedro-viz, telemetry off."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project
from kedro.io.catalog_config_resolver import DEFAULT_RUNTIME_PATTERN, CatalogConfigResolver

from benchmarks.scratch import ScratchProject, parameter_groups

REPO = Path(__file__).resolve().parents[1]
LAYERS = [
    "raw",
    "intermediate",
    "primary",
    "feature",
    "model_input",
    "models",
    "model_output",
    "reporting",
    "export",
]


def _registry() -> dict:
    bootstrap_project(REPO)
    return dict(pipelines)


def test_registry_has_every_pipeline_and_the_aggregates() -> None:
    registry = _registry()
    names = {
        "synthetic_data",
        "labels_and_splits",
        "oracle_scorer",
        "projection_retriever",
        "evaluation",
    }
    assert names <= set(registry)
    default = {n.name for n in registry["__default__"].nodes}
    training = {n.name for n in registry["training"].nodes}
    assert "generate_synthetic_catalogue_node" in default
    assert "generate_synthetic_catalogue_node" not in training
    assert training | {"generate_synthetic_catalogue_node"} == default
    # audio_features writes the same raw entries as synthetic_data: it runs on its own.
    assert "extract_audio_features_node" in {n.name for n in registry["audio_features"].nodes}
    assert "extract_audio_features_node" not in default
    # Evaluation reads only what this run writes (never a stale artifact on disk), and each
    # of its nodes runs after the nodes that write its inputs.
    order = registry["__default__"].nodes
    position = {output: i for i, n in enumerate(order) for output in n.outputs}
    external = {"audit_judgements", "previous_splits"}
    for i, node in enumerate(order):
        if node in registry["evaluation"].nodes:
            for name in node.inputs:
                if not name.startswith("params:") and name not in external:
                    assert position[name] < i, (node.name, name)


def _resolved_catalog() -> dict[str, dict]:
    """Every dataset of the default pipeline as the catalog resolves it (factories included).

    Free outputs resolve to Kedro's runtime default, an in-memory dataset without metadata.
    """
    config = yaml.safe_load((REPO / "conf/base/catalog.yml").read_text())
    resolver = CatalogConfigResolver(config, default_runtime_patterns=DEFAULT_RUNTIME_PATTERN)
    names = _registry()["__default__"].datasets()
    return {n: resolver.resolve_pattern(n) for n in names if not n.startswith("params:")}


def test_catalog_layers_never_flow_backwards() -> None:
    layer = {
        name: LAYERS.index(entry["metadata"]["kedro-viz"]["layer"])
        for name, entry in _resolved_catalog().items()
        if "metadata" in entry
    }
    for node in _registry()["__default__"].nodes:
        for source in node.inputs:
            for target in node.outputs:
                if source in layer and target in layer:
                    assert layer[source] <= layer[target], (node.name, source, target)


def test_artifacts_are_versioned_and_telemetry_is_off() -> None:
    raw = {
        "tracks",
        "segments",
        "proxy_targets",
        "discovery",
        "extraction",  # written by audio_features beside the raw entries it describes
        "recordings",
        "synthetic_latents",
        "twins",  # written by synthetic_data beside the catalogue, like the raw entries
        "twin_segments",
        "previous_splits",
        "audit_judgements",  # returned by raters: an input folder, like the raw entries
    }
    persisted = {
        name: entry
        for name, entry in _resolved_catalog().items()
        if not entry["type"].endswith("MemoryDataset")
    }
    assert {"oracle_model", "projection_ablation_config", "evaluation_training_plot"} <= set(
        persisted
    )
    for name, entry in persisted.items():
        if name not in raw:
            assert entry.get("versioned") is True, name
    assert yaml.safe_load((REPO / ".telemetry").read_text()) == {"consent": False}


def test_factories_resolve_the_fixed_names_and_nothing_else() -> None:
    catalog = _resolved_catalog()
    explicit = yaml.safe_load((REPO / "conf/base/catalog.yml").read_text())
    expected = set()
    for model in ("oracle", "projection", "projection_ablation"):
        for kind, file in (
            ("model", "model.safetensors"),
            ("config", "config.json"),
            ("training_metadata", "training_metadata.json"),
        ):
            assert catalog[f"{model}_{kind}"]["filepath"] == f"data/06_models/{model}/{file}"
            expected.add(f"{model}_{kind}")
    for figure in ("ranking", "faithfulness", "counterfactual", "selectivity", "training"):
        entry = catalog[f"evaluation_{figure}_plot"]
        assert entry["filepath"] == f"data/08_reporting/evaluation/plots/{figure}.png"
        expected.add(f"evaluation_{figure}_plot")
    # A factory must not catch an in-memory output by its name's ending (e.g. relevance_model).
    from_factories = {
        name
        for name, entry in catalog.items()
        if name not in explicit and not entry["type"].endswith("MemoryDataset")
    }
    assert from_factories == expected


def test_a_scratch_project_at_a_relative_root_keeps_its_data_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    project = ScratchProject(Path("scratch"))
    text = "".join(
        (project.conf / "base" / name).read_text() for name in ("catalog.yml", "globals.yml")
    )
    paths = [word.strip("'\",") for word in text.split() if "data/" in word]
    assert paths and all(path.startswith(str(tmp_path / "scratch" / "data")) for path in paths)


def test_a_dotted_runtime_parameter_changes_only_its_key(tmp_path: Path) -> None:
    from expressive_retrieval.config_loader import ProjectConfigLoader

    (tmp_path / "base").mkdir()
    (tmp_path / "local").mkdir()
    (tmp_path / "base/parameters.yml").write_text(
        yaml.safe_dump({"group": {"a": 1, "b": {"c": 2, "d": 3}}, "other": {"e": 4}})
    )
    (tmp_path / "local/parameters.yml").write_text(yaml.safe_dump({"other": {"e": 5}}))
    loader = ProjectConfigLoader(
        str(tmp_path),
        base_env="base",
        default_run_env="local",
        runtime_params={"group": {"b": {"c": 9}}, "other": {"f": 6}},
    )
    assert loader["parameters"] == {
        "group": {"a": 1, "b": {"c": 9, "d": 3}},
        "other": {"e": 5, "f": 6},
    }


def test_twins_are_read_by_the_selectivity_check_alone() -> None:
    """Twins never reach labels, splits or training: one evaluation node reads them."""
    registry = _registry()
    readers = {
        n.name for n in registry["__default__"].nodes if {"twins", "twin_segments"} & set(n.inputs)
    }
    assert readers == {"score_selectivity_node"}


# The full-budget parameter set (conf/full): every change from conf/base, by key path.
FULL_CHANGES = {
    ("oracle_scorer", "model", "members"): (1, 4),
    ("oracle_scorer", "training", "batch_queries"): (96, 32),
}


def _differences(base: object, other: object, path: tuple = ()) -> dict[tuple, tuple]:
    """``{key path: (base value, other value)}`` of every leaf where two trees differ."""
    if isinstance(base, dict) and isinstance(other, dict):
        found: dict[tuple, tuple] = {}
        for key in base.keys() | other.keys():
            found |= _differences(base.get(key), other.get(key), (*path, key))
        return found
    return {} if base == other else {path: (base, other)}


def test_the_full_parameter_set_changes_only_what_it_says() -> None:
    full = parameter_groups(REPO / "conf" / "full")
    base = parameter_groups(REPO / "conf" / "base")
    assert full.keys() <= base.keys()
    changes = {
        k: v for group in full for k, v in _differences(base[group], full[group], (group,)).items()
    }
    assert changes == FULL_CHANGES
