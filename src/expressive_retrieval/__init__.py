"""Expressive Retrieval: learned "played like this" similarity over frozen MERT embeddings."""

__version__ = "0.1.0"
