"""The ``audio`` extra's libraries: imported when audio is processed, with one install hint.

The default pipelines and the serving wheel never need them, so ``make run`` and a
search-only service install without librosa, pyloudnorm, soundfile, soxr or transformers.
"""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = "pip install 'expressive-retrieval[audio]'"


def require(*names: str, purpose: str) -> tuple[ModuleType, ...]:
    """Import ``names`` or raise ``ImportError`` saying what needs them and how to install."""
    try:
        return tuple(importlib.import_module(name) for name in names)
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs {', '.join(names)}: {INSTALL_HINT} ({error})"
        ) from error
