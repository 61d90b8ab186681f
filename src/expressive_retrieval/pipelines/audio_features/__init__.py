"""``audio_features`` pipeline: recordings → the raw entries plus ``extraction``."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
