"""``python -m bench.profile``: where the encoders' time goes, by operator kind and by module, per precision.

Full-size random-initialised CLIP ViT-B/32 (a batch of face crops) and wav2vec2-base (a batch of
4 s windows), built as ``bench/__main__.py``'s ``build_encoders`` does, run at fp32, bf16 (autocast
and weights cast once) and int8 under

- ``torch.profiler``: self CPU time of every operator, summed into kinds: matmul/Linear (fp32/bf16
  ``addmm``/``mm``/``bmm``/``linear`` and int8 ``quantized::linear_dynamic``), attention (the fused
  ``scaled_dot_product_attention`` kernels, softmax), normalisation (LayerNorm, GroupNorm), activation
  (GELU, QuickGELU's sigmoid and multiply), convolution, data movement (copies, dtype casts,
  ``contiguous``, ``cat``), and the rest;
- forward hooks on the modules that matter (CLIP: patch embedding, attention, MLP, layer norms;
  wav2vec2: the convolutional feature encoder, feature projection, positional convolution, attention,
  feed-forward, layer norms): inclusive wall time per module kind.

Each variant is run once to warm up, then once profiled and once timed with hooks. Results go to
BENCHMARKS.md between ``<!-- bench:profile -->`` markers with the CPU model, its flags and the
load average.
"""

from __future__ import annotations

import argparse
import sys
import copy
import json
import os
import time
from collections import defaultdict

import numpy as np
import torch

from bench.sections import markers, write_section

BEGIN, END = markers("profile")

KINDS = (  # (kind, substrings of operator names), first match wins
    ("matmul", ("addmm", "aten::mm", "bmm", "aten::linear", "aten::matmul", "linear_dynamic", "baddbmm",
                "mkldnn_linear", "_weight_int8pack")),
    ("attention", ("scaled_dot_product", "softmax", "flash_attention")),
    ("norm", ("layer_norm", "group_norm", "native_layer_norm", "native_group_norm", "batch_norm")),
    ("activation", ("gelu", "sigmoid", "silu", "relu", "tanh")),
    ("convolution", ("conv", "_weight_norm", "weight_norm")),
    ("data movement", ("copy_", "aten::to", "_to_copy", "contiguous", "aten::cat", "clone", "permute",
                       "transpose", "reshape", "view", "expand", "pad", "quantize_per_tensor", "empty", "stack")),
)
MODULES = {
    "clip": {"CLIPVisionEmbeddings": "patch embedding", "CLIPAttention": "attention (qkv, sdpa, out)",
             "CLIPMLP": "MLP (fc1, QuickGELU, fc2)", "LayerNorm": "LayerNorm"},
    "wav2vec2": {"Wav2Vec2FeatureEncoder": "conv feature encoder", "Wav2Vec2FeatureProjection": "feature projection",
                 "Wav2Vec2PositionalConvEmbedding": "positional conv (weight norm)",
                 "Wav2Vec2Attention": "attention (qkv, sdpa, out)", "Wav2Vec2SdpaAttention": "attention (qkv, sdpa, out)",
                 "Wav2Vec2FeedForward": "feed-forward", "LayerNorm": "LayerNorm (transformer)"},
}


def kind_of(name: str) -> str:
    for kind, keys in KINDS:
        if any(k in name for k in keys):
            return kind
    return "other"


