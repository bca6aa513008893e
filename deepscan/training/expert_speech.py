"""Train the learned spoofed-speech expert (cue ``synthetic_speech``) on the harvest.

``train(data_root, output, seed)`` reads ``<data_root>/audio/MANIFEST.tsv`` (the harvest layout of
../shared/harvest: files at ``<data_root>/audio/<label>/<name>``; files not on disk are skipped, so
the 250-file starter subset trains as well as the full 617 files that ``refetch.sh`` extracts),
and:

1. decodes every file once with :func:`deepscan.media.load_waveform` (the scanner's decoding:
   16 kHz mono float32), after checking its SHA-256 against the manifest;
2. makes ``copies`` format-augmented versions of each file's first 8 s
   (:func:`deepscan.training.audio_augment.augment`: MP3/AAC/Opus round trips at random bitrates
   and rates, resampling through 8-48 kHz, gain, silence padding; one random generator per file
   and copy, seeded from the seed and the file's SHA-256, so the result does not depend on which
   other files are present), so that container, codec, rate and level carry no label;
3. computes the window features of :mod:`deepscan.experts.speech_learned` for every 4 s window
   of every version (cached on disk by file hash, version and seed);
4. measures, before the final fit, **leave-generator-out** metrics: for every fake ``system``,
   a head trained without any file of the source pages (``group``) that hold that system scores
   the system's files; its AUC against the reals' out-of-fold scores (leave-one-page-out) and
   against the held-out pages' own reals; plus the overall out-of-fold AUC with every page held
   out in turn, on the files as they are and on a format-scrambled copy of them (a further
   random format round trip), each with a bootstrap interval resampling pages
   (:func:`deepscan.evaluation.bootstrap_metric`);
5. fits the head on every file and writes the safetensors file with its provenance (training
   files by SHA-256 with their licences, augmentations, seed, metrics, time taken).

Files whose SHA-256 appears in ../shared/realworld (:data:`EXCLUDED_SHA256`: two VALL-E samples
that the harvest shares with the yardstick) are never trained on.

Deterministic for a seed on one machine: features are computed in a fixed order, the head is
fitted full-batch with a seeded initialisation in one thread.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deepscan.cache import file_sha256
from deepscan.labelled import LabelledFile, read_manifest
from deepscan.metrics import auc, bootstrap_metric
from deepscan.experts.speech_learned import (
    CUE,
    SpeechExpert,
    SpeechExpertConfig,
    SpeechHead,
    save_speech_expert,
    window_of,
    windows_of,
)
from deepscan.media import SAMPLE_RATE, load_waveform
from deepscan.training.audio_augment import AugmentConfig, augment

__all__ = ["EXCLUDED_SHA256", "TrainConfig", "harvest_audio", "fit_head", "train"]

# Harvest files that are byte-identical to files of ../shared/realworld (the evaluation yardstick):
# hsp-audio_2_Table11_naturalspeech2_valle_reference_{1,2}.wav = realworld ns2_valle_case{1,2}_valle.wav
EXCLUDED_SHA256 = frozenset({
    "e78dbcc6c285fe88f1010b4396ac4afb9b0fa26d17fb559ff2e90385bf7f8830",
    "09226dcd183e33deaf14d0d5ac1ad8c9787201f8ed0f06561ed43849de3bf32a",
})
TRAIN_SECONDS = 8.0  # s of each file used for training versions (the first two 4 s windows)
SCRAMBLE_SEED = 99  # seed offset of the format-scrambled copy used to test held-out files


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (recorded in the weights' metadata).

    Attributes
    ----------
    model : SpeechExpertConfig
        Feature blocks and head width.
    copies : int
        Format-augmented versions per file, besides the original.
    steps : int
        Full-batch Adam steps of the head.
    lr : float
        Adam learning rate.
    weight_decay : float
        L2 penalty on the head's weights (not biases), added to the loss.
    augment : AugmentConfig
        The format augmentation.
    """

    model: SpeechExpertConfig = SpeechExpertConfig()
    copies: int = 4
    steps: int = 400
    lr: float = 0.01
    weight_decay: float = 1e-2
    augment: AugmentConfig = AugmentConfig()

    def as_dict(self) -> dict:
        """JSON-able form."""
        return {"model": self.model.as_dict(), "copies": self.copies, "steps": self.steps, "lr": self.lr,
                "weight_decay": self.weight_decay, "augment": self.augment.as_dict(),
                "train_seconds_per_file": TRAIN_SECONDS}


