"""The Stanford Sentiment Treebank: locate, verify, parse and tokenise SST2 / SST5.

The three PTB-tree files are pinned by sha256 and checked before any parsing, so a truncated,
corrupt or differently-built copy can never load silently. Sentences become
:class:`~attnlib.data.corpus.Corpus` objects over one vocabulary shared by train, dev and test.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnlib.data import download as _download
from attnlib.data.corpus import Corpus, Dataset
from attnlib.data.download import DataError, sha256_of
from attnlib.data.download import count_lines as _count_lines
from attnlib.data.download import reason as _reason
from attnlib.files import cache_dir

PAD = "$PAD$"
"""The padding word; always vocabulary index 0."""

SST_URL = "https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip"
"""Canonical archive of the PTB-tree release (Socher et al. 2013)."""

ENV_VAR = "ATTNLIB_DATA_DIR"
"""Environment variable naming a folder that holds train.txt, dev.txt and test.txt."""

SPLITS = ("train", "dev", "test")
KINDS = {"SST2": 2, "SST5": 5}
"""Dataset kinds and their number of classes."""

URL_ENV_VAR = "ATTNLIB_SST_URL"
"""Environment variable naming another URL for the archive (a mirror, or a local server in tests)."""

DOWNLOAD_DEADLINE_S = 300.0
"""Seconds the whole download may take, however slowly the server sends it."""
SOCKET_TIMEOUT_S = 15.0
"""Seconds one connection attempt or one read may wait for the server."""


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


class SSTDataError(DataError):
    """The SST files are missing, differ from the pinned ones, or do not parse as expected."""


class SSTDataNotFound(SSTDataError):
    """No folder was named, no default place holds the files and no download was allowed: nothing was
    found to check. The one case in which a check that needs the data is skipped rather than failed
    (a named folder that lacks a file, or a file that does not match its pin, is a plain :class:`SSTDataError`)."""


# --------------------------------------------------------------------------- locating the files


def sst_url() -> str:
    """The archive's URL: ``$ATTNLIB_SST_URL`` when set (read at each call), else :data:`SST_URL`."""
    return os.environ.get(URL_ENV_VAR) or SST_URL


def shared_data_dir() -> Path:
    """``../shared/data/sst`` beside the project checkout, where the project keeps the pinned copy."""
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "sst").resolve()


def cache_data_dir() -> Path:
    """``sst/`` in the attnlib cache folder (``$ATTNLIB_CACHE_DIR``, else ``$XDG_CACHE_HOME/attnlib``,
    else ``~/.cache/attnlib``): where downloads go."""
    return cache_dir() / "sst"


