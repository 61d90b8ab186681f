"""From audio to the raw contract: decoding, segmenting, proxies and model embeddings.

``decode`` (soundfile, soxr) and ``embedding`` (torch, transformers; imported lazily) are
what the serving extra ``expressive-retrieval[audio]`` needs to embed a query exactly as
the ``audio_features`` pipeline embedded the corpus; ``proxies`` (librosa, pyloudnorm) and
``extraction`` serve the pipeline only.
"""
