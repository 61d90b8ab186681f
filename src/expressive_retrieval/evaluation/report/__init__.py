"""The evaluation report's figures (``figures``) and its HTML and Markdown pages (``page``)."""
