"""deepscan.training."""
