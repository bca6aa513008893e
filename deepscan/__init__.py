"""deepscan: an offline deepfake scanner for video, audio and images.

The library does the work; the ``deepscan`` command line parses, calls and prints.
"""

__version__ = "0.1.0"
