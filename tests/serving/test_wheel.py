"""The wheel, installed without extras into a fresh virtual environment, serves a bundle.

Builds the wheel as ``kedro package`` does (``python -m build --wheel``, here without
isolation and from a copy of the sources, so the checkout is untouched), installs it
with the pinned constraints and no extras, then verifies and searches the tiny bundle
there through the API and the ``expressive-retrieval`` entry point. pip's cache keeps
reruns fast (about 20 s on 2 cores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TRAINING_ONLY = ["kedro", "torch", "great_expectations", "kedro_viz", "pandas", "matplotlib"]


def _run(*command: str | Path, cwd: Path | None = None) -> str:
    # Without PYTHONPATH: the venv must use the installed wheel, not this checkout.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def build_wheel(out: Path) -> Path:
    """The project's wheel, built from a copy of its sources into ``out``."""
    source = out / "source"
    for name in ("pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    _run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, cwd=source)
    return next(out.glob("expressive_retrieval-*.whl"))


def serving_venv(folder: Path, wheel: Path) -> Path:
    """A fresh virtual environment with the wheel installed, no extras; its python."""
    _run(sys.executable, "-m", "venv", folder)
    python = folder / "bin" / "python"
    constraints = REPO / "requirements" / "constraints.txt"
    _run(python, "-m", "pip", "install", "--quiet", "-c", constraints, wheel)
    return python


@pytest.mark.slow
def test_the_wheel_serves_a_bundle_without_training_dependencies(tiny_bundle, tmp_path) -> None:
    python = serving_venv(tmp_path / "venv", build_wheel(tmp_path / "wheel"))
    query = tmp_path / "query.npy"
    np.save(query, tiny_bundle.segments["track_07"][:4])
    script = f"""
import importlib.util, json
import numpy as np
from expressive_retrieval.serving import load_bundle
retriever = load_bundle({str(tiny_bundle.path)!r})
hits = retriever.search_clips(np.load({str(query)!r}), k=3, weights={{"tempo": 1.0}})
tracks = retriever.search_tracks(np.load({str(query)!r}), k=2)
missing = [m for m in {TRAINING_ONLY!r} if importlib.util.find_spec(m) is None]
import expressive_retrieval
print(json.dumps({{"hits": [h.id for h in hits], "tracks": len(tracks), "missing": missing,
                  "module": expressive_retrieval.__file__}}))
"""
    result = json.loads(_run(python, "-c", script, cwd=tmp_path))
    assert result["missing"] == TRAINING_ONLY  # none of them is installed
    assert result["hits"][0] == "track_07:0" and result["tracks"] == 2
    assert result["module"].startswith(str(tmp_path / "venv"))
    cli = _run(tmp_path / "venv" / "bin" / "expressive-retrieval", "verify", tiny_bundle.path)
    assert json.loads(cli)["verified"] is True
