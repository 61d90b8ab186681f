"""Benchmark plumbing: isolated measured runs and JSON results with machine info."""

from __future__ import annotations

import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    import numpy as np

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
    }
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:  # torch's CPU sums split by thread: trained models differ between thread counts
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the machine and a timestamp."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        **result,
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    print(json.dumps(payload, indent=2))
    return path


def measured(target: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``module:function(**kwargs)`` in a fresh process; its wall time and peak RSS.

    A fresh process per measurement keeps peak RSS honest (no memory from earlier work).
    """
    command = [sys.executable, "-m", "benchmarks.harness", target, json.dumps(kwargs)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{target} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _main() -> None:
    warnings.filterwarnings("ignore", message="register_new_resolver")
    target, kwargs = sys.argv[1], json.loads(sys.argv[2])
    module, function = target.split(":")
    started = time.perf_counter()
    value = getattr(importlib.import_module(module), function)(**kwargs)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": round(wall, 3), "peak_rss_mb": round(peak_mb, 1), "value": value}))


if __name__ == "__main__":
    _main()
