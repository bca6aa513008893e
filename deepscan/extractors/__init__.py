"""deepscan.extractors."""
