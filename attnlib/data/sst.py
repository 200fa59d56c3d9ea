"""The Stanford Sentiment Treebank: locate, verify, parse and tokenise SST2 / SST5.

The three PTB-tree files are pinned by sha256 and checked before any parsing, so a truncated,
corrupt or differently-built copy can never load silently. Sentences become
:class:`~attnlib.data.corpus.Corpus` objects over one vocabulary shared by train, dev and test.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnlib.data.corpus import Corpus, Dataset

PAD = "$PAD$"
"""The padding word; always vocabulary index 0."""

SST_URL = "https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip"
"""Canonical archive of the PTB-tree release (Socher et al. 2013)."""

ENV_VAR = "ATTNLIB_DATA_DIR"
"""Environment variable naming a folder that holds train.txt, dev.txt and test.txt."""

SPLITS = ("train", "dev", "test")
KINDS = {"SST2": 2, "SST5": 5}
"""Dataset kinds and their number of classes."""

DOWNLOAD_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class SSTFile:
    """What a pinned SST file must look like: its archive member, line count, size and sha256."""

    name: str
    member: str
    lines: int
    bytes: int
    sha256: str


SST_FILES: dict[str, SSTFile] = {
    "train": SSTFile("train.txt", "trees/train.txt", 8544, 2160058,
                     "e2f3f41b0b1e6d4dddc0effe3bfc2d27ed8928079aa9a03d652311614fc5feb7"),
    "dev": SSTFile("dev.txt", "trees/dev.txt", 1101, 280825,
                   "0e9336aed6e4730e19f58d00a77b3f0297efdb755f7b5e598c98a05e3f97ea40"),
    "test": SSTFile("test.txt", "trees/test.txt", 2210, 559614,
                    "6e54806dee95cf80cd918e7dfb3f6770f6df24bf826f289a4d1f709e1c8f6761"),
}
"""sha256 of the release's three PTB-tree files, by split."""

TRAIN_VARIANT_SHA256 = "3287e6df56acb2ccba2bc3ebb7a696c0daee8d2fa00988348bbf37796bc3739d"
"""sha256 of the circulating 9645-line train.txt (the 8544 training trees + the 1101 dev trees)."""
TRAIN_VARIANT_LINES = 9645

EXPECTED_SIZES: dict[str, dict[str, int]] = {
    "SST5": {"train": 8544, "dev": 1101, "test": 2210},
    "SST2": {"train": 6920, "dev": 872, "test": 1821},
}
"""Sentence counts per split after parsing: the published SST5 split sizes, and SST2 without the neutral sentences."""

_LABEL = re.compile(r"(\d+) ")
_TOKEN = re.compile(r"[^()]+")
_PUNCTUATION = re.compile(r"[^\w\s]")


class SSTDataError(ValueError):
    """The SST files are missing, differ from the pinned ones, or do not parse as expected."""


# --------------------------------------------------------------------------- locating the files


def shared_data_dir() -> Path:
    """``../shared/data/sst`` beside the project checkout, where the project keeps the pinned copy."""
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "sst").resolve()


