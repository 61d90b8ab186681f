"""Build the project's wheel and install it, without extras, into a fresh virtual environment.

Shared by the wheel test and the serving benchmark. The wheel is built as ``kedro package``
builds it (``python -m build --wheel``), here without isolation and from a copy of the
sources so the checkout is untouched; pip's cache keeps reinstalls fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.scratch import REPO


def run(*command: str | Path, cwd: Path | None = None) -> str:
    """Run ``command`` outside this environment (no PYTHONPATH); its stdout, or raise."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def build_wheel(out: Path) -> Path:
    """The project's wheel, built from a copy of its sources into ``out``."""
    source = Path(out) / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, cwd=source)
    return next(Path(out).glob("expressive_retrieval-*.whl"))


def serving_venv(folder: Path, wheel: Path) -> Path:
    """A fresh virtual environment with ``wheel`` installed (pinned, no extras); its python."""
    run(sys.executable, "-m", "venv", folder)
    python = Path(folder) / "bin" / "python"
    constraints = REPO / "requirements" / "constraints.txt"
    run(python, "-m", "pip", "install", "--quiet", "-c", constraints, wheel)
    return python
