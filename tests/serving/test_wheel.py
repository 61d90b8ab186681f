"""The wheel, installed without extras into a fresh virtual environment, serves a bundle.

``benchmarks.wheel`` builds it as ``kedro package`` does and installs it with the pinned
constraints and no extras; the tiny bundle is then verified and searched there through the
API and the ``expressive-retrieval`` entry point. pip's cache keeps reruns near 15 s.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.wheel import build_wheel, run, serving_venv

TRAINING_ONLY = ["kedro", "torch", "great_expectations", "kedro_viz", "pandas", "matplotlib"]


@pytest.mark.slow
def test_the_wheel_serves_a_bundle_without_training_dependencies(tiny_bundle, tmp_path) -> None:
    python = serving_venv(tmp_path / "venv", build_wheel(tmp_path / "wheel"))
    query = tmp_path / "query.npy"
    np.save(query, tiny_bundle.segments["track_07"][:4])
    script = f"""
import importlib.util, json
import numpy as np
import expressive_retrieval
from expressive_retrieval.serving import load_bundle
retriever = load_bundle({str(tiny_bundle.path)!r})
hits = retriever.search_clips(np.load({str(query)!r}), k=3, weights={{"tempo": 1.0}})
tracks = retriever.search_tracks(np.load({str(query)!r}), k=2)
missing = [m for m in {TRAINING_ONLY!r} if importlib.util.find_spec(m) is None]
print(json.dumps({{"hits": [h.id for h in hits], "tracks": len(tracks), "missing": missing,
                  "module": expressive_retrieval.__file__}}))
"""
    result = json.loads(run(python, "-c", script, cwd=tmp_path))
    assert result["module"].startswith(str(tmp_path / "venv"))  # the wheel, not this checkout
    assert result["missing"] == TRAINING_ONLY  # none of them is installed
    assert result["hits"][0] == "track_07:0" and result["tracks"] == 2
    cli = run(tmp_path / "venv" / "bin" / "expressive-retrieval", "verify", tiny_bundle.path)
    assert json.loads(cli)["verified"] is True
