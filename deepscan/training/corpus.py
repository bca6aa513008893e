"""A labelled synthetic corpus: real talking-face clips and file-level pseudo-fakes made from them.

``deepscan synth OUT --clips N --seed S`` calls :func:`make_corpus`. The layout::

    OUT/real/real_0007.mp4
    OUT/fake/<kind>/<kind>_0007.mp4      kind in PSEUDO_FAKE_KINDS, 0007 = the source clip
    OUT/manifest.csv                     path,label,kind,split,source

Half of the clips (rounded up) are real, each from its own seed (voice, utterance, face,
background); the other half are fakes spread evenly over the kinds, each made from one real clip
(its *source*) and written to a file:

- ``av_offset``: the whole clip re-rendered with its audio shifted 0.2-1.0 s either way, filled
  with the same speaker's neighbouring speech (``deepscan.synth.make_clip(audio_offset_s=...)``);
- ``swapped_audio``: the source's frames with the voice of another real clip of the same split;
- ``blended_face``: the source's frames self-blended in every frame, using the face boxes synth
  knows it drew (Shiohara & Yamasaki, CVPR 2022);
- ``vocoded_audio``: the source's frames with its voice resynthesised by Griffin-Lim.

Splits (train/val/test, about 70/15/15) are drawn per source clip, so a real clip, the fakes made
from it and the donors of its swapped audio always share a split: no voice or face leaks across.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .. import synth
from ..media import SAMPLE_RATE, Window
from .pseudofakes import PSEUDO_FAKE_KINDS, PseudoFakeConfig, self_blend, vocoded_audio

__all__ = ["CORPUS_SIZE", "CORPUS_FPS", "CORPUS_DURATION_S", "SPLIT_FRACTIONS", "MANIFEST_COLUMNS", "make_corpus", "assign_splits"]

# 160x160 keeps 60 clips within seconds on two cores while the face (~100 px tall) stays well above
# the Haar cascade's 24 px minimum; the face-crop stage resizes to 224 anyway.
CORPUS_SIZE = (160, 160)
CORPUS_FPS = 25  # a common camera rate; the pipeline samples 8 fps from it by timestamp
CORPUS_DURATION_S = 4.0  # one analysis window
SPLIT_FRACTIONS = (("train", 0.70), ("val", 0.15), ("test", 0.15))
MANIFEST_COLUMNS = ("path", "label", "kind", "split", "source")


def assign_splits(n_sources: int, rng: np.random.Generator) -> list[str]:
    """Assign each source clip to ``"train"``, ``"val"`` or ``"test"`` (about 70/15/15).

    Parameters
    ----------
    n_sources : int
        Number of source clips.
    rng : numpy.random.Generator
        Shuffles which sources go where.

    Returns
    -------
    list of str
        ``(n_sources,)`` split names; with 3 or more sources every split gets at least one.
    """
    counts = [int(round(fraction * n_sources)) for _, fraction in SPLIT_FRACTIONS[1:]]
    if n_sources >= 3:
        counts = [max(c, 1) for c in counts]
    n_train = max(n_sources - sum(counts), 0)
    names = ["train"] * n_train + ["val"] * counts[0] + ["test"] * counts[1]
    names = names[:n_sources]
    return [names[i] for i in rng.permutation(n_sources)]


def make_corpus(
    out_dir: str | os.PathLike,
    clips: int = 60,
    seed: int = 1,
    duration_s: float = CORPUS_DURATION_S,
    size: tuple[int, int] = CORPUS_SIZE,
    fps: float = CORPUS_FPS,
    config: PseudoFakeConfig | None = None,
    progress=None,
) -> Path:
    """Write a labelled corpus of real synthetic clips and pseudo-fakes, with a manifest.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder to write into (created; existing files of the same names are overwritten).
    clips : int
        Total number of clips, real and fake; ``ceil(clips / 2)`` are real.
    seed : int
        Seed of the whole corpus; the same seed gives the same arrays.
    duration_s : float
        Length of each clip in seconds.
    size : (int, int)
        Frame ``(width, height)`` in pixels.
    fps : float
        Frame rate in frames per second.
    config : PseudoFakeConfig, optional
        Ranges of the pseudo-fakes' parameters (offsets, blend, vocoder).
    progress : callable, optional
        Called as ``progress(done, total)`` after each clip is written.

    Returns
    -------
    Path
        ``out_dir/manifest.csv`` with columns ``path,label,kind,split,source``: ``path`` relative
        to ``out_dir`` with ``/`` separators, ``label`` ``"real"``/``"fake"``, ``kind`` ``"real"``
        or one of :data:`~deepscan.training.pseudofakes.PSEUDO_FAKE_KINDS`, ``split``
        ``"train"``/``"val"``/``"test"``, ``source`` the index of the real clip it comes from.

    Raises
    ------
    ValueError
        If ``clips < 1`` or a size, rate or duration is invalid.
    """
    if not isinstance(clips, (int, np.integer)) or clips < 1:
        raise ValueError(f"clips must be a positive integer, got {clips!r}")
    cfg = config or PseudoFakeConfig()
    out = Path(out_dir)
    (out / "real").mkdir(parents=True, exist_ok=True)
    for kind in PSEUDO_FAKE_KINDS:
        (out / "fake" / kind).mkdir(parents=True, exist_ok=True)

    n_real = clips - clips // 2
    n_fake = clips // 2
    root = np.random.default_rng([int(seed), 0xC0])
    source_seeds = [int(s) for s in root.integers(0, 2**31 - 1, n_real)]
    splits = assign_splits(n_real, root)
    # sources ordered by split, so that walking the kinds round-robin gives every split every kind
    order = [i for name, _ in SPLIT_FRACTIONS for i in range(n_real) if splits[i] == name]
    fake_of = {order[j]: PSEUDO_FAKE_KINDS[j % len(PSEUDO_FAKE_KINDS)] for j in range(n_fake)}

    rows = []
    done = 0

    def write(rel: str, frames, waveform, label: str, kind: str, source: int) -> None:
        nonlocal done
        synth.encode_clip(out / rel, frames, fps, waveform, SAMPLE_RATE)
        rows.append({"path": rel, "label": label, "kind": kind, "split": splits[source], "source": source})
        done += 1
        if progress is not None:
            progress(done, clips)

    for i in range(n_real):
        clip = synth.make_clip(duration_s, size, fps, SAMPLE_RATE, source_seeds[i])
        write(f"real/real_{i:04d}.mp4", clip.frames, clip.waveform, "real", "real", i)
        kind = fake_of.get(i)
        if kind is None:
            continue
        rng = np.random.default_rng([int(seed), i, 0xFA])
        rel = f"fake/{kind}/{kind}_{i:04d}.mp4"
        if kind == "av_offset":
            offset = rng.uniform(*cfg.offset_range_s) * rng.choice([-1.0, 1.0])
            shifted = synth.make_clip(duration_s, size, fps, SAMPLE_RATE, source_seeds[i], audio_offset_s=offset)
            write(rel, shifted.frames, shifted.waveform, "fake", kind, i)
        elif kind == "swapped_audio":
            same = [j for j in order if splits[j] == splits[i] and j != i]
            # a voice from another real clip of the same split; a fresh voice if the split has one clip
            donor_seed = source_seeds[same[int(rng.integers(len(same)))]] if same else int(rng.integers(2**31 - 1))
            donor, _ = synth.speech_like(duration_s, SAMPLE_RATE, donor_seed)
            write(rel, clip.frames, donor, "fake", kind, i)
        elif kind == "blended_face":
            frames, _ = self_blend(clip.frames, clip.boxes, rng, cfg)
            write(rel, frames, clip.waveform, "fake", kind, i)
        else:  # vocoded_audio
            window = Window(0, 0.0, duration_s, waveform=clip.waveform, has_audio=True)
            write(rel, clip.frames, vocoded_audio(window, cfg).waveform, "fake", kind, i)

    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return manifest