def op_breakdown(fn) -> dict:
    """Self CPU time per operator kind (seconds) of one call, and the top operators."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    kinds, ops = defaultdict(float), []
    for event in prof.key_averages():
        self_s = event.self_cpu_time_total / 1e6
        kinds[kind_of(event.key)] += self_s
        ops.append((event.key, self_s))
    ops.sort(key=lambda kv: -kv[1])
    return {"kinds_s": {k: round(v, 3) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "total_self_s": round(sum(kinds.values()), 3), "top_ops": [(k, round(v, 3)) for k, v in ops[:8]]}


def module_breakdown(model, fn, names: dict) -> dict:
    """Inclusive wall time per module kind (seconds) of one call, by forward hooks."""
    spent, starts, handles = defaultdict(float), {}, []
    for module in model.modules():
        label = names.get(type(module).__name__)
        if label is None:
            continue

        def pre(mod, _args, label=label):
            starts[id(mod)] = time.perf_counter()

        def post(mod, _args, _out, label=label):
            spent[label] += time.perf_counter() - starts.pop(id(mod))

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    start = time.perf_counter()
    try:
        fn()
    finally:
        for h in handles:
            h.remove()
    total = time.perf_counter() - start
    # LayerNorms inside CLIPAttention/CLIPMLP do not exist; CLIP's layer norms are siblings, so no double count
    return {"total_s": round(total, 3), "modules_s": {k: round(v, 3) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}}


def run(args) -> dict:
    from transformers import CLIPVisionModelWithProjection, Wav2Vec2Model

    from bench.__main__ import build_encoders, machine_info
    from deepscan.extractors.audio import INT8_KEEP_FP32
    from deepscan.precision import quantize_linear_int8

    folder, _ = build_encoders()
    report = {"command": " ".join(["python -m bench.profile", *args.argv]),
              "machine": {**machine_info(), "cpu_cores": len(os.sched_getaffinity(0)),
                          "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
              "load_before": [round(v, 2) for v in os.getloadavg()], "encoders": {}}
    t = np.arange(64_000) / 16_000
    rng = np.random.default_rng(0)
    waves = np.stack([(np.sin(2 * np.pi * (150 + 30 * i) * t) * (1 + np.sin(2 * np.pi * 4 * t))
                       + 0.03 * rng.standard_normal(t.shape[0])).astype(np.float32) for i in range(args.windows)])
    waves = (waves - waves.mean(1, keepdims=True)) / waves.std(1, keepdims=True)
    cases = {
        "clip": (CLIPVisionModelWithProjection, "image", lambda m, x: m(pixel_values=x).image_embeds,
                 torch.randn(args.crops, 3, 224, 224), ()),
        "wav2vec2": (Wav2Vec2Model, "audio", lambda m, x: m(x).last_hidden_state, torch.from_numpy(waves),
                     INT8_KEEP_FP32),
    }
    for name, (cls, sub, call, x, keep) in cases.items():
        model = cls.from_pretrained(folder / sub).eval()
        variants = {"fp32": (model, x, None), "bf16_autocast": (model, x, torch.bfloat16),
                    "bf16_cast_weights": (copy.deepcopy(model).to(torch.bfloat16), x.to(torch.bfloat16), None),
                    "int8": (quantize_linear_int8(copy.deepcopy(model), keep), x, None)}
        if args.precisions:
            variants = {k: v for k, v in variants.items() if k in args.precisions}
        out = {"batch": list(x.shape)}
        for label, (m, inp, autocast) in variants.items():
            def fn(m=m, inp=inp, autocast=autocast):
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast is not None):
                    return call(m, inp)

            fn()  # warm-up
            out[label] = {"ops": op_breakdown(fn), "modules": module_breakdown(m, fn, MODULES[name])}
            print(name, label, json.dumps(out[label]["modules"]), flush=True)
        report["encoders"][name] = out
        del variants, model
    report["load_after"] = [round(v, 2) for v in os.getloadavg()]
    return report


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [BEGIN, "## Encoder profile (`python -m bench.profile`)", "",
             f"Command: `{report['command']}` — CPU: {m['cpu_model']}, flags {', '.join(m['cpu_flags'])}; "
             f"{m['cpu_cores']} cores, {m['torch_threads']} torch threads; torch {m['torch']}; load average before "
             f"{report['load_before']}, after {report['load_after']} (other jobs: absolute times are noisy, "
             "shares within one column are what to read).", ""]
    for name, enc in report["encoders"].items():
        variants = [k for k in enc if k != "batch"]
        lines += [f"**{name}**, batch {'x'.join(map(str, enc['batch']))}: share of self CPU time by operator kind "
                  "(torch.profiler), then inclusive wall time by module (hooks)", "",
                  "| | " + " | ".join(variants) + " |", "|---|" + "---:|" * len(variants)]
        kinds = sorted({k for v in variants for k in enc[v]["ops"]["kinds_s"]})
        for kind in kinds:
            cells = []
            for v in variants:
                ops = enc[v]["ops"]
                share = ops["kinds_s"].get(kind, 0.0) / max(ops["total_self_s"], 1e-9)
                cells.append(f"{100 * share:.0f}%")
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        lines.append("| **forward wall s** | " + " | ".join(str(enc[v]["modules"]["total_s"]) for v in variants) + " |")
        mods = sorted({k for v in variants for k in enc[v]["modules"]["modules_s"]})
        for mod in mods:
            cells = []
            for v in variants:
                md = enc[v]["modules"]
                sec = md["modules_s"].get(mod)
                cells.append("" if sec is None else f"{sec} s ({100 * sec / max(md['total_s'], 1e-9):.0f}%)")
            lines.append(f"| {mod} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["<details><summary>JSON (with the top operators of each run)</summary>", "", "```json", json.dumps(report),
              "```", "", "</details>", END]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 crops, 2 windows")
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", nargs="*", help="subset of fp32 bf16_autocast bf16_cast_weights int8")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    args.argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--no-write"]
    if args.quick:
        args.crops, args.windows = 8, 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    report = run(args)
    if not args.no_write:
        write_section("profile", markdown(report))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
