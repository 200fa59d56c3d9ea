"""TREC question classification (Li & Roth 2002): locate, verify, parse and tokenise the coarse task.

The two original files, ``train_5500.label`` (5,452 questions) and ``TREC_10.label`` (500), are
pinned by sha256 and checked before parsing. They are found like the SST files (a named folder is
authoritative; else ``../shared/data/trec`` beside the checkout, then the user cache, which a
download from the original address fills). TREC has no dev split: :data:`DEV_FRACTION` of the
training file, drawn with :data:`SPLIT_SEED`, is held out as one, the same for every head and seed.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnlib.data import download as _download
from attnlib.data.corpus import Corpus, Dataset
from attnlib.data.download import DataError
from attnlib.data.sst import PAD, tokenize
from attnlib.files import cache_dir

BASE_URL = "https://cogcomp.seas.upenn.edu/Data/QA/QC/"
"""The Cognitive Computation Group's address of the two files (Li & Roth 2002)."""
URL_ENV_VAR = "ATTNLIB_TREC_URL"
"""Environment variable naming another folder URL holding the two files (a mirror, or a local server in tests)."""
ENV_VAR = "ATTNLIB_TREC_DIR"
"""Environment variable naming a folder that holds train_5500.label and TREC_10.label."""

DOWNLOAD_DEADLINE_S = 120.0
"""Seconds the whole download of both files (360 kB) may take, however slowly the server sends them."""
SOCKET_TIMEOUT_S = 15.0
"""Seconds one connection attempt or one read may wait for the server."""

CLASSES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
"""The six coarse classes, in label order."""
DEV_FRACTION = 0.1
"""Share of the training file held out as the dev split that early stopping monitors (TREC has none)."""
SPLIT_SEED = 0
"""Seed of the draw of the dev split: fixed, so every head and seed sees the same split."""
OTHER_BYTE = b"\xf0"
"""The one non-ASCII byte of the training file, where the original had a separator between two words."""


@dataclass(frozen=True)
class TRECFile:
    """What a pinned TREC file must look like: its name, line count, size and sha256."""

    name: str
    lines: int
    bytes: int
    sha256: str


TREC_FILES: dict[str, TRECFile] = {
    "train": TRECFile("train_5500.label", 5452, 335858,
                      "9e4c8bdcaffb96ed61041bd64b564183d52793a8e91d84fc3a8646885f466ec3"),
    "test": TRECFile("TREC_10.label", 500, 23354,
                     "033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e"),
}
"""sha256 of the two original files, by split (the sums the Hugging Face ``trec`` script pins)."""

_LINE = re.compile(r"([A-Z]+):(\S+) (.+)")


class TRECDataError(DataError):
    """The TREC files are missing, differ from the pinned ones, or do not parse as expected."""


# --------------------------------------------------------------------------- locating and fetching


def trec_url() -> str:
    """The folder URL of the two files: ``$ATTNLIB_TREC_URL`` when set (read at each call), else :data:`BASE_URL`."""
    url = os.environ.get(URL_ENV_VAR) or BASE_URL
    return url if url.endswith("/") else url + "/"


def shared_data_dir() -> Path:
    """``../shared/data/trec`` beside the project checkout."""
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "trec").resolve()


def cache_data_dir() -> Path:
    """``trec/`` in the attnlib cache folder: where downloads go."""
    return cache_dir() / "trec"


