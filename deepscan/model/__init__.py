"""deepscan.model."""
