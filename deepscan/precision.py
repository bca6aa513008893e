"""Numeric precision of the frozen encoders: fp32, bfloat16 where the hardware has it, or int8.

bfloat16 keeps fp32's exponent range with an 8-bit mantissa, so activations do not overflow as in
fp16 (Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", arXiv:1905.12322). It is
fast only with hardware support: Intel AMX (``amx_bf16``) or AVX512-BF16 (``avx512_bf16``) on CPUs,
Ampere and newer on CUDA. Elsewhere PyTorch emulates it and it is slower than fp32, so ``"auto"``
picks it only where it is native.

Where bf16 is native on the CPU, the encoders' weights are cast to bf16 once
(:func:`casts_bf16_weights`): autocast re-casts every fp32 weight at every call, and casting once
measured faster (see there). Elsewhere they run under :func:`autocast_context`
(``torch.autocast``) with fp32 weights: autocast keeps normalisations and softmax in fp32 and runs
matmuls and convolutions in bf16, and on a CPU without native bf16 it was no slower. Measured there
(2 shared cores without native bf16, random-weight full-size models; times are for 8 crops / one
4 s waveform): CLIP ViT-B/32 fp32 1.4 s, autocast 5.8 s, cast weights 6.0 s, min per-token cosine
to fp32 0.99999 (autocast) and 0.99995 (cast); wav2vec2-base fp32 1.7 s, autocast 3.7 s, cast
5.6 s, min cosine 0.99985 (autocast) and 0.99986 (cast). Without AMX/AVX512-BF16, bf16 is ~2-4x
slower than fp32, which is why ``"auto"`` means fp32 on such CPUs. Outputs are always returned as
float32; ``tests/test_precision.py`` checks cosine >= 0.999.

``"int8"`` is dynamic quantization of the encoders' ``nn.Linear`` layers (Jacob et al.,
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference",
CVPR 2018, sec. 2; dynamic: the activations' scale is taken from each call's own range): weights
are stored as int8 with one scale per output channel, each call quantizes its input to 8 bits per
tensor, multiplies in int8 with int32 accumulation and returns float32. Convolutions, LayerNorm,
GroupNorm, softmax and GELU stay in fp32 (for wav2vec2 that is its convolutional front end and
positional convolution), and so does wav2vec2's ``feature_projection`` (the Linear after the
front end): its input has outliers that one scale per tensor cannot hold, and quantizing it alone
took the debug encoder's min token cosine on speech-like audio to 0.9897 (0.99998 without it), for
under 1% of the encoder's FLOPs. On CPUs with VNNI (``avx512_vnni``, ``avx_vnni``) an int8 dot product
does four multiply-adds per 32-bit lane where fp32 does one. The kernels are PyTorch's fbgemm /
x86 quantized engine, reached through ``torch.ao.quantization.quantize_dynamic``: deprecated in
favour of torchao since PyTorch 2.9 but still shipped; torchao's eager int8 path on CPU runs
``torch._int_mm``, which measured no faster than fp32 here, so it was not used. If a future
PyTorch drops the engine, :func:`int8_available` is false, ``"int8"`` is refused and ``"auto"``
falls back to fp32. Measured on a 2-core AMD EPYC (avx512_bf16, avx512_vnni, avx_vnni, no AMX;
load average 16-19 from other jobs, side by side in one process, full-size random-weight
encoders): CLIP ViT-B/32, 16 crops: fp32 12.7-13.3 s, int8 5.9-6.4 s (2.1x), min cosine to fp32
0.9996; wav2vec2-base, 4 windows of 4 s: fp32 15.3-16.0 s, int8 8.5-8.9 s (1.8x), min cosine
0.9987. ``"auto"`` picks int8 on CPUs that have VNNI but no native bf16, where it replaces fp32.
int8 features are keyed apart from fp32/bf16 ones in the feature cache
(:attr:`deepscan.extractors.Extractors.config` records ``"compute": "int8"``).
"""

from __future__ import annotations

import contextlib
import warnings
from functools import lru_cache

import torch

__all__ = [
    "PRECISIONS", "INT8", "cpu_flags", "cpu_has_native_bf16", "cpu_has_vnni", "int8_available",
    "resolve_precision", "precision_name", "autocast_context", "casts_bf16_weights", "prepare_model",
    "quantize_linear_int8",
]

