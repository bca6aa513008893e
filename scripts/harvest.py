#!/usr/bin/env python3
"""Re-extract the image harvest from snapshot mirrors of public repositories (data files only).

The manifest (data/harvest/image/MANIFEST.tsv) lists every file by repository, commit, path and
SHA-256. This script reads the blobs out of bare git mirrors with `git cat-file`, checks each
SHA-256 and writes the files to OUT/<kind>/<label>/<name>. It runs nothing from the mirrors.

    python3 scripts/harvest.py repos   MANIFEST            # repositories to fetch (github:OWNER/NAME)
    python3 scripts/harvest.py extract MANIFEST --mirrors /work/.mirror --out /work/harvest-ext
    python3 scripts/harvest.py stats   MANIFEST            # counts per label, family, group, format
    python3 scripts/harvest.py probe   FILE...             # width, height, frames, format of files
                                                           # (audio files: sample rate, channels, duration, codec)

Mirrors are looked up as MIRRORS/OWNER+NAME/repo (the bare git dir `fetch` usually produces),
MIRRORS/OWNER+NAME/repo/.git (the layout `fetch` produced for some repositories), or MIRRORS/OWNER+NAME
(or its .git) when that folder is itself the git dir. Files whose SHA-256 is in the reserved list
(default ../shared/harvest/reserved.sha256 or /work/shared/harvest/reserved.sha256 when present) are
refused. Exit status: 0 when every listed file is present with the right hash; 1 when some are
missing, mismatched or reserved; 2 on usage errors. Python standard library only.
"""
from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

REQUIRED = ("name", "kind", "label", "repo", "commit", "path_in_repo", "sha256")
DEFAULT_RESERVED = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "harvest" / "reserved.sha256",
    Path("/work/shared/harvest/reserved.sha256"),
)