def candidate_dirs(data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """The places searched, in order, each with a description, resolved at each call.

    A folder the user names (the argument, else ``$ATTNLIB_DATA_DIR``) is the only place: whoever
    names a folder means that folder, so it is never replaced by another one. Otherwise the shared
    folder beside the checkout, then the user cache (which a download fills).
    """
    return _download.candidate_places(data_dir, "the data_dir argument (--data-dir)", ENV_VAR, lambda: [
        ("the shared folder beside the project", shared_data_dir()), ("the user cache", cache_data_dir())])


def missing_files(directory: Path) -> list[str]:
    """Names of the pinned files absent from ``directory``; SSTDataError if it cannot be read."""
    return _download.missing_names(directory, [f.name for f in SST_FILES.values()], "SST", SSTDataError)


def _check_named(label: str, path: Path) -> None:
    """A named folder must exist, be readable and hold the three files; else one line naming it."""
    expected = "train.txt, dev.txt and test.txt"
    try:
        exists, is_dir = path.exists(), path.is_dir()
        if is_dir:
            os.listdir(path)
    except OSError as exc:
        raise SSTDataError(f"cannot read the SST data folder {path} named by {label}: {_reason(exc)}") from None
    if not exists:
        raise SSTDataError(f"the SST data folder {path} named by {label} does not exist (it must hold {expected})")
    if not is_dir:
        raise SSTDataError(f"the SST data folder {path} named by {label} is not a folder (it must hold {expected})")
    missing = missing_files(path)
    if missing:
        raise SSTDataError(
            f"the SST data folder {path} named by {label} lacks {', '.join(missing)} (it must hold {expected}, "
            f"the members {', '.join(f.member for f in SST_FILES.values())} of {sst_url()})"
        )


def find_data_dir(data_dir: str | Path | None = None, *, download: bool = True,
                  downloader: Callable[[Path], None] | None = None) -> Path:
    """The folder holding all three files; downloads into the user cache when no folder was named
    and neither default place holds them.

    A named folder (``data_dir``, else ``$ATTNLIB_DATA_DIR``) is authoritative: if it does not
    exist, cannot be read or lacks a file, that is an error naming it, never a fallback.
    ``downloader(dest)`` fetches, verifies and installs the files into ``dest``; it defaults to
    :func:`download_sst` and exists so tests can replace it.
    """
    places = candidate_dirs(data_dir)
    return _download.locate(places, places[-1][1], missing=missing_files, check_named=_check_named,
                            verify=verify_files, fetch_into=downloader or download_sst,
                            not_found=lambda why, stale: _not_found_message(places, why, stale),
                            allow_download=download, what="SST", error=SSTDataError, not_found_error=SSTDataNotFound)


def _not_found_message(places: Sequence[tuple[str, Path]], why: str, stale: SSTDataError | None = None) -> str:
    """One line: where we looked, why nothing was fetched, and how to fix it."""
    looked = "; ".join(f"{label} {path}" + (" (not the pinned copy)" if stale and label == "the user cache" else "")
                       for label, path in places)
    return (
        f"SST data not found (looked in {looked}) and {why}. To fix: fetch {sst_url()} (or set ${URL_ENV_VAR} "
        f"to a mirror), extract its members {', '.join(f.member for f in SST_FILES.values())} into one folder "
        f"and set ${ENV_VAR} to that folder"
    )


# --------------------------------------------------------------------------- downloading


ARCHIVE_NAME = "trainDevTestTrees_PTB.zip"


def download_sst(dest: str | Path, url: str | None = None, *, deadline_s: float | None = None,
                 socket_timeout_s: float | None = None, progressbar: bool | None = None) -> None:
    """Download the archive (with pooch), extract and verify the three members, then install them as ``dest``.

    Everything happens in a temporary folder beside ``dest``; only when every member has its pinned
    size and sha256 is that folder renamed onto ``dest``, so a bad, truncated or interrupted
    download leaves ``dest`` as it was and the next attempt downloads again. ``url`` defaults to
    :func:`sst_url`; ``deadline_s`` (default :data:`DOWNLOAD_DEADLINE_S`) bounds the whole download,
    ``socket_timeout_s`` (default :data:`SOCKET_TIMEOUT_S`) each connection and read. The progress bar
    (pooch's, with tqdm) is shown when ``progressbar`` is true, by default only when stderr is a terminal.
    Every failure is an :class:`SSTDataError` with one line.
    """
    dest = Path(dest)
    url = url or sst_url()
    deadline_s = DOWNLOAD_DEADLINE_S if deadline_s is None else float(deadline_s)
    socket_timeout_s = SOCKET_TIMEOUT_S if socket_timeout_s is None else float(socket_timeout_s)
    if progressbar is None:
        progressbar = _download.isatty(sys.stderr)
    _download.announce(f"Downloading the Stanford Sentiment Treebank (Socher et al. 2013) from {url} into {dest}")

    def work(staging: Path) -> Path:
        archive = _download.fetch(url, staging, ARCHIVE_NAME, deadline_s, socket_timeout_s, progressbar, SSTDataError,
                                   "attnlib-sst-download")
        return _extract_members(archive, staging, url)

    _download.staged(dest, ".sst-download-", "SST", SSTDataError, work, verify_files)


def _extract_members(archive: Path, staging: Path, url: str) -> Path:
    """Check the archive lists the three members at their pinned sizes, extract them with pooch's
    Unzip into ``staging``, verify their sha256, and return the folder holding them (flat)."""
    import pooch  # noqa: PLC0415 - pooch and requests take ~0.7 s to import: only a download needs them

    members = [f.member for f in SST_FILES.values()]
    try:
        with zipfile.ZipFile(archive) as zf:
            sizes = {info.filename: info.file_size for info in zf.infolist()}
    except zipfile.BadZipFile as exc:
        raise SSTDataError(f"the archive downloaded from {url} is not a valid zip file ({exc}: truncated or "
                           f"not the SST archive); nothing was written to the cache") from None
    for f in SST_FILES.values():
        if f.member not in sizes:
            raise SSTDataError(f"the archive downloaded from {url} has no member {f.member}; "
                               f"nothing was written to the cache")
        if sizes[f.member] != f.bytes:
            raise SSTDataError(f"archive member {f.member} downloaded from {url} is {sizes[f.member]} bytes, "
                               f"the pinned copy {f.bytes}; nothing was written to the cache")
    try:
        pooch.Unzip(members=members, extract_dir="extracted")(str(archive), "download", None)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:  # e.g. a CRC error in a damaged member
        raise SSTDataError(f"cannot extract the archive downloaded from {url} ({_reason(exc)}); "
                           f"nothing was written to the cache") from None
    flat = staging / "sst"
    flat.mkdir()
    for f in SST_FILES.values():
        extracted = staging / "extracted" / f.member
        actual = sha256_of(extracted)
        if actual != f.sha256:
            raise SSTDataError(f"archive member {f.member} downloaded from {url} does not match the pinned copy: "
                               f"expected sha256 {f.sha256}, got {actual}; nothing was written to the cache")
        os.replace(extracted, flat / f.name)
    return flat


# --------------------------------------------------------------------------- verifying the files


def verify_files(directory: str | Path) -> None:
    """Check that each pinned file exists in ``directory`` and has the pinned sha256; never repair.
    Every failure, a file that cannot be read included, is one :class:`SSTDataError` line naming the file."""
    directory = Path(directory)
    for split, f in SST_FILES.items():
        path = directory / f.name
        try:
            if not path.is_file():
                raise SSTDataError(
                    f"SST file {path} is missing. Extract archive member {f.member} of {sst_url()} there "
                    f"(expected sha256 {f.sha256}, {f.lines} lines, {f.bytes} bytes)."
                )
            actual = sha256_of(path)
            if actual != f.sha256:
                raise SSTDataError(_mismatch_message(split, path, actual))
        except OSError as exc:
            raise SSTDataError(f"cannot read SST file {path}: {_reason(exc)}") from None


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
    elif path.stat().st_size < f.bytes:
        message += " The file is shorter than the pinned copy; it is probably truncated."
    return message + f" Re-fetch it from {sst_url()} (member {f.member})."


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
    """As the sentence files the authors trained on were made: join with spaces, lowercase, delete
    ``[^\\w\\s]`` (unless kept), split on Unicode whitespace."""
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
    try:
        with open(path, "rb") as fh:  # lines end at b"\n" only; each is decoded alone to name the bad one
            for number, raw in enumerate(fh, start=1):
                try:
                    trees.append(parse_tree(raw.decode("utf-8")))
                except UnicodeDecodeError as exc:
                    raise SSTDataError(f"{path}, line {number}: not UTF-8 text ({exc.reason} at byte "
                                       f"{exc.start + 1} of the line)") from None
                except SSTDataError as exc:
                    raise SSTDataError(f"{path}, line {number}: {exc}") from None
    except OSError as exc:
        raise SSTDataError(f"cannot read SST file {path}: {_reason(exc)}") from None
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
    stats = []
    for f in SST_FILES.values():
        try:
            stats.append((directory / f.name).stat())
        except OSError as exc:
            raise SSTDataError(f"cannot read SST file {directory / f.name}: {_reason(exc)}") from None
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
    "PAD", "SST_URL", "ENV_VAR", "URL_ENV_VAR", "sst_url",
    "SST_FILES", "TRAIN_VARIANT_SHA256", "EXPECTED_SIZES", "SSTDataError",
    "SSTFile", "SSTDataNotFound", "find_data_dir", "download_sst", "verify_files", "parse_tree", "tokenize", "read_trees",
    "load_sst", "sentences_text", "verify_data", "shared_data_dir", "cache_data_dir", "candidate_dirs",
]
