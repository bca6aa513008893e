"""deepscan.writers."""
