"""``training``: every pipeline but ``synthetic_data``, for users' own data."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