PRECISIONS = ("auto", "fp32", "bf16", "int8")
CPUINFO = "/proc/cpuinfo"
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
VNNI_CPU_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
INT8 = torch.qint8  # the compute "dtype" that stands for int8 dynamic quantization of Linear layers
INT8_ENGINES = ("x86", "fbgemm")  # PyTorch's quantized CPU engines with VNNI kernels, best first


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from the ``flags`` line of ``/proc/cpuinfo`` (empty elsewhere).

    Returns
    -------
    frozenset of str
    """
    try:
        with open(CPUINFO, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16).

    Reads the ``flags`` line of ``/proc/cpuinfo`` (Linux); elsewhere falls back to
    ``torch.backends.cpu.get_cpu_capability()`` reporting ``"AVX512_BF16"`` or ``"AMX"``.

    Returns
    -------
    bool
    """
    flags = cpu_flags()
    if flags:
        return any(flag in flags for flag in BF16_CPU_FLAGS)
    capability = torch.backends.cpu.get_cpu_capability().upper()
    return "BF16" in capability or "AMX" in capability


@lru_cache(maxsize=1)
def cpu_has_vnni() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8).

    Returns
    -------
    bool
        From ``/proc/cpuinfo``; False where it cannot be read.
    """
    return any(flag in cpu_flags() for flag in VNNI_CPU_FLAGS)


def _int8_engine() -> str | None:
    engines = torch.backends.quantized.supported_engines
    return next((engine for engine in INT8_ENGINES if engine in engines), None)


@lru_cache(maxsize=1)
def int8_available() -> bool:
    """Whether this PyTorch can run int8 dynamic quantized Linear layers on the CPU.

    Converts and runs a tiny ``nn.Linear`` once, so a PyTorch that dropped the engine or the API
    answers False instead of failing mid-scan.

    Returns
    -------
    bool
    """
    if _int8_engine() is None:
        return False
    try:
        probe = quantize_linear_int8(torch.nn.Sequential(torch.nn.Linear(8, 4)))
        with torch.inference_mode():
            out = probe(torch.ones(2, 8))
        return out.shape == (2, 4) and out.dtype == torch.float32 and bool(torch.isfinite(out).all())
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


def _device_type(device: str | torch.device) -> str:
    return torch.device(device).type


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> torch.dtype:
    """Map a precision name to the compute dtype for a device.

    Parameters
    ----------
    precision : str
        ``"fp32"``, ``"bf16"``, ``"int8"`` or ``"auto"``: bf16 on CUDA devices that support it and
        on CPUs with AMX-BF16 or AVX512-BF16; on other CPUs int8 where they have VNNI and PyTorch
        has the int8 engine (:func:`int8_available`); fp32 otherwise.
    device : str or torch.device
        Where the encoders run (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).

    Returns
    -------
    torch.dtype
        ``torch.float32``, ``torch.bfloat16`` or :data:`INT8` (``torch.qint8``).

    Raises
    ------
    ValueError
        If ``precision`` is not one of :data:`PRECISIONS`; ``"bf16"`` is asked for on a device
        type that autocast cannot run in bf16 (e.g. ``"mps"`` on old PyTorch); or ``"int8"`` on a
        device other than the CPU or with a PyTorch without the int8 engine.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    kind = _device_type(device)
    if precision == "fp32":
        return torch.float32
    if precision == "auto":
        if kind == "cuda":
            return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
        if kind != "cpu":
            return torch.float32
        if cpu_has_native_bf16():
            return torch.bfloat16
        return INT8 if cpu_has_vnni() and int8_available() else torch.float32
    if precision == "int8":
        if kind != "cpu":
            raise ValueError(f"int8 runs on the CPU only, not on {kind!r}; use --precision bf16 or fp32")
        if not int8_available():
            raise ValueError("this PyTorch has no int8 quantized engine (x86/fbgemm); use --precision fp32")
        return INT8
    if not torch.amp.is_autocast_available(kind):
        raise ValueError(f"bf16 autocast is not available on device type {kind!r}; use --precision fp32")
    return torch.bfloat16


def precision_name(dtype: torch.dtype) -> str:
    """The precision name of a compute dtype: ``"fp32"``, ``"bf16"`` or ``"int8"``.

    Parameters
    ----------
    dtype : torch.dtype
        From :func:`resolve_precision`.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For any other dtype.
    """
    names = {torch.float32: "fp32", torch.bfloat16: "bf16", INT8: "int8"}
    if dtype not in names:
        raise ValueError(f"unsupported compute dtype {dtype}")
    return names[dtype]


