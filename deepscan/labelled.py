"""Labelled media: which files are real and which fake, with their kinds, methods, sources and pairs.

:func:`read_manifest` reads a ``MANIFEST.tsv`` (``../shared/harvest/<kind>/MANIFEST.tsv`` or
``../shared/realworld/MANIFEST.tsv``) into :class:`LabelledFile` rows with their paths, kinds,
labels, methods, systems and the group / pair that ties files of one source together;
:func:`read_folder` reads ``real/`` and ``fake/`` folders; :func:`read_labelled` either. Subsets are
groups of pairs named by pair-id prefixes: a data set deepscan knows (:data:`KNOWN_DATA_SETS`, e.g.
the clean comparisons of ../shared/realworld) brings its own; a user names theirs with
:func:`parse_subsets` (``deepscan evaluate --subset NAME=PREFIX``). Training and evaluation both
read labelled media through this module.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

__all__ = ["LabelledFile", "LabelledSet", "KnownDataSet", "KNOWN_DATA_SETS", "REALWORLD", "MANIFEST_NAME",
           "read_manifest", "read_folder", "read_labelled", "parse_subsets", "pair_subsets", "source_of"]

MANIFEST_NAME = "MANIFEST.tsv"  # the labelled-media manifest in a folder (../shared/realworld, a harvest kind)


@dataclass(frozen=True)
class KnownDataSet:
    """What deepscan knows about a published labelled data set: how to recognise it, its named subsets.

    Attributes
    ----------
    name : str
        The data set's name.
    columns : frozenset of str
        Manifest columns that, all present, mark a manifest as this data set's.
    subsets : dict
        Subset name -> pair-id prefixes: the pairs (files of one source, real and fake) it holds.
    """

    name: str
    columns: frozenset
    subsets: dict = field(default_factory=dict)

    def matches(self, columns: Iterable[str], pairs: Iterable[str]) -> bool:
        """Whether a manifest with these columns and pair ids is this data set.

        Every column must be present and every subset must name at least one of the pairs, so that
        a manifest that merely shares the layout gets no subsets that mean nothing for it.
        """
        pairs = set(pairs)
        return self.columns <= set(columns) and all(
            any(p.startswith(prefix) for p in pairs for prefix in prefixes) for prefixes in self.subsets.values())


# ../shared/realworld (its README): the clean comparisons have the same container, codec and sample
# rate on both sides, so a cue cannot separate them by format alone. Pair ids: wf<N> (WaveFake), ns1_<N>
# (NaturalSpeech 1), fs2_<N> (the FastSpeech 2 page).


REALWORLD = KnownDataSet(
    "realworld",
    frozenset({"name", "kind", "label", "method", "repo", "commit", "path_in_repo", "sha256", "license", "note"}),
    {"WaveFake (clean)": ("wf",), "NaturalSpeech 1 (clean)": ("ns1_",), "FastSpeech 2 page (clean)": ("fs2_",)},
)
KNOWN_DATA_SETS = (REALWORLD,)


@dataclass(frozen=True)
class LabelledFile:
    """One labelled media file.

    Attributes
    ----------
    path : Path
        Where the file is on disk (it may be absent: :attr:`exists`).
    kind : str
        ``"audio"``, ``"image"`` or ``"video"``.
    label : int
        1 for fake, 0 for real.
    method : str
        The generator or real source as the manifest names it.
    system : str
        The generator's system name (harvest), else the method.
    group : str
        The source page (harvest ``group``) or the pair id (realworld); files of one group share a source.
    pair : str
        The pair id: a real file and the fakes made from the same source share it.
    sha256 : str
        The file's SHA-256 as the manifest gives it.
    licence : str
        The manifest's ``license`` column (empty when absent).
    """

    path: Path
    kind: str
    label: int
    method: str
    system: str
    group: str
    pair: str
    sha256: str
    licence: str = ""

    @property
    def exists(self) -> bool:
        """Whether the file is on disk."""
        return self.path.is_file()


def _pair_from_note(note: str) -> str | None:
    if note.startswith("pair="):
        return note.split(";", 1)[0][len("pair="):].strip()
    return None


def read_manifest(manifest: str | os.PathLike, root: str | os.PathLike | None = None) -> list[LabelledFile]:
    """Read a manifest of labelled media (tab-separated, header row).

    Parameters
    ----------
    manifest : str or os.PathLike
        A ``MANIFEST.tsv`` with at least ``name``, ``kind``, ``label`` (``real``/``fake``) and
        ``method`` or ``system``; optional ``group``, ``pair``, ``sha256``, ``note`` (``pair=ID; ...``).
    root : str or os.PathLike, optional
        Folder holding ``<kind>/<label>/<name>`` (realworld) or ``<label>/<name>`` (a harvest kind);
        default: the manifest's folder. The layout is detected per file.

    Returns
    -------
    list of LabelledFile
        In manifest order; files missing on disk are kept (see :attr:`LabelledFile.exists`).

    Raises
    ------
    ValueError
        If a row has a label other than ``real`` or ``fake``, or required columns are missing.
    """
    manifest = Path(manifest)
    root = Path(root) if root is not None else manifest.parent
    rows = []
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"name", "kind", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{manifest}: missing columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            if None in row.values() or not (row.get("name") or "").strip():
                raise ValueError(f"{manifest}: line {line}: fewer fields than the header, or no name")
            label = row["label"].strip()
            if label not in ("real", "fake"):
                raise ValueError(f"{manifest}: {row['name']}: label {label!r} is neither real nor fake")
            note = row.get("note") or ""
            pair = (row.get("pair") or "").strip() or _pair_from_note(note) or row["name"]
            group = (row.get("group") or "").strip() or pair
            method = (row.get("method") or row.get("system") or "").strip()
            system = (row.get("system") or "").strip() or method
            candidates = [root / row["kind"] / label / row["name"], root / label / row["name"]]
            path = next((c for c in candidates if c.is_file()), candidates[0] if (root / row["kind"]).is_dir()
                        else candidates[1])
            rows.append(LabelledFile(path, row["kind"], int(label == "fake"), method, system, group, pair,
                                     (row.get("sha256") or "").strip(), (row.get("license") or "").strip()))
    return rows


@dataclass
class LabelledSet:
    """Labelled media to evaluate on, and where they came from.

    Attributes
    ----------
    files : list of LabelledFile
        The files, in manifest (or walk) order.
    root : Path
        The folder the files are in.
    manifest : Path or None
        The ``MANIFEST.tsv`` read, ``None`` for ``real/`` and ``fake/`` folders.
    known : KnownDataSet or None
        The published data set the manifest was recognised as (:data:`KNOWN_DATA_SETS`).
    """

    files: list
    root: Path
    manifest: Path | None = None
    known: KnownDataSet | None = None

    @property
    def subsets(self) -> dict:
        """The known data set's subsets (name -> pair-id prefixes); empty when none."""
        return dict(self.known.subsets) if self.known else {}


