"""Numeric precision of the frozen encoders: fp32 everywhere, or bfloat16 where the hardware has it.

bfloat16 keeps fp32's exponent range with an 8-bit mantissa, so activations do not overflow as in
fp16 (Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", arXiv:1905.12322). It is
fast only with hardware support: Intel AMX (``amx_bf16``) or AVX512-BF16 (``avx512_bf16``) on CPUs,
Ampere and newer on CUDA. Elsewhere PyTorch emulates it and it is slower than fp32, so ``"auto"``
picks it only where it is native.

The encoders run under :func:`autocast_context` (``torch.autocast``) with fp32 weights rather than
with weights cast to bf16: autocast keeps normalisations and softmax in fp32 and runs matmuls and
convolutions in bf16, one set of weights serves both precisions, and it was no slower. Measured here
(2 shared cores without native bf16, random-weight full-size models; times are for 8 crops / one
4 s waveform): CLIP ViT-B/32 fp32 1.4 s, autocast 5.8 s, cast weights 6.0 s, min per-token cosine
to fp32 0.99999 (autocast) and 0.99995 (cast); wav2vec2-base fp32 1.7 s, autocast 3.7 s, cast
5.6 s, min cosine 0.99985 (autocast) and 0.99986 (cast). Without AMX/AVX512-BF16, bf16 is ~2-4x
slower than fp32, which is why ``"auto"`` means fp32 on such CPUs. Outputs are always returned as
float32; ``tests/test_precision.py`` checks cosine >= 0.999.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

import torch

__all__ = ["PRECISIONS", "cpu_has_native_bf16", "resolve_precision", "autocast_context"]

PRECISIONS = ("auto", "fp32", "bf16")
CPUINFO = "/proc/cpuinfo"
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16).

    Reads the ``flags`` line of ``/proc/cpuinfo`` (Linux); elsewhere falls back to
    ``torch.backends.cpu.get_cpu_capability()`` reporting ``"AVX512_BF16"`` or ``"AMX"``.

    Returns
    -------
    bool
    """
    try:
        with open(CPUINFO, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in BF16_CPU_FLAGS)
    except OSError:
        pass
    capability = torch.backends.cpu.get_cpu_capability().upper()
    return "BF16" in capability or "AMX" in capability


def _device_type(device: str | torch.device) -> str:
    return torch.device(device).type


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> torch.dtype:
    """Map a precision name to the compute dtype for a device.

    Parameters
    ----------
    precision : str
        ``"fp32"``, ``"bf16"`` or ``"auto"`` (bf16 on CUDA devices that support it and on CPUs
        with AMX-BF16 or AVX512-BF16, fp32 otherwise).
    device : str or torch.device
        Where the encoders run (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).

    Returns
    -------
    torch.dtype
        ``torch.float32`` or ``torch.bfloat16``.

    Raises
    ------
    ValueError
        If ``precision`` is not one of :data:`PRECISIONS`, or ``"bf16"`` is asked for on a device
        type that autocast cannot run in bf16 (e.g. ``"mps"`` on old PyTorch).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    kind = _device_type(device)
    if precision == "fp32":
        return torch.float32
    if precision == "auto":
        if kind == "cuda":
            return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if kind == "cpu" and cpu_has_native_bf16() else torch.float32
    if not torch.amp.is_autocast_available(kind):
        raise ValueError(f"bf16 autocast is not available on device type {kind!r}; use --precision fp32")
    return torch.bfloat16


def autocast_context(dtype: torch.dtype, device: str | torch.device = "cpu"):
    """A context in which the encoders compute in ``dtype``.

    Parameters
    ----------
    dtype : torch.dtype
        From :func:`resolve_precision`.
    device : str or torch.device
        Where the encoders run.

    Returns
    -------
    contextlib.AbstractContextManager
        ``torch.autocast(device_type, dtype=torch.bfloat16)`` for bf16, a no-op for fp32.

    Raises
    ------
    ValueError
        If ``dtype`` is neither ``torch.float32`` nor ``torch.bfloat16``.
    """
    if dtype == torch.float32:
        return contextlib.nullcontext()
    if dtype != torch.bfloat16:
        raise ValueError(f"unsupported compute dtype {dtype}; expected torch.float32 or torch.bfloat16")
    return torch.autocast(_device_type(device), dtype=torch.bfloat16)
