"""Cost and harvest check of :mod:`deepscan.experts.provenance`.

Run ``python -m bench.provenance [DIR]`` from the repository root (DIR defaults to
``../shared/harvest/image``, which holds ``MANIFEST.tsv`` and ``real/`` and ``fake/``). For every
file listed in the manifest and present on disk it times

- ``read_provenance(path, watermark=False)``: metadata walk, XMP, EXIF and the C2PA check;
- the watermark decoder alone, on the already decoded pixels (what the scanner pays when it hands
  its frame over), for images of 256x256 to 4096x4096 pixels;

then reports the median and 95th percentile per file, and how many files of each label the cue
flags (p_fake not None), by which source and with which reason. It writes nothing; it prints a
markdown snippet for BENCHMARKS.md. The first call (importing c2pa-python, building the trust
context) is timed separately.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from deepscan.experts import provenance as prov
from deepscan.experts import watermark as wm

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "harvest" / "image"


def _pct(values, q):
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    manifest = args.root / "MANIFEST.tsv"
    if not manifest.exists():
        print(f"no {manifest}: nothing to measure", file=sys.stderr)
        return 1
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t")]
    files = [(args.root / r["label"] / r["name"], r["label"], r.get("system", "")) for r in rows]
    files = [f for f in files if f[0].exists()]

    t0 = time.perf_counter()
    prov.read_provenance(files[0][0], watermark=False)
    first_ms = (time.perf_counter() - t0) * 1000

    meta_s, wm_s = [], []
    flagged: dict[str, list] = defaultdict(list)
    sources: Counter = Counter()
    counts = Counter(label for _, label, _ in files)
    wm_matches = []
    closest: dict[tuple[str, str], tuple[int, str]] = {}
    for path, label, system in files:
        t = time.perf_counter()
        p = prov.read_provenance(path, watermark=False)
        meta_s.append(time.perf_counter() - t)
        p_fake, reason = prov.cue(p)
        if p_fake is not None:
            flagged[label].append((path.name, system, reason))
            sources[(label, prov.prov_column(p))] += 1
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
        except Exception:
            continue
        if wm.size_refusal(*rgb.shape[:2]) is None:
            t = time.perf_counter()
            match, _ = wm.detect(rgb)
            wm_s.append((time.perf_counter() - t, rgb.shape[0] * rgb.shape[1]))
            if match is not None:
                wm_matches.append((label, path.name, match.scheme, match.bits_matched))
            for convention in wm.CONVENTIONS:  # closest misses, to show the margin (not timed)
                scores = wm.block_scores(rgb, convention)
                for scheme in wm.SCHEMES:
                    agree = int(np.sum(wm.decode_bits(scores, scheme.n_bits) == np.asarray(scheme.bits)))
                    key = (label, scheme.name)
                    if agree > closest.get(key, (0, ""))[0]:
                        closest[key] = (agree, path.name)

    per_mp = [s / (px / 1e6) for s, px in wm_s]
    print(f"## Provenance ({len(files)} files of {args.root}: {counts['real']} real, {counts['fake']} fake)\n")
    print("Command: `python -m bench.provenance` (one process, one thread).\n")
    print(f"- first call (import c2pa-python, trust context): {first_ms:.0f} ms")
    print(f"- read_provenance, metadata + C2PA, no watermark: median {_pct([*meta_s], 50):.2f} ms,"
          f" p95 {_pct(meta_s, 95):.2f} ms, max {max(meta_s) * 1000:.1f} ms per file")
    if wm_s:
        print(f"- watermark decoder on decoded pixels ({len(wm_s)} images of 256x256 or more): median "
              f"{_pct([s for s, _ in wm_s], 50):.1f} ms per image, {statistics.median(per_mp) * 1000:.1f} ms per"
              f" megapixel (3 marks x 4 conventions)")
    print(f"- watermark matches: {len(wm_matches)} {wm_matches if wm_matches else ''}")
    for scheme in wm.SCHEMES:
        near = ", ".join(f"{label} {closest[(label, scheme.name)][0]}" for label in ("real", "fake")
                         if (label, scheme.name) in closest)
        if near:
            print(f"  - {scheme.name}: most bits agreeing on an unmarked file {near} of {scheme.n_bits}"
                  f" (a match needs {scheme.n_bits - scheme.max_errors})")
    for label in ("fake", "real"):
        print(f"- flagged {label}: {len(flagged[label])} of {counts[label]}"
              + (f" ({', '.join(f'{n} {src}' for (lab, src), n in sorted(sources.items()) if lab == label)})"
                 if flagged[label] else ""))
        for system, n in Counter(system for _, system, _ in flagged[label]).most_common():
            print(f"  - {system}: {n}")
    examples = {}
    for name, system, reason in flagged["fake"]:
        examples.setdefault(reason.split(" (")[0], (name, reason))
    print("\nReasons seen (one example each):\n")
    for name, reason in examples.values():
        print(f"- `{name}`: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
