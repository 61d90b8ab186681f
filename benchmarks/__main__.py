"""``python -m benchmarks [name ...]``: run the benchmarks, writing benchmarks/results/*.json."""

from __future__ import annotations

import importlib
import os
import sys
import warnings

BENCHMARKS = [
    "audio_features",
    "splits",
    "labels_and_splits",
    "ann",
    "oracle_scorer",
    "projection_retriever",
    "distillation",
    "evaluation",
    "serving",
    "scale",
    "catalogue_scale",
]


def main() -> None:
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    warnings.filterwarnings("ignore", message="register_new_resolver")
    names = sys.argv[1:] or BENCHMARKS
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        sys.exit(f"unknown benchmark(s) {sorted(unknown)}; choose from {BENCHMARKS}")
    for name in names:
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.bench_{name}").main()


if __name__ == "__main__":
    main()