@dataclass
class _File:
    """One training file: its manifest row, licence, decoded audio and features per version."""

    row: LabelledFile
    license: str
    wave: np.ndarray | None  # not kept (None): the features are what training needs
    versions: list  # float32 (n_windows, D) per version: [original first 8 s, copy 1, ..., copy k]
    full: np.ndarray  # float32 (n_windows, D): every scanner window of the whole file
    scrambled: np.ndarray  # float32 (n_windows, D): windows of a further format round trip
    cached: bool = False  # features read from the on-disk cache


def _manifest_path(data_root: Path) -> Path:
    for candidate in (data_root / "audio" / "MANIFEST.tsv", data_root / "MANIFEST.tsv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no audio/MANIFEST.tsv under {data_root}")


def harvest_audio(data_root: str | os.PathLike, check_hashes: bool = True) -> tuple[list[LabelledFile], dict, list]:
    """The usable audio files of a harvest folder.

    Parameters
    ----------
    data_root : str or os.PathLike
        The harvest root holding ``audio/MANIFEST.tsv`` (or the ``audio`` folder itself).
    check_hashes : bool
        Read every file and keep it only when its SHA-256 matches the manifest.

    Returns
    -------
    files : list of LabelledFile
        Present, hash-checked, not in :data:`EXCLUDED_SHA256`, in manifest order.
    licences : dict
        SHA-256 -> the manifest's ``license`` text.
    skipped : list of (str, str)
        ``(name, reason)`` for rows left out: missing, hash mismatch, shared with realworld.

    Raises
    ------
    FileNotFoundError
        No manifest under ``data_root``.
    """
    manifest = _manifest_path(Path(data_root))
    rows = read_manifest(manifest)
    with open(manifest, newline="", encoding="utf-8") as f:
        licences = {r["sha256"].strip(): (r.get("license") or "").strip() for r in csv.DictReader(f, delimiter="\t")}
    files, skipped = [], []
    for row in rows:
        if row.kind != "audio":
            continue
        if row.sha256 in EXCLUDED_SHA256:
            skipped.append((row.path.name, "byte-identical to a ../shared/realworld file"))
        elif not row.exists:
            skipped.append((row.path.name, "not on disk"))
        elif check_hashes and file_sha256(row.path) != row.sha256:
            skipped.append((row.path.name, "SHA-256 differs from the manifest"))
        else:
            files.append(row)
    return files, licences, skipped


def _file_seed(seed: int, sha256: str, copy: int) -> list[int]:
    return [int(seed), int(copy), int(sha256[:15], 16)]


def _cache_dir(cache_dir) -> Path:
    """``cache_dir``, else ``<deepscan cache>/train_speech`` (``$DEEPSCAN_CACHE_DIR`` or ``~/.cache/deepscan``)."""
    if cache_dir is not None:
        return Path(cache_dir)
    from deepscan.cache import default_cache_dir

    return default_cache_dir() / "train_speech"


def _features(expert: SpeechExpert, waves: list[np.ndarray]) -> np.ndarray:
    """Features of every scanner window of one or more waveforms, stacked."""
    windows = np.stack([window_of(w) for wave in waves for w in windows_of(wave)])
    return expert.features(windows)


def _prepare(files, licences, config: TrainConfig, expert: SpeechExpert, seed: int, cache: Path, log) -> list[_File]:
    """Decode, augment and featurise every file, through the on-disk cache."""
    # features depend on the feature blocks, the augmentation and the seed, not on the head
    key = hashlib.sha256(json.dumps([list(config.model.features), config.copies, config.augment.as_dict(), TRAIN_SECONDS,
                                     seed, "v1"], sort_keys=True).encode()).hexdigest()[:16]
    folder = cache / key
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    t0 = time.monotonic()
    for n, row in enumerate(files):
        path = folder / f"{row.sha256}.npz"
        wave = None
        cached = path.is_file()
        if cached:
            with np.load(path) as z:
                versions = [z[f"v{k}"] for k in range(config.copies + 1)]
                full, scrambled = z["full"], z["scrambled"]
        else:
            wave = load_waveform(row.path)
            head = wave[: int(TRAIN_SECONDS * SAMPLE_RATE)]
            copies = [augment(head, np.random.default_rng(_file_seed(seed, row.sha256, k)), config.augment)
                      for k in range(1, config.copies + 1)]
            versions = [_features(expert, [v]) for v in [head] + copies]
            full = _features(expert, [wave])
            scr = augment(wave, np.random.default_rng(_file_seed(seed + SCRAMBLE_SEED, row.sha256, 0)), config.augment)
            scrambled = _features(expert, [scr])
            tmp = path.with_suffix(".part.npz")
            np.savez(tmp, full=full, scrambled=scrambled, **{f"v{k}": v for k, v in enumerate(versions)})
            os.replace(tmp, path)
        out.append(_File(row, licences.get(row.sha256, ""), None, versions, full, scrambled, cached))
        if (n + 1) % 50 == 0:
            log(f"  features: {n + 1}/{len(files)} files, {time.monotonic() - t0:.0f} s")
    return out


