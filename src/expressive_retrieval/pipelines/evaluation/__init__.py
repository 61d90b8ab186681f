"""``evaluation``: every system on the test split, both tasks, aspect gates, report, audit kit."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
