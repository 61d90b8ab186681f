"""The blind human audit: sampling, pooling and agreement (``kit``), the rater page (``page``)."""
