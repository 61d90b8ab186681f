"""The numpy retrieval core: aspect vectors, track scores, the FAISS index, checksums.

Everything ``serving`` needs, and nothing more: numpy, faiss and the standard library only
(no torch, pandas, Kedro or Great Expectations; ``lint-imports`` checks it).
"""