def candidate_dirs(data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """The places searched, in order: a named folder (the argument, else ``$ATTNLIB_TREC_DIR``) alone,
    else the shared folder beside the checkout and the user cache."""
    return _download.candidate_places(data_dir, "the data_dir argument", ENV_VAR, lambda: [
        ("the shared folder beside the project", shared_data_dir()), ("the user cache", cache_data_dir())])


def missing_files(directory: Path) -> list[str]:
    """Names of the pinned files absent from ``directory``."""
    return _download.missing_names(directory, [f.name for f in TREC_FILES.values()], "TREC", TRECDataError)


def _names() -> str:
    return " and ".join(f.name for f in TREC_FILES.values())


def _check_named(label: str, path: Path) -> None:
    """A named folder must exist and hold both files; else one line naming it."""
    if not path.is_dir():
        raise TRECDataError(f"the TREC data folder {path} named by {label} is not a folder (it must hold {_names()})")
    missing = missing_files(path)
    if missing:
        raise TRECDataError(f"the TREC data folder {path} named by {label} lacks {', '.join(missing)} "
                            f"(it must hold {_names()}, from {trec_url()})")


def find_data_dir(data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """The folder holding both files; downloads them into the user cache when no folder was named and
    neither default place holds them (see :func:`attnlib.data.download.locate`)."""
    places = candidate_dirs(data_dir)

    def not_found(why: str, stale: Exception | None) -> str:
        looked = "; ".join(f"{label} {path}" for label, path in places)
        return (f"TREC data not found (looked in {looked}) and {why}. To fix: fetch {_names()} from {trec_url()} "
                f"(or set ${URL_ENV_VAR} to a mirror) into one folder and set ${ENV_VAR} to that folder")

    return _download.locate(places, places[-1][1], missing=missing_files, check_named=_check_named,
                            verify=verify_files, fetch_into=download_trec, not_found=not_found,
                            allow_download=download, what="TREC", error=TRECDataError)


def download_trec(dest: str | Path, url: str | None = None, *, deadline_s: float | None = None,
                  socket_timeout_s: float | None = None, progressbar: bool | None = None) -> None:
    """Download both files (with pooch) into a temporary folder, verify their sha256, then install it as ``dest``.

    ``url`` is the folder URL (default :func:`trec_url`); ``deadline_s`` (default
    :data:`DOWNLOAD_DEADLINE_S`) bounds each file's whole transfer. A bad, truncated or interrupted
    download leaves ``dest`` as it was. Every failure is a :class:`TRECDataError` with one line.
    """
    dest = Path(dest)
    url = url or trec_url()
    deadline_s = DOWNLOAD_DEADLINE_S if deadline_s is None else float(deadline_s)
    socket_timeout_s = SOCKET_TIMEOUT_S if socket_timeout_s is None else float(socket_timeout_s)
    progressbar = _download.isatty(sys.stderr) if progressbar is None else progressbar
    _download.announce(f"Downloading the TREC question classification data (Li & Roth 2002) from {url} into {dest}")

    def work(staging: Path) -> Path:
        folder = staging / "trec"
        folder.mkdir()
        for f in TREC_FILES.values():
            path = _download.fetch(url + f.name, folder, f.name, deadline_s, socket_timeout_s, progressbar,
                                   TRECDataError, "attnlib-trec-download")
            actual = _download.sha256_of(path)
            if actual != f.sha256:
                raise TRECDataError(f"{f.name} downloaded from {url + f.name} does not match the pinned copy: "
                                    f"expected sha256 {f.sha256} ({f.bytes} bytes), got {actual} "
                                    f"({path.stat().st_size} bytes); nothing was written to the cache")
        return folder

    _download.staged(dest, ".trec-download-", "TREC", TRECDataError, work, verify_files)


def verify_files(directory: str | Path) -> None:
    """Check that each pinned file is in ``directory`` with its pinned sha256; one line naming the file otherwise."""
    directory = Path(directory)
    for f in TREC_FILES.values():
        path = directory / f.name
        try:
            if not path.is_file():
                raise TRECDataError(f"TREC file {path} is missing; fetch it from {trec_url()}{f.name} "
                                    f"(expected sha256 {f.sha256}, {f.lines} lines, {f.bytes} bytes)")
            actual = _download.sha256_of(path)
            if actual != f.sha256:
                n_lines = _download.count_lines(path)
                hint = " (fewer lines than expected: probably truncated)" if n_lines < f.lines else ""
                raise TRECDataError(f"TREC file {path} does not match the pinned copy{hint}: expected sha256 "
                                    f"{f.sha256} ({f.lines} lines, {f.bytes} bytes), got {actual} ({n_lines} lines, "
                                    f"{path.stat().st_size} bytes); fetch it again from {trec_url()}{f.name}")
        except OSError as exc:
            raise TRECDataError(f"cannot read TREC file {path}: {_download.reason(exc)}") from None


# --------------------------------------------------------------------------- parsing


def read_questions(path: str | Path) -> list[tuple[str, str, list[str]]]:
    """(coarse label, fine label, raw tokens) of every line; Latin-1, with the 0xF0 byte read as a space.
    Errors name the file and line."""
    path = Path(path)
    out = []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TRECDataError(f"cannot read TREC file {path}: {_download.reason(exc)}") from None
    for number, raw in enumerate(data.replace(OTHER_BYTE, b" ").decode("latin-1").splitlines(), start=1):
        match = _LINE.fullmatch(raw)
        if match is None or match.group(1) not in CLASSES:
            raise TRECDataError(f"{path}, line {number}: expected 'COARSE:fine question' with COARSE one of "
                                f"{', '.join(CLASSES)} (got {raw[:60]!r})")
        out.append((match.group(1), match.group(2), match.group(3).split()))
    return out


def dev_indices(n_train_file: int, fraction: float = DEV_FRACTION, seed: int = SPLIT_SEED) -> np.ndarray:
    """Sorted line indices (0-based) of the training file held out as the dev split: ``round(fraction n)``
    drawn without replacement by ``numpy.random.default_rng(seed)``."""
    n_dev = int(round(fraction * n_train_file))
    return np.sort(np.random.default_rng(seed).permutation(n_train_file)[:n_dev])


def load_trec(data_dir: str | Path | None = None, keep_punctuation: bool = False, *, download: bool = True,
              dev_fraction: float = DEV_FRACTION, split_seed: int = SPLIT_SEED) -> Dataset:
    """TREC's coarse task as train/dev/test corpora over one vocabulary with ``$PAD$`` at 0, tokenised as
    SST (lowercased, punctuation deleted). Cached in-process per folder, options and file stamps."""
    directory = find_data_dir(data_dir, download=download).resolve()
    stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in (directory / f.name for f in TREC_FILES.values()))
    return _load_cached(str(directory), bool(keep_punctuation), float(dev_fraction), int(split_seed), stamp)


@functools.lru_cache(maxsize=4)
def _load_cached(directory: str, keep_punctuation: bool, dev_fraction: float, split_seed: int,
                 stamp: tuple) -> Dataset:
    verify_files(directory)
    texts: dict[str, list[list[str]]] = {}
    labels: dict[str, list[int]] = {}
    for split, f in TREC_FILES.items():
        path = Path(directory) / f.name
        texts[split], labels[split] = [], []
        for number, (coarse, _, tokens) in enumerate(read_questions(path), start=1):
            try:
                texts[split].append(tokenize(tokens, keep_punctuation))
            except DataError as exc:
                raise TRECDataError(f"{path}, line {number}: {exc}") from None
            labels[split].append(CLASSES.index(coarse))
    dev = set(dev_indices(len(texts["train"]), dev_fraction, split_seed).tolist())
    parts = {
        "train": [i for i in range(len(texts["train"])) if i not in dev],
        "dev": sorted(dev),
    }
    split_texts = {name: [texts["train"][i] for i in idx] for name, idx in parts.items()}
    split_labels = {name: [labels["train"][i] for i in idx] for name, idx in parts.items()}
    split_texts["test"], split_labels["test"] = texts["test"], labels["test"]
    vocab = [PAD] + sorted({t for sentences in split_texts.values() for s in sentences for t in s})
    index = {word: i for i, word in enumerate(vocab)}
    splits = {name: Corpus([np.fromiter((index[t] for t in s), dtype=np.int64, count=len(s))
                            for s in split_texts[name]], np.asarray(split_labels[name], dtype=np.int64), len(vocab))
              for name in ("train", "dev", "test")}
    return Dataset("TREC", vocab, len(CLASSES), splits)


def verify_data(data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """The ``verify-data trec`` step: locate and checksum both files, then parse them; returns the folder."""
    directory = find_data_dir(data_dir, download=download)
    verify_files(directory)
    load_trec(directory, download=False)
    return directory


def questions_text(dataset: Dataset, split: str) -> list[list[str]]:
    """The token strings of each question of a split."""
    return [[dataset.vocab[i] for i in s] for s in dataset.splits[split].sentences]


def label_counts(labels: Sequence[int]) -> dict[str, int]:
    """Questions per coarse class name."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(CLASSES))
    return {c: int(n) for c, n in zip(CLASSES, counts)}


__all__ = ["BASE_URL", "CLASSES", "DEV_FRACTION", "ENV_VAR", "SPLIT_SEED", "TREC_FILES", "TRECDataError", "URL_ENV_VAR",
           "dev_indices", "download_trec", "find_data_dir", "verify_data", "label_counts", "load_trec", "questions_text",
           "read_questions", "trec_url", "verify_files"]
