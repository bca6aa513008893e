"""deepscan: an offline deepfake scanner for video, audio and images.

The library does the work; the ``deepscan`` command line parses, calls and prints. From Python::

    import deepscan

    for result in deepscan.scan(["media/"]):          # one call: a generator of ScanResult
        print(result.path, result.verdict, result.p_fake)

    scanner = deepscan.Scanner(models_dir="models/")   # load once ...
    for result in scanner.scan(["a.mp4", "b.wav"]):    # ... scan many times
        ...

``import deepscan`` is cheap: :func:`scan`, :class:`Scanner` and :class:`ScanResult` are imported
(with torch, PyAV and OpenCV) on first use.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "scan", "Scanner", "ScanResult"]

_LAZY = {  # name -> the module that defines it, imported on first use (PEP 562)
    "scan": "deepscan.scanner",
    "Scanner": "deepscan.scanner",
    "ScanResult": "deepscan.results",
}


def __getattr__(name: str):
    """``deepscan.scan``, ``deepscan.Scanner`` and ``deepscan.ScanResult``, imported when first asked for.

    scan(paths, detector=None, encoders=None, *, recursive=True, skip=None, on_progress=None, **options)
        Scan files and folders with one call; yields one :class:`ScanResult` per file, in the order
        found (:func:`deepscan.scanner.scan`). ``options`` are :class:`Scanner`'s (``models_dir``,
        ``experts``, ``device``, ``workers``, ``cache`` ...).
    Scanner(detector=None, encoders=None, ..., experts="auto", models_dir=None)
        The models loaded once, for repeated :meth:`~deepscan.scanner.Scanner.scan` calls
        (:class:`deepscan.scanner.Scanner`).
    ScanResult
        One file's result (:class:`deepscan.results.ScanResult`): ``path``, ``status``, ``verdict``,
        ``p_fake``, ``threshold``, ``reason``, ``cues``, ``windows`` ...; ``to_dict()`` gives the JSON record.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
