"""``export``: the versioned, checksummed artifact bundle the serving consumer loads."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
