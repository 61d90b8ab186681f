"""``synthetic_data`` pipeline: the embedded default catalogue."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
