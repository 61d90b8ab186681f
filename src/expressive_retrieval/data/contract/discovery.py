"""The ``discovery`` JSON's rules: schema version, embedding shape, finite layer scores."""

from __future__ import annotations

import math
from collections.abc import Callable

from expressive_retrieval.data.contract.segment_files import SegmentSummary
from expressive_retrieval.data.contract.violations import Violation, examples, list_ids

DISCOVERY_SCHEMA_VERSION = 1
# Probe scores (R², correlations, accuracies) are of order 1; beyond this they are a bug.
MAX_ABS_LAYER_SCORE = 1e6


def _is_int(value: object) -> bool:
    """True for a real integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: object) -> bool:
    """True for a finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_discovery(
    discovery: dict,
    summary: SegmentSummary,
    aspects: dict,
    file: str,
    violations: list[Violation],
    warnings: list[str],
) -> None:
    """Check the discovery JSON's structure, its layout against the segments, layer scores."""

    def schema(key: str, detail: str) -> None:
        violations.append(Violation(file, "discovery.schema", (key,), detail))

    if not isinstance(discovery, dict):
        schema("<root>", f"expected a JSON object, found {type(discovery).__name__}")
        return
    version = discovery.get("schema_version")
    if not (_is_int(version) and version == DISCOVERY_SCHEMA_VERSION):
        schema(
            "schema_version",
            f"schema_version must be {DISCOVERY_SCHEMA_VERSION}, found {version!r}"
            if "schema_version" in discovery
            else "missing key 'schema_version'",
        )

    num_layers = _check_embedding(discovery, summary, schema)
    expected_length = summary.L if summary.L is not None else num_layers

    found = _object(discovery, "aspects", schema)
    if found is None:
        return
    scored: dict[str, list] = {}
    for name, entry in found.items():
        scores = entry.get("layer_scores") if isinstance(entry, dict) else None
        if isinstance(scores, list):
            scored[str(name)] = scores
        elif not isinstance(entry, dict):
            schema(f"aspects.{name}", f"aspects.{name} must be an object with 'layer_scores'")
        elif "layer_scores" not in entry:
            schema(f"aspects.{name}.layer_scores", f"missing key 'aspects.{name}.layer_scores'")
        else:
            schema(
                f"aspects.{name}.layer_scores",
                f"aspects.{name}.layer_scores must be a list, found {type(scores).__name__}",
            )

    if expected_length is not None:
        wrong = {n: len(s) for n, s in scored.items() if len(s) != expected_length}
        if wrong:
            violations.append(
                Violation(
                    file,
                    "discovery.layer_scores",
                    tuple(wrong),
                    f"layer_scores must have L={expected_length} entries, found lengths "
                    f"{examples(wrong)}",
                )
            )
    not_finite = [n for n, s in scored.items() if not all(_is_finite_number(x) for x in s)]
    if not_finite:
        violations.append(
            Violation(
                file,
                "discovery.layer_scores",
                tuple(not_finite),
                "layer_scores must be finite numbers",
            )
        )

    absurd = [
        n
        for n, s in scored.items()
        if n not in not_finite and any(abs(x) > MAX_ABS_LAYER_SCORE for x in s)
    ]
    if absurd:
        violations.append(
            Violation(
                file,
                "discovery.layer_scores",
                tuple(absurd),
                f"layer_scores must lie within ±{MAX_ABS_LAYER_SCORE:g} (probe scores are of "
                "order 1; <= 0 means no evidence in that layer)",
            )
        )

    wanted = [str(a) for a in aspects]
    without = [a for a in wanted if a not in found]
    if without:
        warnings.append(
            f"aspect(s) without discovery evidence in {file}, falling back to layer-wise "
            f"probes: {list_ids(without)}"
        )
    unused = [str(a) for a in found if str(a) not in wanted]
    if unused:
        warnings.append(
            f"discovery aspect(s) not in the aspects parameter are ignored: {list_ids(unused)}"
        )


def _check_embedding(
    discovery: dict, summary: SegmentSummary, schema: Callable[[str, str], None]
) -> int | None:
    """Check ``discovery["embedding"]``; return its valid ``num_layers`` or None."""
    embedding = _object(discovery, "embedding", schema)
    if embedding is None:
        return None
    model = embedding.get("model")
    if not isinstance(model, str):
        schema("embedding.model", f"embedding.model must be a string, found {model!r}")
    valid: dict[str, int] = {}
    for key, actual, letter in (
        ("num_layers", summary.L, "L"),
        ("dim", summary.D, "D"),
    ):
        value = embedding.get(key)
        if not (_is_int(value) and value > 0):
            schema(f"embedding.{key}", f"embedding.{key} must be a positive int, found {value!r}")
            continue
        valid[key] = value
        if actual is not None and value != actual:
            schema(
                f"embedding.{key}",
                f"embedding.{key} is {value} but the segment files have {letter}={actual}",
            )
    return valid.get("num_layers")


def _object(discovery: dict, key: str, schema: Callable[[str, str], None]) -> dict | None:
    """``discovery[key]`` when it is an object; otherwise report it and return None."""
    value = discovery.get(key)
    if isinstance(value, dict):
        return value
    schema(
        key,
        f"missing key {key!r}"
        if key not in discovery
        else f"{key!r} must be an object, found {type(value).__name__}",
    )
    return None