def read_folder(root: str | os.PathLike) -> list[LabelledFile]:
    """Labelled files of a folder holding ``real/`` and ``fake/`` (walked recursively).

    A fake's method is its first sub-folder under ``fake/`` (``fake/lipsync/a.mp4`` -> ``"lipsync"``),
    else ``"fake"``; a real file's method is ``"real"``. The pair is the file-name stem less a leading
    ``real_``, ``fake_`` or ``<method>_`` (``real/real_0007.mp4`` and ``fake/swap/swap_0007.mp4`` share
    ``0007``), as :func:`source_of` names sources. The media kind is what the
    file's first bytes say (:func:`deepscan.media.sniff_kind`); :func:`evaluate_media` replaces it with
    the probed kind once the file is scanned (an animated WebP is a video).

    Parameters
    ----------
    root : str or os.PathLike

    Returns
    -------
    list of LabelledFile
        Reals first, then fakes, each in walk order.
    """
    from deepscan.errors import DeepscanError
    from deepscan.media import iter_media_files, sniff_kind

    root = Path(root)
    files = []
    for label in ("real", "fake"):
        folder = root / label
        for path in iter_media_files([folder], recursive=True, on_error=lambda p, e: None):
            rel = Path(path).relative_to(folder)
            method = "real" if label == "real" else (rel.parts[0] if len(rel.parts) > 1 else "fake")
            try:
                kind = sniff_kind(path) or "unknown"
            except DeepscanError:
                kind = "unknown"
            pair = source_of(Path(path), method)
            files.append(LabelledFile(Path(path), kind, int(label == "fake"), method, method, pair, pair, ""))
    return files