def casts_bf16_weights(dtype: torch.dtype, device: str | torch.device = "cpu") -> bool:
    """Whether bf16 encoders get their weights cast to bf16 once instead of running under autocast.

    On CPUs with native bf16 (AMX-BF16, AVX512-BF16) autocast re-casts every fp32 weight at every
    call; casting once was faster (issue 16: CLIP ViT-B/32 batch 64, 0.51 s against 0.74 s on
    AMX; here, AVX512-BF16 without AMX: 1.74x fp32 against 0.77x for autocast on 8 crops, and
    1.44x against 1.12x for wav2vec2 on 2 windows) and halves the weights' memory. Elsewhere (bf16
    emulated, or CUDA, not measured) autocast stays.

    Parameters
    ----------
    dtype : torch.dtype
        From :func:`resolve_precision`.
    device : str or torch.device
        Where the encoders run.

    Returns
    -------
    bool
    """
    return dtype == torch.bfloat16 and _device_type(device) == "cpu" and cpu_has_native_bf16()


def autocast_context(dtype: torch.dtype, device: str | torch.device = "cpu", weights_dtype: torch.dtype | None = None):
    """A context in which the encoders compute in ``dtype``.

    Parameters
    ----------
    dtype : torch.dtype
        From :func:`resolve_precision`.
    device : str or torch.device
        Where the encoders run.
    weights_dtype : torch.dtype, optional
        The dtype of the model's weights; bf16 weights (cast once by :func:`prepare_model`)
        compute in bf16 without autocast.

    Returns
    -------
    contextlib.AbstractContextManager
        ``torch.autocast(device_type, dtype=torch.bfloat16)`` for bf16 with fp32 weights; a no-op
        for fp32, for bf16 weights and for int8 (whose Linear layers were converted by
        :func:`prepare_model`; the rest runs in fp32).

    Raises
    ------
    ValueError
        If ``dtype`` is not ``torch.float32``, ``torch.bfloat16`` or :data:`INT8`.
    """
    if dtype in (torch.float32, INT8) or (dtype == torch.bfloat16 and weights_dtype == torch.bfloat16):
        return contextlib.nullcontext()
    if dtype != torch.bfloat16:
        raise ValueError(f"unsupported compute dtype {dtype}; expected torch.float32, torch.bfloat16 or torch.qint8")
    return torch.autocast(_device_type(device), dtype=torch.bfloat16)


def quantize_linear_int8(model: torch.nn.Module, keep_fp32: tuple[str, ...] = ()) -> torch.nn.Module:
    """Replace the ``nn.Linear`` layers of ``model`` in place by int8 dynamic quantized ones.

    Weights are quantized symmetrically per output channel; activations per tensor at each call.

    Parameters
    ----------
    model : torch.nn.Module
        An fp32 model on the CPU, in ``eval()`` mode.
    keep_fp32 : tuple of str
        Linear layers whose qualified name contains one of these stay fp32 (e.g. wav2vec2's
        ``feature_projection``, whose input has outliers that one scale per tensor cannot hold).

    Returns
    -------
    torch.nn.Module
        ``model`` itself, converted.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    engine = _int8_engine()
    if engine is not None and torch.backends.quantized.engine != engine:
        torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        # torch.ao.quantization and quantized tensors are deprecated in favour of torchao (see the
        # module docstring for why they are still used); the conversion itself is unchanged.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, message=".*quantiz.*deprecated.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        names = {name for name, module in model.named_modules()
                 if isinstance(module, torch.nn.Linear) and not any(key in name for key in keep_fp32)}
        if not names:
            return model
        return quantize_dynamic(model, dict.fromkeys(names, per_channel_dynamic_qconfig), inplace=True)


def prepare_model(model: torch.nn.Module, dtype: torch.dtype, keep_fp32: tuple[str, ...] = ()) -> torch.nn.Module:
    """Put an encoder's weights in the form its compute dtype needs (in place).

    Parameters
    ----------
    model : torch.nn.Module
        fp32, ``eval()``, on its device.
    dtype : torch.dtype
        From :func:`resolve_precision`. :data:`INT8` converts the Linear layers
        (:func:`quantize_linear_int8`); bf16 casts every weight and buffer to bf16 where
        :func:`casts_bf16_weights` says so (CPUs with native bf16), else leaves the model for
        autocast; fp32 leaves it as it is.
    keep_fp32 : tuple of str
        For int8: names of Linear layers to leave in fp32 (see :func:`quantize_linear_int8`).

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    ValueError
        If ``dtype`` is :data:`INT8` and the model is not on the CPU.
    """
    if dtype == INT8:
        if any(p.device.type != "cpu" for p in model.parameters()):
            raise ValueError("int8 encoders run on the CPU only")
        return quantize_linear_int8(model, keep_fp32)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if casts_bf16_weights(dtype, device):
        return model.to(torch.bfloat16)
    return model


def weights_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of a model's first floating point parameter (float32 when it has none).

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.dtype
    """
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
