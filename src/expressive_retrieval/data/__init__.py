"""Data preparation: the raw input contract, segments, schema suites, relevance, splits,
discovery probes and the synthetic catalogue."""