def cache_data_dir() -> Path:
    """The per-user cache folder that downloads go into."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("attnlib")) / "sst"


def candidate_dirs(data_dir: str | Path | None = None) -> list[tuple[str, Path | None]]:
    """The places searched, in order, each with a description; None where a place is unset."""
    env = os.environ.get(ENV_VAR)
    return [
        ("argument data_dir", Path(data_dir).expanduser() if data_dir is not None else None),
        (f"${ENV_VAR}", Path(env).expanduser() if env else None),
        ("shared folder beside the project", shared_data_dir()),
        ("user cache", cache_data_dir()),
    ]


def missing_files(directory: Path) -> list[str]:
    """Names of the pinned files absent from ``directory``."""
    return [f.name for f in SST_FILES.values() if not (directory / f.name).is_file()]


def find_data_dir(data_dir: str | Path | None = None, *, download: bool = True,
                  downloader: Callable[[Path], None] | None = None) -> Path:
    """The first searched folder holding all three files; downloads into the cache if none does.

    ``downloader(dest)`` fetches and extracts the files into ``dest``; it defaults to
    :func:`download_sst` and exists so tests can replace it (no test touches the network).
    """
    places = candidate_dirs(data_dir)
    for _, path in places:
        if path is not None and not missing_files(path):
            return path
    if not download:
        raise SSTDataError(_not_found_message(places, "automatic download is disabled"))
    dest = cache_data_dir()
    try:
        (downloader or download_sst)(dest)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise SSTDataError(_not_found_message(places, f"download failed: {exc!r}")) from exc
    if missing_files(dest):
        raise SSTDataError(_not_found_message(places, f"the download left {', '.join(missing_files(dest))} missing"))
    verify_files(dest)
    return dest


def _not_found_message(places: Sequence[tuple[str, Path | None]], why: str) -> str:
    """Name every place looked in, the canonical source, the members and their pinned sha256."""
    lines = ["SST data not found: no folder holds all of train.txt, dev.txt and test.txt. Looked in:"]
    for label, path in places:
        if path is None:
            lines.append(f"  - {label}: (not set)")
        else:
            lines.append(f"  - {label}: {path} (missing: {', '.join(missing_files(path))})")
    lines.append(f"Could not fetch {SST_URL}: {why}.")
    lines.append(
        "To fix: download that archive, extract the members "
        + ", ".join(f.member for f in SST_FILES.values())
        + " into one folder (e.g. the user cache above), or point "
        + f"${ENV_VAR} at a folder holding them. Expected files:"
    )
    for f in SST_FILES.values():
        lines.append(f"  {f.name} (archive member {f.member}): sha256 {f.sha256}, {f.lines} lines, {f.bytes} bytes")
    return "\n".join(lines)


def download_sst(dest: Path, url: str = SST_URL, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download the canonical archive with a progress bar and extract the three members into ``dest``."""
    from tqdm import tqdm

    print(f"Downloading the Stanford Sentiment Treebank (Socher et al. 2013) from {url}\n"
          f"  into {dest}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "trainDevTestTrees_PTB.zip"
        with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="SST", file=sys.stderr) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
        dest.mkdir(parents=True, exist_ok=True)
        _extract_members(archive, dest)


def _extract_members(archive: Path, dest: Path) -> None:
    """Copy ``trees/{train,dev,test}.txt`` out of the archive, each written atomically."""
    with zipfile.ZipFile(archive) as zf:
        for f in SST_FILES.values():
            partial = dest / (f.name + ".part")
            with zf.open(f.member) as src, open(partial, "wb") as out:
                shutil.copyfileobj(src, out)
            partial.replace(dest / f.name)


# --------------------------------------------------------------------------- verifying the files


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _count_lines(path: Path) -> int:
    """Number of newline-terminated lines (plus a final unterminated one)."""
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def verify_files(directory: str | Path) -> None:
    """Check that each pinned file exists in ``directory`` and has the pinned sha256; never repair."""
    directory = Path(directory)
    for split, f in SST_FILES.items():
        path = directory / f.name
        if not path.is_file():
            raise SSTDataError(
                f"SST file {path} is missing. Extract archive member {f.member} of {SST_URL} there "
                f"(expected sha256 {f.sha256}, {f.lines} lines, {f.bytes} bytes)."
            )
        actual = sha256_of(path)
        if actual != f.sha256:
            raise SSTDataError(_mismatch_message(split, path, actual))


def _mismatch_message(split: str, path: Path, actual: str) -> str:
    """Expected and actual sha256 plus line counts, and advice for the known 9645-line variant."""
    f = SST_FILES[split]
    n_lines = _count_lines(path)
    message = (
        f"SST file {path} does not match the pinned copy: expected sha256 {f.sha256} "
        f"({f.lines} lines, {f.bytes} bytes), got sha256 {actual} ({n_lines} lines, "
        f"{path.stat().st_size} bytes)."
    )
    if split == "train" and (actual == TRAIN_VARIANT_SHA256 or n_lines == TRAIN_VARIANT_LINES):
        known = "is" if actual == TRAIN_VARIANT_SHA256 else "looks like"
        message += (
            f" This {known} the known {TRAIN_VARIANT_LINES}-line variant of train.txt, which has the "
            f"{SST_FILES['dev'].lines} dev trees appended; keep its first {f.lines} lines "
            f"(e.g. `head -n {f.lines} train.txt > train.fixed && mv train.fixed train.txt`)."
        )
    elif n_lines < f.lines:
        message += " The file has fewer lines than expected; it is probably truncated."
    return message + f" Re-fetch it from {SST_URL} (member {f.member})."


