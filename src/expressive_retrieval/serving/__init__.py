"""The serving API: load a verified bundle and search it (docs/design.md, "Serving API").

Needs numpy, faiss-cpu, safetensors and pyarrow only — no Kedro, torch or pandas::

    from expressive_retrieval.serving import load_bundle

    retriever = load_bundle("data/09_export/<bundle_version>")
    hits = retriever.search_clips(segments, k=10, weights={"tempo": 2, "dynamics": 1})
"""

from expressive_retrieval.serving.bundle import BundleIntegrityError, verify_bundle
from expressive_retrieval.serving.retriever import Hit, QueryError, Retriever, load_bundle

__all__ = [
    "BundleIntegrityError",
    "Hit",
    "QueryError",
    "Retriever",
    "load_bundle",
    "verify_bundle",
]