def fit_head(x: np.ndarray, y: np.ndarray, weight: np.ndarray, config: TrainConfig, seed: int = 0) -> SpeechHead:
    """Fit the head (standardisation + MLP or logistic regression) full-batch with Adam.

    Parameters
    ----------
    x : np.ndarray
        float32 ``(N, D)`` window features.
    y : np.ndarray
        ``(N,)`` 1 = fake, 0 = real.
    weight : np.ndarray
        float ``(N,)`` sample weights (normalised inside to a mean of 1).
    config : TrainConfig
        Head width, steps, learning rate, weight decay.
    seed : int
        Seed of the initialisation.

    Returns
    -------
    SpeechHead
        The fitted head, in eval mode.

    Raises
    ------
    ValueError
        ``x`` is empty, or only one class is present.

    Notes
    -----
    Runs in one torch thread (restored afterwards), so that the result is the same bit for bit
    whatever the machine's thread count.
    """
    y = np.asarray(y, np.float32)
    if len(x) == 0 or y.min() == y.max():
        raise ValueError("the head needs windows of both classes")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same result on every machine, and no spinning on a busy CPU
    try:
        return _fit_head(x, y, weight, config, seed)
    finally:
        torch.set_num_threads(threads)


def _fit_head(x, y, weight, config: TrainConfig, seed: int) -> SpeechHead:
    torch.manual_seed(seed)
    head = SpeechHead(config.model.input_dim, config.model.hidden)
    xt = torch.as_tensor(np.asarray(x, np.float32))
    mean, scale = xt.mean(0), xt.std(0)
    scale = torch.where(scale > 1e-6, scale, torch.ones_like(scale))
    head.mean.copy_(mean)
    head.scale.copy_(scale)
    yt = torch.as_tensor(y)
    w = torch.as_tensor(np.asarray(weight, np.float32))
    w = w / w.mean()
    penalised = [p for n, p in head.named_parameters() if n.endswith("weight")]
    opt = torch.optim.Adam(head.parameters(), lr=config.lr)
    head.train()
    for _ in range(config.steps):
        logit, _ = head(xt)
        loss = (F.binary_cross_entropy_with_logits(logit, yt, reduction="none") * w).mean()
        loss = loss + config.weight_decay * sum((p ** 2).sum() for p in penalised)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval()