# --------------------------------------------------------------------------- parsing


def parse_tree(line: str) -> tuple[int, list[str]]:
    """The root label and the leaf tokens (left to right) of one PTB-bracketed sentence tree.

    Parenthesis-aware: a leaf is ``(label token)`` whose token has no parenthesis and no ASCII
    space; tokens may hold other characters such as U+00A0, so lines are never split on whitespace.
    """
    s = line.rstrip("\r\n")
    n = len(s)
    pos = 0
    open_nodes = 0
    root: int | None = None
    leaves: list[str] = []
    while True:
        if pos >= n or s[pos] != "(":
            raise SSTDataError(f"expected '(' at column {pos + 1} of {_excerpt(s)}")
        match = _LABEL.match(s, pos + 1)
        if match is None:
            raise SSTDataError(f"expected a label and a space after '(' at column {pos + 1} of {_excerpt(s)}")
        label = int(match.group(1))
        if not 0 <= label <= 4:
            raise SSTDataError(f"label {label} outside 0..4 at column {pos + 2} of {_excerpt(s)}")
        root = label if root is None else root
        pos = match.end()
        if pos < n and s[pos] == "(":
            open_nodes += 1
            continue
        pos = _read_leaf(s, pos, leaves)
        pos, open_nodes, done = _close_nodes(s, pos, open_nodes)
        if done:
            return root, leaves


def _read_leaf(s: str, pos: int, leaves: list[str]) -> int:
    """Read ``token)`` at ``pos``, append the token, and return the position after the ')'."""
    match = _TOKEN.match(s, pos)
    if match is None:
        raise SSTDataError(f"empty leaf token at column {pos + 1} of {_excerpt(s)}")
    token = match.group()
    if " " in token:
        raise SSTDataError(f"leaf token {token!r} contains a space (column {pos + 1} of {_excerpt(s)})")
    end = match.end()
    if end >= len(s) or s[end] != ")":
        raise SSTDataError(f"leaf token {token!r} is not closed by ')' (column {end + 1} of {_excerpt(s)})")
    leaves.append(token)
    return end + 1


def _close_nodes(s: str, pos: int, open_nodes: int) -> tuple[int, int, bool]:
    """After a node closes: consume further ')' and stop at the next sibling; flag the end of the tree."""
    n = len(s)
    while True:
        if open_nodes == 0:
            if pos != n:
                raise SSTDataError(f"unexpected text after the tree at column {pos + 1} of {_excerpt(s)}")
            return pos, 0, True
        if s.startswith(" (", pos):
            return pos + 1, open_nodes, False
        if pos < n and s[pos] == ")":
            open_nodes -= 1
            pos += 1
            continue
        raise SSTDataError(f"expected ' (' or ')' at column {pos + 1} of {_excerpt(s)}")


def _excerpt(s: str, width: int = 80) -> str:
    """A short repr of a line for error messages."""
    return repr(s if len(s) <= width else s[:width] + "...")


def tokenize(leaves: Sequence[str], keep_punctuation: bool = False) -> list[str]:
    """As the sentence files the authors trained on were made: join with spaces, lowercase, delete ``[^\\w\\s]`` (unless kept), split on Unicode whitespace."""
    text = " ".join(leaves).lower()
    if not keep_punctuation:
        text = _PUNCTUATION.sub("", text)
    tokens = text.split()
    if not tokens:
        raise SSTDataError(f"sentence {' '.join(leaves)!r} has no tokens left after tokenisation")
    return tokens


def read_trees(path: str | Path) -> list[tuple[int, list[str]]]:
    """Parse every line of one SST file into (root label, leaves); errors name the file and line."""
    path = Path(path)
    trees = []
    with open(path, encoding="utf-8", newline="\n") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                trees.append(parse_tree(line))
            except SSTDataError as exc:
                raise SSTDataError(f"{path}, line {number}: {exc}") from None
    return trees


# --------------------------------------------------------------------------- building the datasets


