"""Without the ``audio`` extra, the pipelines import and audio steps say how to install it."""

import sys

import numpy as np
import pytest

from expressive_retrieval.audio.optional import INSTALL_HINT, require
from expressive_retrieval.audio.proxies import measure_proxies


@pytest.fixture
def without_librosa(monkeypatch):
    monkeypatch.setitem(sys.modules, "librosa", None)  # import librosa -> ImportError


def test_require_returns_the_modules():
    (module,) = require("json", purpose="testing")
    assert module is sys.modules["json"]


def test_a_missing_library_names_itself_the_purpose_and_the_extra(without_librosa):
    with pytest.raises(ImportError, match="measuring proxies from audio needs librosa") as error:
        measure_proxies(np.ones(22050, dtype=np.float32), 22050)
    assert INSTALL_HINT in str(error.value)


def test_the_pipelines_import_without_the_audio_stack(monkeypatch):
    for name in ("librosa", "pyloudnorm", "soundfile", "soxr", "transformers"):
        monkeypatch.setitem(sys.modules, name, None)
    for module in [m for m in sys.modules if m.startswith("expressive_retrieval.")]:
        monkeypatch.delitem(sys.modules, module)
    from expressive_retrieval.pipelines.audio_features import create_pipeline

    assert create_pipeline().nodes