# ---------------------------------------------------------------- manifest
def read_manifest(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            sys.exit(f"manifest lacks column(s): {', '.join(missing)}")
        rows = list(reader)
    names = collections.Counter(r["name"] for r in rows)
    dup = [n for n, c in names.items() if c > 1]
    if dup:
        sys.exit(f"manifest has duplicate names, e.g. {dup[:3]}")
    for r in rows:
        if "/" in r["name"] or r["name"] in (".", "..") or "/" in r["label"] or "/" in r["kind"]:
            sys.exit(f"unsafe name/label/kind in row {r['name']!r}")
    return rows


def read_reserved(path: str | None) -> tuple[set[str], str | None]:
    cands = [Path(path)] if path else [p for p in DEFAULT_RESERVED if p.is_file()]
    for p in cands:
        if p.is_file():
            shas = set()
            for line in p.read_text().splitlines():
                tok = line.strip().split()
                if tok and len(tok[0]) == 64:
                    shas.add(tok[0].lower())
            return shas, str(p)
    if path:
        sys.exit(f"reserved list not found: {path}")
    return set(), None


def mirror_dir(root: str, repo: str) -> str | None:
    base = Path(root) / repo.replace("/", "+")
    for cand in (base / "repo" / ".git", base / "repo", base / ".git", base):
        if cand.is_dir() and ((cand / "objects").is_dir() or (cand / "HEAD").is_file()):
            return str(cand)
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- image headers (stdlib)
def probe_bytes(data: bytes) -> tuple[str, int, int, int]:
    """(format, width, height, frames) from the file header; width 0 when unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        w, h = struct.unpack(">II", data[16:24])
        frames = 1
        pos = 8
        while pos + 8 <= len(data):
            ln, typ = struct.unpack(">I4s", data[pos:pos + 8])
            if typ == b"acTL":
                frames = struct.unpack(">I", data[pos + 8:pos + 12])[0]
                break
            if typ == b"IDAT":
                break
            pos += 12 + ln
        return "PNG", w, h, frames
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                pos += 1
                continue
            marker = data[pos + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                pos += 1 if marker == 0xFF else 2
                continue
            ln = struct.unpack(">H", data[pos + 2:pos + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", data[pos + 5:pos + 9])
                return "JPEG", w, h, 1
            pos += 2 + ln
        return "JPEG", 0, 0, 1
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunk = data[12:16]
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return "WEBP", w & 0x3FFF, h & 0x3FFF, 1
        if chunk == b"VP8L":
            b = data[21:25]
            w = 1 + (((b[1] & 0x3F) << 8) | b[0])
            h = 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
            return "WEBP", w, h, 1
        if chunk == b"VP8X":
            flags = data[20]
            w = 1 + int.from_bytes(data[24:27], "little")
            h = 1 + int.from_bytes(data[27:30], "little")
            frames = 1
            if flags & 0x02:  # animation: count ANMF chunks
                frames, pos = 0, 12
                while pos + 8 <= len(data):
                    typ = data[pos:pos + 4]
                    ln = struct.unpack("<I", data[pos + 4:pos + 8])[0]
                    frames += typ == b"ANMF"
                    pos += 8 + ln + (ln & 1)
            return "WEBP", w, h, max(frames, 1)
        return "WEBP", 0, 0, 1
    if data[:6] in (b"GIF87a", b"GIF89a"):
        w, h = struct.unpack("<HH", data[6:10])
        frames = _gif_frames(data)
        return "GIF", w, h, frames
    return "?", 0, 0, 0


def _gif_frames(data: bytes) -> int:
    try:
        pos = 13
        flags = data[10]
        if flags & 0x80:
            pos += 3 * (2 ** ((flags & 7) + 1))
        frames = 0
        while pos < len(data):
            b = data[pos]
            if b == 0x3B:
                break
            if b == 0x21:
                pos += 2
                while data[pos]:
                    pos += data[pos] + 1
                pos += 1
            elif b == 0x2C:
                frames += 1
                lflags = data[pos + 9]
                pos += 10
                if lflags & 0x80:
                    pos += 3 * (2 ** ((lflags & 7) + 1))
                pos += 1
                while data[pos]:
                    pos += data[pos] + 1
                pos += 1
            else:
                break
        return max(frames, 1)
    except IndexError:
        return max(frames, 1) if "frames" in locals() else 1


# ---------------------------------------------------------------- audio headers
AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac")


def probe_audio(path: str) -> tuple[int, int, float, str]:
    """(sample_rate, channels, duration_s, codec) of an audio file; PyAV when importable, else `wave` (PCM WAV only)."""
    try:
        import av  # optional: the project's venv carries PyAV
    except ImportError:
        av = None
    if av is not None:
        try:
            with av.open(path) as c:
                s = c.streams.audio[0]
                sr = s.codec_context.sample_rate
                n = sum(f.samples for f in c.decode(s))
                return sr, s.codec_context.channels, round(n / sr, 3) if sr else 0.0, \
                    f"{s.codec_context.name}/{c.format.name.split(',')[0]}"
        except Exception:  # noqa: BLE001 - unreadable file: report '?'
            return 0, 0, 0.0, "?"
    import wave
    try:
        with wave.open(path, "rb") as w:
            sr, ch, n, sw = w.getframerate(), w.getnchannels(), w.getnframes(), w.getsampwidth()
            return sr, ch, round(n / sr, 3) if sr else 0.0, f"pcm_s{8 * sw}le/wav" if sw > 1 else "pcm_u8/wav"
    except Exception:  # noqa: BLE001 - not PCM WAV and no PyAV
        return 0, 0, 0.0, "?"


# ---------------------------------------------------------------- subcommands
def cmd_repos(args) -> int:
    rows = read_manifest(args.manifest)
    for repo in sorted({r["repo"] for r in rows}):
        print(f"github:{repo}")
    return 0


def cmd_extract(args) -> int:
    rows = read_manifest(args.manifest)
    reserved, rpath = read_reserved(args.reserved)
    if rpath:
        print(f"reserved list: {rpath} ({len(reserved)} hashes)", file=sys.stderr)
    out = Path(args.out)
    counts = collections.Counter()
    per_label = collections.Counter()
    no_mirror: set[str] = set()
    gitdirs: dict[str, str | None] = {}
    for r in rows:
        sha = r["sha256"].lower()
        dest = out / r["kind"] / r["label"] / r["name"]
        if sha in reserved:
            counts["reserved"] += 1
            print(f"refused (reserved SHA-256): {r['name']}", file=sys.stderr)
            if dest.is_file():
                dest.unlink()
            continue
        if dest.is_file() and sha256_file(dest) == sha:
            counts["kept"] += 1
            per_label[r["label"]] += 1
            continue
        if r["repo"] not in gitdirs:
            gitdirs[r["repo"]] = mirror_dir(args.mirrors, r["repo"])
        gd = gitdirs[r["repo"]]
        if gd is None:
            no_mirror.add(r["repo"])
            counts["missing"] += 1
            continue
        proc = subprocess.run(
            ["git", f"--git-dir={gd}", "cat-file", "blob", f"{r['commit']}:{r['path_in_repo']}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if proc.returncode != 0:
            print(f"not in the mirror: {r['repo']}@{r['commit']}:{r['path_in_repo']}", file=sys.stderr)
            counts["missing"] += 1
            continue
        if hashlib.sha256(proc.stdout).hexdigest() != sha:
            print(f"SHA-256 mismatch: {r['name']}", file=sys.stderr)
            counts["mismatched"] += 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(proc.stdout)
        os.replace(tmp, dest)
        counts["extracted"] += 1
        per_label[r["label"]] += 1
    for repo in sorted(no_mirror):
        print(f"no mirror of {repo}: fetch github:{repo}", file=sys.stderr)
    print(f"{counts['extracted']} extracted, {counts['kept']} already there, {counts['missing']} missing, "
          f"{counts['mismatched']} mismatched, {counts['reserved']} refused as reserved")
    print("present per label: " + ", ".join(f"{k} {v}" for k, v in sorted(per_label.items())))
    bad = counts["missing"] + counts["mismatched"] + counts["reserved"]
    return 1 if bad else 0


def cmd_stats(args) -> int:
    rows = read_manifest(args.manifest)
    total_bytes = sum(int(r.get("bytes") or 0) for r in rows)
    print(f"{len(rows)} files, {total_bytes / 1e6:.1f} MB, {len({r['repo'] for r in rows})} repositories")

    def table(title, key, limit=None):
        c = collections.Counter(key(r) for r in rows)
        print(f"\n## {title} ({len(c)})")
        for k, v in c.most_common(limit):
            print(f"{v:6d}  {k}")

    table("label", lambda r: r["label"])
    if rows and "family" in rows[0]:
        fam = collections.defaultdict(collections.Counter)
        for r in rows:
            fam[r["family"]][r["label"]] += 1
        print(f"\n## family ({len(fam)}; fake families: "
              f"{sum(1 for f in fam.values() if f['fake'])})")
        for k, c in sorted(fam.items(), key=lambda kv: -sum(kv[1].values())):
            print(f"{sum(c.values()):6d}  {k}  ({', '.join(f'{a} {b}' for a, b in sorted(c.items()))})")
    if rows and "group" in rows[0]:
        grp = collections.defaultdict(collections.Counter)
        for r in rows:
            grp[r["group"]][r["label"]] += 1
        print(f"\n## group ({len(grp)})")
        for k, c in sorted(grp.items(), key=lambda kv: -sum(kv[1].values())):
            print(f"{sum(c.values()):6d}  {k}  ({', '.join(f'{a} {b}' for a, b in sorted(c.items()))})")
    if rows and "format" in rows[0]:
        table("format x label", lambda r: f"{r['format']} {r['label']}")
    if rows and "face" in rows[0]:
        table("face x label", lambda r: f"face={r['face']} {r['label']}")
    if rows and "codec" in rows[0]:
        table("codec x label", lambda r: f"{r['codec']} {r['label']}")
    if rows and "sample_rate" in rows[0]:
        table("sample_rate x label", lambda r: f"{r['sample_rate']} {r['label']}")
    if rows and "language" in rows[0]:
        table("language x label", lambda r: f"{r['language']} {r['label']}")
    if rows and "year" in rows[0]:
        table("year of fake systems", lambda r: r["year"] if r["label"] == "fake" else "(real)")
    if rows and "system" in rows[0] and "format" not in rows[0]:
        print(f"\n## systems: {len({r['system'] for r in rows if r['label'] == 'fake'})} fake, "
              f"{len({r['system'] for r in rows if r['label'] == 'real'})} real")
    return 0


def cmd_probe(args) -> int:
    for f in args.files:
        if f.lower().endswith(AUDIO_EXT):
            sr, ch, dur, codec = probe_audio(f)
            data = Path(f).read_bytes()
            print(f"{f}\t{codec}\t{sr}\t{ch}\t{dur}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}")
            continue
        data = Path(f).read_bytes()
        fmt, w, h, n = probe_bytes(data)
        print(f"{f}\t{fmt}\t{w}\t{h}\t{n}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("repos", help="print the repositories to fetch")
    p.add_argument("manifest")
    p.set_defaults(fn=cmd_repos)
    p = sub.add_parser("extract", help="extract files from mirrors, SHA-256 checked")
    p.add_argument("manifest")
    p.add_argument("--mirrors", default="/work/.mirror")
    p.add_argument("--out", required=True)
    p.add_argument("--reserved", default=None, help="file of SHA-256 to refuse (first token per line)")
    p.set_defaults(fn=cmd_extract)
    p = sub.add_parser("stats", help="counts per label, family, group, format")
    p.add_argument("manifest")
    p.set_defaults(fn=cmd_stats)
    p = sub.add_parser("probe", help="format, size and SHA-256 of image or audio files")
    p.add_argument("files", nargs="+")
    p.set_defaults(fn=cmd_probe)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