def _training_set(items: list[_File], idx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of every version of the chosen files; each file weighs 1, classes weigh equally."""
    xs, ys, ws = [], [], []
    for i in idx:
        f = items[i]
        rows = np.concatenate(f.versions)
        xs.append(rows)
        ys.append(np.full(len(rows), f.row.label))
        ws.append(np.full(len(rows), 1.0 / len(rows)))
    x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    for c in (0, 1):  # balance the classes
        w[y == c] *= 0.5 * w.sum() / max(w[y == c].sum(), 1e-12)
    return x, y, w


@torch.inference_mode()
def _file_scores(head: SpeechHead, feats: np.ndarray) -> float:
    """Mean P(fake) over a file's windows."""
    logit, _ = head(torch.as_tensor(feats))
    return float(torch.sigmoid(logit.double()).mean())


def _interval(labels, scores, groups, seed) -> dict:
    value, lo, hi = bootstrap_metric(labels, scores, groups, rounds=1000, seed=seed)
    return {"auc": round(value, 4), "ci95": [round(lo, 4), round(hi, 4)], "n_real": int((np.asarray(labels) == 0).sum()),
            "n_fake": int((np.asarray(labels) == 1).sum())}


def _evaluate(items: list[_File], config: TrainConfig, seed: int, log) -> dict:
    """Leave-page-out and leave-generator-out metrics (see the module docstring)."""
    labels = np.array([f.row.label for f in items])
    groups = np.array([f.row.group for f in items])
    systems = np.array([f.row.system for f in items])
    pages = sorted(set(groups))
    system_pages = {s: frozenset(groups[(systems == s) & (labels == 1)]) for s in sorted(set(systems[labels == 1]))}
    fold_sets = sorted({frozenset([g]) for g in pages} | set(system_pages.values()), key=lambda s: (len(s), sorted(s)))
    preds: dict = {}
    t0 = time.monotonic()
    for n, held in enumerate(fold_sets):
        test = np.isin(groups, list(held))
        train_idx = np.flatnonzero(~test)
        if len(train_idx) == 0 or labels[train_idx].min() == labels[train_idx].max():
            continue  # nothing left to train on: that system gets no leave-generator-out number
        head = fit_head(*_training_set(items, train_idx), config, seed)
        preds[held] = {int(i): (_file_scores(head, items[i].full), _file_scores(head, items[i].scrambled))
                       for i in np.flatnonzero(test)}
        if (n + 1) % 5 == 0:
            log(f"  folds: {n + 1}/{len(fold_sets)}, {time.monotonic() - t0:.0f} s")
    oof = np.full(len(items), np.nan)
    oof_scr = np.full(len(items), np.nan)
    for g in pages:
        for i, (p, q) in preds.get(frozenset([g]), {}).items():
            oof[i], oof_scr[i] = p, q
    ok = ~np.isnan(oof)
    result = {
        "protocol": ("leave-one-page-out: each source page (manifest 'group') held out in turn, the head trained "
                     "on the other pages; file score = mean P(fake) over its 4 s windows; bootstrap over pages"),
        "overall": _interval(labels[ok], oof[ok], groups[ok], seed),
        "overall_format_scrambled": _interval(labels[ok], oof_scr[ok], groups[ok], seed),
        "per_page": {},
        "per_system": {},
    }
    for g in pages:
        m = (groups == g) & ok
        if m.any() and labels[m].min() != labels[m].max():
            result["per_page"][g] = {"auc": round(auc(labels[m], oof[m]), 4), "n_real": int((labels[m] == 0).sum()),
                                     "n_fake": int((labels[m] == 1).sum())}
    reals = np.flatnonzero((labels == 0) & ok)
    for s, held in system_pages.items():
        if held not in preds:
            continue
        p = preds[held]
        fakes = [p[i][0] for i in p if systems[i] == s and labels[i] == 1]
        page_reals = [p[i][0] for i in p if labels[i] == 0]
        y_all = np.r_[np.ones(len(fakes)), np.zeros(len(reals))]
        entry = {"held_out_pages": sorted(held), "n_fake": len(fakes),
                 "auc_vs_all_reals": round(auc(y_all, np.r_[fakes, oof[reals]]), 4),
                 "mean_p_fake": round(float(np.mean(fakes)), 4)}
        if page_reals:
            entry["auc_vs_page_reals"] = round(auc(np.r_[np.ones(len(fakes)), np.zeros(len(page_reals))],
                                                   np.r_[fakes, page_reals]), 4)
        result["per_system"][s] = entry
    per = [v["auc_vs_all_reals"] for v in result["per_system"].values()]
    if per:
        result["per_system_summary"] = {"mean_auc": round(float(np.mean(per)), 4),
                                        "median_auc": round(float(np.median(per)), 4),
                                        "systems_below_0.85": int(np.sum(np.array(per) < 0.85)),
                                        "systems": len(per)}
    result["oof_scores"] = {items[i].row.sha256: [round(float(oof[i]), 5), round(float(oof_scr[i]), 5)]
                            for i in np.flatnonzero(ok)}
    return result


def train(data_root, output, seed: int = 0, quiet: bool = False, *, config: TrainConfig | None = None,
          cache_dir=None, evaluate: bool = True, aasist_path=None) -> dict:
    """Train the ``synthetic_speech`` expert on a harvest folder and write its safetensors file.

    Parameters
    ----------
    data_root : str or os.PathLike
        Harvest root holding ``audio/MANIFEST.tsv`` and ``audio/<label>/<name>`` files
        (../shared/harvest, or a folder that ``refetch.sh`` filled, with the manifest copied in).
    output : str or os.PathLike
        The safetensors file to write.
    seed : int
        Seed of the augmentation draws and the head's initialisation.
    quiet : bool
        No progress lines on stderr.
    config : TrainConfig, optional
        Hyper-parameters; default :class:`TrainConfig()` (what the shipped weights used).
    cache_dir : str or os.PathLike, optional
        Where window features are cached (default ``$DEEPSCAN_CACHE_DIR/train_speech``, else
        ``~/.cache/deepscan/train_speech``), keyed by file hash, feature blocks, augmentation
        and seed.
    evaluate : bool
        Run the leave-generator-out folds before the final fit (most of the time taken).
    aasist_path : str or os.PathLike, optional
        ``AASIST.pth``, needed when the config's features include ``"aasist"``.

    Returns
    -------
    dict
        ``output`` (path), ``files`` (count), ``skipped``, ``seconds``, ``leave_generator_out``
        (the metrics, when ``evaluate``), ``metadata`` (what the file records).

    Raises
    ------
    FileNotFoundError
        No manifest under ``data_root``.
    ValueError
        Fewer than two files, or a single class, on disk.
    deepscan.errors.ModelLoadingError
        AASIST features are configured and ``aasist_path`` does not load.
    """
    import sys

    config = config or TrainConfig()
    t0 = time.monotonic()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def log(msg):
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        files, licences, skipped = harvest_audio(data_root)
        labels = [f.label for f in files]
        if len(files) < 2 or min(labels) == max(labels):
            raise ValueError(f"{data_root}: need real and fake audio files on disk, found {len(files)}")
        log(f"{CUE}: {len(files)} files ({sum(labels)} fake), {len(skipped)} skipped")
        aasist = None
        if config.model.needs_aasist:
            from deepscan.experts.aasist import load_aasist

            if aasist_path is None:
                from deepscan.weights import model_path

                aasist_path = model_path("aasist")
            aasist = load_aasist(aasist_path, "AASIST")
        featuriser = SpeechExpert(config.model, aasist)
        items = _prepare(files, licences, config, featuriser, seed, _cache_dir(cache_dir), log)
        log(f"  features ready, {time.monotonic() - t0:.0f} s")
        metrics = _evaluate(items, config, seed, log) if evaluate else None
        final = fit_head(*_training_set(items, range(len(items))), config, seed)
        expert = SpeechExpert(config.model, aasist)
        expert.head.load_state_dict(final.state_dict())
        seconds = time.monotonic() - t0
        training_files = [{"sha256": f.row.sha256, "name": f.row.path.name, "label": "fake" if f.row.label else "real",
                           "system": f.row.system, "group": f.row.group, "license": f.license} for f in items]
        lgo = None
        if metrics is not None:
            lgo = {k: v for k, v in metrics.items() if k != "oof_scores"}
        metadata = {
            "name": CUE,
            "trained_on": "deepscan harvest audio (../shared/harvest/audio/MANIFEST.tsv): public demo pages of "
                          "TTS, zero-shot TTS, voice-conversion, vocoder and codec systems and the real "
                          "recordings beside them",
            "training_files": training_files,
            "excluded": [{"name": n, "reason": r} for n, r in skipped],
            "licences": sorted({f.license for f in items}),
            "augmentation": config.augment.as_dict(),
            "train_config": config.as_dict(),
            "seed": int(seed),
            "leave_generator_out": lgo,
            "training_seconds": round(seconds, 1),
            "files_with_cached_features": int(sum(f.cached for f in items)),
            "decoding": "deepscan.media.load_waveform: 16 kHz mono float32",
            "torch": torch.__version__,
        }
        if aasist is not None:
            metadata["needs"] = {"aasist": "AASIST.pth (deepscan.weights.model_path('aasist'))"}
        path = save_speech_expert(expert, output, metadata)
        log(f"{CUE}: wrote {path} in {seconds:.0f} s")
        return {"output": str(path), "files": len(items), "skipped": skipped, "seconds": round(seconds, 1),
                "leave_generator_out": metrics, "metadata": metadata}
    finally:
        torch.set_num_threads(threads)
