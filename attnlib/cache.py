"""A disk cache of training results, so re-running an experiment or rebuilding a chapter skips training.

An entry is one ``.npz`` file (plain arrays plus a JSON header, read with ``allow_pickle=False``)
named by a hash of everything that determines the result: the model and training configs, the
seeds, each dataset's content, the traced words, ``reduce_embeddings``, the device type and the
attnlib and torch versions. Entries are written to a temporary file in the same folder and renamed
into place, so a run killed at any moment leaves either no entry or a complete one; an entry that
does not load, or whose checksum or header does not match, is reported in one ``attnlib:`` line on
stderr and recomputed. While one process trains an entry it holds a lock on it (an advisory ``flock`` on a
``.lock`` file beside it, where the platform has one), so a second process asking for the same entry,
say a second notebook of the book executed in parallel or a second worker of a sweep, waits and then
reads it instead of training it again.

Location: ``$ATTNLIB_CACHE_DIR``, else ``$XDG_CACHE_HOME/attnlib``, else ``~/.cache/attnlib``.
``ATTNLIB_CACHE=off`` turns the cache off (``attnlib run --no-cache`` does the same).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnlib import __version__
from attnlib.config import ModelConfig, TrainConfig
from attnlib.data.corpus import Dataset
from attnlib.device import default_device
from attnlib.files import cache_dir
from attnlib.train import TrainResult, train

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; parallel processes may then train an entry twice
    fcntl = None

FORMAT = 1
"""Version of the entry layout; part of the key, so a new layout never reads an old entry."""
PREFIX = "run-"
SUFFIX = ".npz"
TEMP_SUFFIX = ".tmp"
LOCK_SUFFIX = ".lock"
ARRAYS = ("loss", "train_accuracy", "record_epochs", "test_loss", "test_accuracy", "traced_words", "traced_scores",
          "traced_norms", "final_scores", "final_norms", "query_norm", "final_test_accuracy", "stopped_epoch",
          "best_epoch", "dev_loss")
"""The array fields of :class:`~attnlib.train.TrainResult` that an entry stores (``dev_loss`` when present)."""
OFF_VALUES = ("off", "0", "false", "no")


def enabled() -> bool:
    """False when ``ATTNLIB_CACHE`` is ``off`` (or 0, false, no)."""
    return os.environ.get("ATTNLIB_CACHE", "on").strip().lower() not in OFF_VALUES


@contextmanager
def disabled() -> Iterator[None]:
    """Turn the cache off inside the block (through the environment, so worker processes see it too)."""
    before = os.environ.get("ATTNLIB_CACHE")
    os.environ["ATTNLIB_CACHE"] = "off"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ATTNLIB_CACHE", None)
        else:
            os.environ["ATTNLIB_CACHE"] = before


def _dataset_key(dataset: Dataset) -> dict[str, Any]:
    """What of a dataset training depends on: its token ids and labels, vocabulary size and class count."""
    return {"fingerprint": dataset.fingerprint(), "n_classes": int(dataset.n_classes),
            "vocab_size": {name: int(c.vocab_size) for name, c in sorted(dataset.splits.items())}}


@functools.lru_cache(maxsize=1)
def engine_digest() -> str:
    """sha256 of the engine's source (model, train, data): a change to the code that computes a result
    invalidates its cache entries even while the version number stays the same (as during development)."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ENGINE_SOURCES:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:16]


ENGINE_SOURCES = ("model.py", "train.py", "data/corpus.py", "data/synthetic.py")
"""The modules whose code determines a training result, besides the configs and data in the key."""


def key_material(model: ModelConfig, config: TrainConfig, datasets: Sequence[Dataset], seeds: Sequence[int],
                 trace_words: Sequence[int] | np.ndarray = (), reduce_embeddings: bool = True,
                 device: torch.device | None = None) -> dict[str, Any]:
    """Everything that determines a :func:`~attnlib.train.train` result, as plain JSON-able data."""
    device = device or default_device()
    return {
        "format": FORMAT, "attnlib": __version__, "engine": engine_digest(), "torch": torch.__version__,
        "device": device.type,
        "model": dataclasses.asdict(model), "train": dataclasses.asdict(config),
        "seeds": [int(s) for s in seeds], "datasets": [_dataset_key(d) for d in datasets],
        "trace_words": np.asarray(trace_words, dtype=np.int64).tolist(), "reduce_embeddings": bool(reduce_embeddings),
    }


