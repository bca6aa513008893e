"""Scaling out: the scanner inside Ray actors (optional extra, ``pip install "deepscan[ray]"``).

Importing this package needs no Ray; :mod:`deepscan.distributed.ray` imports it when a scan starts
and says how to install it when it is missing. The local :class:`deepscan.scanner.Scanner` stays
the embedded default.
"""

from __future__ import annotations

__all__ = ["RayScanner", "scan_ray"]


def __getattr__(name: str):
    if name in __all__:
        from deepscan.distributed import ray as _ray

        return getattr(_ray, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