def read_labelled(data: str | os.PathLike) -> LabelledSet:
    """Read labelled media: a ``MANIFEST.tsv``, a folder holding one, or a folder with ``real/`` and ``fake/``.

    Parameters
    ----------
    data : str or os.PathLike
        The manifest (:func:`read_manifest`'s layout) or the folder.

    Returns
    -------
    LabelledSet
        With the published data set it is, when deepscan knows it (its subsets come with it).

    Raises
    ------
    ValueError
        When ``data`` is neither, the manifest cannot be read or is malformed, files it lists are
        missing, or real or fake files are missing altogether.
    """
    path = Path(data)
    manifest = path if path.is_file() else path / MANIFEST_NAME if (path / MANIFEST_NAME).is_file() else None
    known = None
    if manifest is not None:
        try:
            files = read_manifest(manifest)
            with open(manifest, newline="", encoding="utf-8") as f:
                columns = next(csv.reader(f, delimiter="\t"), [])
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise ValueError(f"{manifest}: cannot read the manifest ({error})") from error
        missing = [f for f in files if not f.exists]
        if missing:
            shown = ", ".join(str(f.path) for f in missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise ValueError(f"{manifest}: {len(missing)} of {len(files)} listed files are missing ({shown}); "
                             "files are looked for at <kind>/<label>/<name> or <label>/<name> beside the manifest")
        known = next((d for d in KNOWN_DATA_SETS if d.matches(columns, (f.pair for f in files))), None)
        root = manifest.parent
    elif path.is_dir() and (path / "real").is_dir() and (path / "fake").is_dir():
        files, root = read_folder(path), path
    else:
        raise ValueError(f"{path}: not labelled media: give a {MANIFEST_NAME} (columns name, kind, label, method; "
                         "files at <kind>/<label>/<name>), a folder holding one, or a folder with real/ and fake/")
    for label, name in ((0, "real"), (1, "fake")):
        if not any(f.label == label for f in files):
            raise ValueError(f"{manifest or path}: no {name} file: evaluation needs both real and fake media")
    return LabelledSet(files, root, manifest, known)


def parse_subsets(specs: Iterable[str]) -> dict:
    """Subsets named on the command line: ``NAME=PREFIX[,PREFIX...]`` (pair-id prefixes).

    Parameters
    ----------
    specs : iterable of str
        E.g. ``["WaveFake=wf", "LJSpeech TTS=ns1_,fs2_"]``.

    Returns
    -------
    dict
        Name -> tuple of prefixes, in the order given.

    Raises
    ------
    ValueError
        When a spec has no ``=``, an empty name, no prefix, or a name given twice.
    """
    subsets: dict = {}
    for spec in specs:
        name, sep, prefixes = spec.partition("=")
        name = name.strip()
        prefixes = tuple(p.strip() for p in prefixes.split(",") if p.strip())
        if not sep or not name or not prefixes:
            raise ValueError(f"subset {spec!r}: write NAME=PREFIX[,PREFIX...] (files whose pair id starts with a PREFIX)")
        if name in subsets:
            raise ValueError(f"subset {name!r} is named twice")
        subsets[name] = prefixes
    return subsets


def pair_subsets(subsets: dict) -> dict:
    """Subset predicates for :func:`score_table` from ``name -> pair-id prefixes``.

    Parameters
    ----------
    subsets : dict
        Name -> iterable of prefixes.

    Returns
    -------
    dict
        Name -> ``LabelledFile -> bool``: whether the file's pair starts with one of the prefixes.
    """
    return {name: (lambda f, p=tuple(prefixes): f.pair.startswith(p)) for name, prefixes in subsets.items()}


def source_of(path: Path, kind: str) -> str:
    """Source name of a file without a manifest ``source``: its stem less a ``real_``/``fake_``/``<kind>_`` prefix."""
    stem = Path(path).stem
    for prefix in (f"{kind}_", "real_", "fake_"):
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix):]
    return stem