def cache_key(model: ModelConfig, config: TrainConfig, datasets: Sequence[Dataset], seeds: Sequence[int],
              trace_words: Sequence[int] | np.ndarray = (), reduce_embeddings: bool = True,
              device: torch.device | None = None) -> str:
    """The hex sha256 (32 characters) of :func:`key_material`: the name of the entry."""
    material = key_material(model, config, datasets, seeds, trace_words, reduce_embeddings, device)
    text = json.dumps(material, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def entry_path(key: str, folder: Path | None = None) -> Path:
    """Where the entry for ``key`` lives: one file per entry, so a rename replaces it whole."""
    return (folder or cache_dir()) / f"{PREFIX}{key}{SUFFIX}"


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over every array's name, dtype, shape and bytes: detects corruption the zip layer misses."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def save_entry(path: Path, key: str, result: TrainResult) -> None:
    """Write ``result`` to ``path`` atomically: a temporary file in the same folder, fsynced, then renamed."""
    arrays = {name: np.asarray(getattr(result, name)) for name in ARRAYS if getattr(result, name) is not None}
    header = {"format": FORMAT, "key": key, "attnlib": __version__, "model": dataclasses.asdict(result.model),
              "train": dataclasses.asdict(result.train_config), "seeds": [int(s) for s in result.seeds],
              "checksum": _checksum(arrays)}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}.", suffix=TEMP_SUFFIX, delete=False)
    try:
        os.chmod(handle.name, 0o644)  # as a plain open() would (NamedTemporaryFile makes it 0o600)
        with handle:
            np.savez(handle, header=np.array(json.dumps(header, sort_keys=True)), **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


class CorruptEntry(ValueError):
    """A cache entry that does not load, or does not match its header or its key."""


def load_entry(path: Path, key: str) -> TrainResult:
    """The :class:`TrainResult` stored at ``path``; :class:`CorruptEntry` unless it is a complete entry for ``key``."""
    if not zipfile.is_zipfile(path):
        raise CorruptEntry("it is not an .npz archive (empty, truncated or overwritten)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        header = json.loads(str(arrays.pop("header")))
        model, config = ModelConfig(**header["model"]), TrainConfig(**header["train"])
        seeds = [int(s) for s in header["seeds"]]
    except Exception as error:  # noqa: BLE001 - whatever stops a file from loading makes it a corrupt entry
        raise CorruptEntry(f"{type(error).__name__}: {error}") from None
    if header.get("format") != FORMAT or header.get("key") != key:
        raise CorruptEntry("its header names another key or format")
    if set(arrays) - set(ARRAYS) or set(ARRAYS) - {"dev_loss"} - set(arrays):
        raise CorruptEntry(f"unexpected arrays {sorted(arrays)}")
    if _checksum(arrays) != header.get("checksum"):
        raise CorruptEntry("its checksum does not match its contents")
    if arrays["loss"].ndim != 2 or arrays["loss"].shape[1] != len(seeds):
        raise CorruptEntry(f"loss has shape {arrays['loss'].shape} for {len(seeds)} seeds")
    arrays.setdefault("dev_loss", None)
    return TrainResult(model=model, train_config=config, seeds=seeds, **arrays)


def cached_train(model: ModelConfig, config: TrainConfig, datasets: Sequence[Dataset], seeds: Sequence[int],
                 trace_words: Sequence[int] | np.ndarray = (), quiet: bool = False,
                 device: torch.device | None = None, keep_params: bool = False,
                 reduce_embeddings: bool = True) -> TrainResult:
    """:func:`attnlib.train.train`, served from the disk cache when the same call was made before.

    A hit is bit-identical to retraining. Calls with ``keep_params`` (parameters are not stored) and
    calls while the cache is off go straight to :func:`~attnlib.train.train`. A corrupt entry is
    reported in one line on stderr naming the file, then recomputed and overwritten; a cache folder
    that cannot be written is reported the same way and training goes on uncached.
    """
    run = lambda: train(model, config, datasets, seeds, trace_words=trace_words, quiet=quiet,  # noqa: E731
                        device=device, keep_params=keep_params, reduce_embeddings=reduce_embeddings)
    if keep_params or not enabled():
        return run()
    key = cache_key(model, config, datasets, seeds, trace_words, reduce_embeddings, device)
    path = entry_path(key)
    with entry_lock(path):
        if path.is_file():
            try:
                return load_entry(path, key)
            except CorruptEntry as error:
                _notice(f"the cache entry {path} is corrupt ({error}); recomputing it")
        result = run()
        try:
            save_entry(path, key, result)
        except OSError as error:
            _notice(f"could not write the cache entry {path} ({error}); the result is not cached")
    return result


def _notice(text: str) -> None:
    """One ``attnlib:`` line on stderr: what happened to the cache; the run goes on."""
    print(f"attnlib: {text}", file=sys.stderr, flush=True)


def lock_path(path: Path) -> Path:
    """The lock file of the entry at ``path`` (hidden, so :func:`entries` never lists it)."""
    return path.with_name(f".{path.stem}{LOCK_SUFFIX}")


@contextmanager
def entry_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on the entry at ``path`` inside the block: a process that asks for
    an entry another process is training waits for it, then finds it written. Where no lock can be
    taken (no ``fcntl``, a folder that cannot be written) the block runs unlocked, as before."""
    if fcntl is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path(path), "a+b")  # closed below, after the block
    except OSError:
        yield
        return
    with closing(handle):
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        except OSError:
            pass  # e.g. a file system without locks: run unlocked
        yield  # closing the file releases the lock


def entries(folder: Path | None = None) -> list[Path]:
    """The cache entries in ``folder`` (default: :func:`cache_dir`), sorted by name."""
    folder = folder or cache_dir()
    return sorted(folder.glob(f"{PREFIX}*{SUFFIX}")) if folder.is_dir() else []


def _leftovers(folder: Path) -> list[Path]:
    """Temporary files of writes that were killed before their rename, and the entries' lock files."""
    if not folder.is_dir():
        return []
    return sorted([*folder.glob(f".{PREFIX}*{TEMP_SUFFIX}"), *folder.glob(f".{PREFIX}*{LOCK_SUFFIX}")])


def info(folder: Path | None = None) -> dict[str, Any]:
    """Location, number of entries and their total size in bytes."""
    folder = folder or cache_dir()
    found = entries(folder)
    return {"location": str(folder), "enabled": enabled(), "entries": len(found),
            "bytes": sum(p.stat().st_size for p in found)}


def clear(folder: Path | None = None) -> list[Path]:
    """Remove every entry (and leftover temporary file) from ``folder``; return what was removed.

    Only files named like entries are touched, so other contents of the folder (e.g. the SST
    download in ``sst/``) survive.
    """
    folder = folder or cache_dir()
    removed = []
    for path in entries(folder) + _leftovers(folder):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