def load_sst(kind: str = "SST2", data_dir: str | Path | None = None, keep_punctuation: bool = False,
             *, download: bool = True) -> Dataset:
    """SST2 or SST5 as train/dev/test corpora over one vocabulary with ``$PAD$`` at 0.

    Files are verified before parsing. Results are cached in-process per folder, kind and file
    stamps, so repeated calls return the same (treat as read-only) :class:`Dataset`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)} (got {kind!r})")
    directory = find_data_dir(data_dir, download=download).resolve()
    return _load_cached(str(directory), kind, bool(keep_punctuation), _stamp(directory))


def _stamp(directory: Path) -> tuple[tuple[int, int], ...]:
    """Size and mtime of each file, so an edited file is verified again rather than served from cache."""
    stats = [(directory / f.name).stat() for f in SST_FILES.values()]
    return tuple((st.st_size, st.st_mtime_ns) for st in stats)


@functools.lru_cache(maxsize=8)
def _load_cached(directory: str, kind: str, keep_punctuation: bool, stamp: tuple) -> Dataset:
    """Verify, parse, label, tokenise and index; cached because experiments reload the data often."""
    trees = _verified_trees(directory, stamp)
    texts: dict[str, list[list[str]]] = {}
    labels: dict[str, list[int]] = {}
    for split in SPLITS:
        texts[split], labels[split] = _labelled_sentences(trees[split], kind, keep_punctuation, split,
                                                          Path(directory) / SST_FILES[split].name)
    _check_sizes(kind, labels)
    vocab = [PAD] + sorted({token for split in SPLITS for sentence in texts[split] for token in sentence})
    index = {word: i for i, word in enumerate(vocab)}
    splits = {
        split: Corpus([np.fromiter((index[t] for t in s), dtype=np.int64, count=len(s)) for s in texts[split]],
                      np.asarray(labels[split], dtype=np.int64), len(vocab))
        for split in SPLITS
    }
    return Dataset(kind, vocab, KINDS[kind], splits)


@functools.lru_cache(maxsize=4)
def _verified_trees(directory: str, stamp: tuple) -> dict[str, list[tuple[int, list[str]]]]:
    """Check sha256 of all three files, then parse them; shared by SST2 and SST5."""
    verify_files(directory)
    return {split: read_trees(Path(directory) / SST_FILES[split].name) for split in SPLITS}


def _labelled_sentences(trees: list[tuple[int, list[str]]], kind: str, keep_punctuation: bool,
                        split: str, path: Path | None = None) -> tuple[list[list[str]], list[int]]:
    """Tokenised sentences and class labels of one split; SST2 drops neutral roots and binarises.
    Errors name the file (``path``, else the split's file name) and the line."""
    source = path or SST_FILES[split].name
    texts, labels = [], []
    for number, (root, leaves) in enumerate(trees, start=1):
        if not 0 <= root <= 4:
            raise SSTDataError(f"{source}, line {number}: root label {root} outside 0..4")
        if kind == "SST2" and root == 2:
            continue
        try:
            texts.append(tokenize(leaves, keep_punctuation))
        except SSTDataError as exc:
            raise SSTDataError(f"{source}, line {number}: {exc}") from None
        labels.append(root if kind == "SST5" else int(root >= 3))
    return texts, labels


def _check_sizes(kind: str, labels: dict[str, list[int]]) -> None:
    """Fail if a split's sentence count differs from the published one."""
    for split, expected in EXPECTED_SIZES[kind].items():
        if len(labels[split]) != expected:
            raise SSTDataError(f"{kind} {split}: {len(labels[split])} sentences after parsing, expected {expected}")


def sentences_text(dataset: Dataset, split: str) -> list[list[str]]:
    """The token strings of each sentence of a split, mapped back through ``dataset.vocab``."""
    vocab = dataset.vocab
    return [[vocab[i] for i in sentence] for sentence in dataset.splits[split].sentences]


def verify_data(data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """The ``verify-data`` step: locate, checksum, parse and count both kinds; returns the folder."""
    directory = find_data_dir(data_dir, download=download)
    verify_files(directory)
    for kind in KINDS:
        load_sst(kind, directory, download=False)
    return directory


__all__ = [
    "PAD", "SST_URL", "ENV_VAR", "SST_FILES", "TRAIN_VARIANT_SHA256", "EXPECTED_SIZES", "SSTDataError",
    "SSTFile", "find_data_dir", "download_sst", "verify_files", "parse_tree", "tokenize", "read_trees",
    "load_sst", "sentences_text", "verify_data", "shared_data_dir", "cache_data_dir", "candidate_dirs",
]
