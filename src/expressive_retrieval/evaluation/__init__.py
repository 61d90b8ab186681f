"""Evaluation: ranking metrics, split views, aspect checks, baselines, the human audit and
the report."""
