"""Stored SST runs: where they are, how they are written, and the checks every load makes.

A stored run is ``<key>.npz`` (the arrays of an :class:`~attnlib.experiments.sst.runs.SSTRun`) with its
JSON sidecar ``<key>.json`` (configuration and provenance), ``key = KIND_HEAD_VARIANT``. The folder's
``MANIFEST.json`` records the sha256 of every stored file. Each file is written atomically and the
manifest last, so a writer killed at any moment leaves either the previous pair with the previous
manifest, or files the manifest does not vouch for, which every load refuses (one line naming the
file) rather than serving or crashing on.

Every load also checks that the arrays belong to the setting asked for: the npz names its own kind,
head, variant and configuration hash, which must agree with the sidecar and the request, and its
shapes must agree with the seeds and (for runs that store them) the class count of the dataset.

Where stored runs are read from is decided when they are needed, never at import: an explicit folder,
else ``$ATTNLIB_STORE_DIR``, else ``results/sst`` of the checkout this package runs from, if there is one.

This module reads and writes; it neither trains nor decides whether a run is served or retrained (that is
:mod:`attnlib.experiments.sst.serving`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from attnlib.config import HEADS, RunConfig, sst_preset, trec_preset
from attnlib.data.sst import SSTDataError, sha256_of
from attnlib.experiments.sst.runs import SSTRun
from attnlib.files import atomic_write, write_json

try:
    import fcntl
except ImportError:  # Windows: see _locked
    fcntl = None

ENV_VAR = "ATTNLIB_STORE_DIR"
MANIFEST = "MANIFEST.json"
PREVIOUS = ".prev"
"""Suffix of the previous pair of a run that :func:`save_run` keeps until the manifest names the new one."""
FORMAT = 2
"""Format of newly stored runs. 2: per seed, the scores and the classifier-projected embeddings at the
restored best epoch and the losses and accuracies there (so that they can be recomputed); 1: without."""
N_CLASSES = {"SST2": 2, "SST5": 5, "TREC": 6}
ABOUT = ("sha256 of every stored SST run file; every load checks it (attnlib.experiments.sst.storage). "
         "Regenerate after a deliberate re-store: attnlib store manifest")
"""The manifest's ``about`` line."""

ARRAYS = ("loss", "dev_loss", "record_epochs", "test_accuracy_curve", "words", "m_w", "scores", "norms", "top",
          "final_test_accuracy", "stopped_epoch", "best_epoch", "query_norm", "f7_weights", "pad_weight")
AT_BEST = ("train_loss", "train_accuracy", "dev_loss", "dev_accuracy", "test_loss", "test_accuracy")
"""Per seed, what format 2 stores at the restored best epoch besides the scores and projected embeddings."""


class StoredRunError(SSTDataError):
    """A stored run that cannot be served: missing, changed since it was stored, or another setting's.
    (An :class:`~attnlib.data.SSTDataError`, so that ``attnlib run`` reports it as one line.)"""


# --------------------------------------------------------------------------- where


def checkout_store_dir() -> Path:
    """``results/sst`` of the checkout this package is imported from (it may not exist, e.g. in a wheel)."""
    return Path(__file__).resolve().parents[3] / "results" / "sst"


def store_dir(folder: str | Path | None = None) -> tuple[Path | None, str]:
    """The folder stored runs are read from, and how it was chosen (for messages).

    ``folder`` if given, else ``$ATTNLIB_STORE_DIR`` if set (both authoritative: a named folder is used
    even when it holds nothing), else the checkout's ``results/sst`` when it exists, else None.
    """
    if folder is not None:
        return Path(folder).expanduser(), f"--store-dir {folder}"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser(), f"${ENV_VAR}={env}"
    checkout = checkout_store_dir()
    if checkout.is_dir():
        return checkout, f"the checkout's {checkout}"
    return None, f"no folder of stored SST runs (${ENV_VAR} is not set and there is no checkout with results/sst)"


def _folder(folder: str | Path | None) -> Path:
    found, where = store_dir(folder)
    if found is None:
        raise StoredRunError(f"{where}; name one with --store-dir or ${ENV_VAR}")
    return found


# --------------------------------------------------------------------------- manifest


def _sha256(path: Path) -> str:
    return sha256_of(path)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise manifest updates of writers storing into one folder at once (``--jobs``)."""
    if fcntl is None:  # no advisory locks (Windows): one writer at a time is the user's to ensure
        yield
        return
    handle = os.open(folder, os.O_RDONLY)  # the folder itself is the lock: no lock file left behind
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def read_manifest(folder: Path) -> dict[str, str]:
    """File name -> sha256 of ``folder``'s manifest; {} when it has none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise StoredRunError(f"{path} is not a manifest of stored runs ({error})") from None
    return {str(k): str(v) for k, v in files.items()}


def _write_manifest(folder: Path, files: dict[str, str]) -> Path:
    path = Path(folder) / MANIFEST
    write_json(path, {"about": ABOUT,
                      "files": dict(sorted(files.items()))})
    return path


def update_manifest(folder: Path, names: Sequence[str]) -> Path:
    """Record the current sha256 of ``names`` (files in ``folder``) in its manifest, keeping the others."""
    folder = Path(folder)
    with _locked(folder):
        files = read_manifest(folder)
        files.update({name: _sha256(folder / name) for name in names})
        return _write_manifest(folder, files)


def regenerate_manifest(folder: str | Path | None = None) -> Path:
    """Rewrite the manifest from the stored files now in the folder (after a deliberate re-store)."""
    folder = _folder(folder)
    names = sorted(p.name for p in folder.iterdir() if p.suffix in (".npz", ".json") and p.name != MANIFEST)
    with _locked(folder):
        return _write_manifest(folder, {name: _sha256(folder / name) for name in names})


def check_integrity(folder: Path, key: str) -> tuple[Path, Path]:
    """The ``(npz, json)`` files of ``key`` that have the manifest's sha256: the stored pair, or the previous
    pair :func:`save_run` keeps while it replaces them (a save interrupted before its manifest update);
    :class:`StoredRunError` if neither pair holds."""
    manifest = read_manifest(folder)
    if not manifest:
        raise StoredRunError(f"stored run {key} refused: {folder / MANIFEST} is missing, so {folder / key}.npz and "
                             ".json cannot be checked (after a deliberate re-store regenerate it: python -m "
                             f"attnlib.experiments.sst.verification manifest; else retrain with {retrain_command(key)})")
    names = (f"{key}.npz", f"{key}.json")
    for name in names:
        if name not in manifest:
            raise StoredRunError(f"stored run {key} refused: {folder / name} is not in {MANIFEST}; retrain it with "
                                 f"{retrain_command(key)}")
    for suffix in ("", PREVIOUS):
        paths = tuple(folder / f"{name}{suffix}" for name in names)
        if all(path.is_file() and _sha256(path) == manifest[name] for path, name in zip(paths, names)):
            return paths
    changed = next((folder / n for n in names if not (folder / n).is_file() or _sha256(folder / n) != manifest[n]),
                   folder / names[0])
    raise StoredRunError(f"stored run {key} refused: {changed} does not have the sha256 recorded in "
                         f"{MANIFEST} (changed since it was stored, or its write was interrupted); retrain it "
                         f"with {retrain_command(key)}")


# --------------------------------------------------------------------------- write and read


def projected_width(config: RunConfig, n_classes: int) -> int:
    """Columns of the embeddings projected through the head's first layer, E U1: the classes for Attn-FC and
    Attn-TC, the hidden units for Attn-TL."""
    return config.model.hidden_units if config.model.head == "TL" else n_classes


def preset(kind: str, head: str, variant: str) -> RunConfig:
    """The configuration a stored setting must have been trained with: SST's preset for SST2 / SST5, TREC's
    (:func:`attnlib.config.trec_preset`, one variant, ``default``) for TREC."""
    return trec_preset(head) if kind == "TREC" else sst_preset(kind, head, variant)


def stored_hash(kind: str, head: str, variant: str, folder: str | Path | None = None) -> str | None:
    """The config hash a stored run's sidecar records, or None if there is no stored run (unchecked:
    loading it checks it)."""
    found, _ = store_dir(folder)
    if found is None:
        return None
    path = found / f"{kind}_{head}_{variant}.json"
    if not path.is_file() or not path.with_suffix(".npz").is_file():
        return None
    try:
        return json.loads(path.read_text()).get("config_hash")
    except ValueError:
        return "unreadable"


def save_run(run: SSTRun, folder: str | Path) -> Path:
    """Write ``<key>.npz`` (compressed; traces in float16), ``<key>.json``, then the manifest, each atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run.key}.npz"
    arrays = {name: np.asarray(getattr(run, name)) for name in ARRAYS}
    for name in ("loss", "dev_loss", "test_accuracy_curve", "pad_weight"):
        arrays[name] = arrays[name].astype(np.float32)
    for name in ("scores", "norms", "f7_weights"):
        arrays[name] = arrays[name].astype(np.float16)
    arrays.update(shift=run.shift.to_numpy(np.float64) if not run.shift.empty else np.zeros((0, 0)),
                  shift_columns=np.array(list(run.shift.columns)), word_names=np.array(run.word_names),
                  kind=np.array(run.kind), head=np.array(run.head), variant=np.array(run.variant),
                  config_hash=np.array(run.config.config_hash()), seeds=np.asarray(run.seeds, dtype=np.int64))
    if run.best_scores.size:
        arrays.update(format=np.array(FORMAT), best_scores=run.best_scores.astype(np.float32),
                      best_projected=run.best_projected.astype(np.float32),
                      **{f"at_best_{k}": np.asarray(run.at_best[k], dtype=np.float64) for k in AT_BEST})
    else:
        arrays["format"] = np.array(1)

    meta = {"kind": run.kind, "head": run.head, "variant": run.variant, "seeds": [int(s) for s in run.seeds],
            "config_hash": run.config.config_hash(), "config": run.config.to_dict(), **run.provenance}
    names = [path.name, f"{run.key}.json"]
    fresh = [folder / f".{name}.{os.getpid()}.new" for name in names]
    try:
        with open(fresh[0], "wb") as handle:
            np.savez_compressed(handle, **arrays)
        fresh[1].write_text(json.dumps(meta, indent=2, default=list) + "\n", encoding="utf-8")
        with _locked(folder):
            _sweep_dead_writers(folder)
            # Until the manifest names the new pair, the previous one stays readable under NAME.prev, so a
            # save interrupted at any point leaves a pair the manifest vouches for (check_integrity).
            for name in names:
                _keep_previous(folder / name)
            for new, name in zip(fresh, names):
                os.replace(new, folder / name)
            files = read_manifest(folder)
            files.update({name: _sha256(folder / name) for name in names})
            _write_manifest(folder, files)
            for name in names:
                (folder / f"{name}{PREVIOUS}").unlink(missing_ok=True)
    finally:
        for new in fresh:
            new.unlink(missing_ok=True)
    return path


def _sweep_dead_writers(folder: Path) -> None:
    """Remove the temporary files (``.NAME.PID.new``, ``.NAME.PID.tmp``) of writers killed mid-save.

    Every writer names its temporaries with its process id; one whose process no longer runs will never
    finish them. Called under the folder's lock, so no live writer's manifest update is touched."""
    for path in folder.glob(".*"):
        parts = path.name.rsplit(".", 2)
        if len(parts) != 3 or parts[2] not in ("new", "tmp") or not parts[1].isdigit():
            continue
        if not _alive(int(parts[1])):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _keep_previous(path: Path) -> None:
    """Make ``path.prev`` the current content of ``path`` (a hard link, or a copy where links fail)."""
    previous = path.with_name(f"{path.name}{PREVIOUS}")
    previous.unlink(missing_ok=True)
    if not path.is_file():
        return
    try:
        os.link(path, previous)
    except OSError:
        atomic_write(previous, lambda target: shutil.copyfile(path, target))


def retrain_command(key: str) -> str:
    """The command that replaces a refused stored run."""
    return f"`attnlib run sst --only {key} --retrain` (add --store DIR to store it)"


def _refuse(key: str, why: str) -> StoredRunError:
    return StoredRunError(f"stored run {key} refused: {why}; retrain it with {retrain_command(key)}")


def check_stored(kind: str, head: str, variant: str, folder: str | Path | None = None) -> list[int]:
    """The seeds of a setting's stored run that may be served, after the checks that need no arrays.

    [] when there is no stored run of the setting, or when it is stale (trained with another config hash
    than the setting's preset now has: retraining it is expected). :class:`StoredRunError`, one line naming
    the files and the ``--retrain`` command, when files are there but fail their sha256 (corrupted, edited,
    an interrupted write) or name another setting (a mixed-up file): such a store is never silently
    replaced by a retrained run.
    """
    found, _ = store_dir(folder)
    key = f"{kind}_{head}_{variant}"
    if found is None or not any((found / f"{key}.{ext}{suffix}").is_file()
                                for ext in ("npz", "json") for suffix in ("", PREVIOUS)):
        return []
    npz_path, json_path = check_integrity(found, key)
    try:
        meta = json.loads(json_path.read_text())
        with np.load(npz_path, allow_pickle=False) as npz:
            names = {field: str(npz[field]) if field in npz.files else None
                     for field in ("kind", "head", "variant", "config_hash")}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise _refuse(key, f"cannot read {npz_path} or {json_path} ({error})") from None
    asked = {"kind": kind, "head": head, "variant": variant}
    for where, path, values in (("sidecar", json_path, meta), ("npz", npz_path, names)):
        named = {field: values.get(field) for field in asked}
        if named != asked:
            raise _refuse(key, f"its {where} {path} names setting {'_'.join(map(str, named.values()))}, not {key} "
                               "(another setting's file)")
    if names["config_hash"] != meta.get("config_hash"):
        raise _refuse(key, f"{npz_path} has config hash {names['config_hash']}, its sidecar {json_path} "
                           f"{meta.get('config_hash')}")
    if meta.get("config_hash") != preset(kind, head, variant).config_hash():
        return []
    return [int(s) for s in meta.get("seeds", [])]


def load_run(kind: str, head: str, variant: str, folder: str | Path | None = None, config=None) -> SSTRun:
    """The stored run of a setting, after the integrity and identity checks (:class:`StoredRunError` if one
    fails); ``config`` is the configuration it must have been trained with (default: the setting's preset)."""
    config = config or preset(kind, head, variant)
    folder = _folder(folder)
    key = f"{kind}_{head}_{variant}"
    if not any((folder / f"{key}.npz{suffix}").is_file() for suffix in ("", PREVIOUS)):
        raise StoredRunError(f"no stored run {key} in {folder}")
    npz_path, json_path = check_integrity(folder, key)
    try:
        meta = json.loads(json_path.read_text())
        with np.load(npz_path, allow_pickle=False) as npz:
            z = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise _refuse(key, f"cannot read it ({error})") from None
    for field, asked in (("kind", kind), ("head", head), ("variant", variant)):
        for where, value in (("sidecar", meta.get(field)), ("npz", str(z[field]) if field in z else None)):
            if value != asked:
                raise _refuse(key, f"its {where} says {field} {value!r}, not {asked!r} (another setting's file)")
    if str(z["config_hash"]) != meta.get("config_hash"):
        raise _refuse(key, f"the npz has config hash {z['config_hash']}, its sidecar {meta.get('config_hash')}")
    if meta.get("config_hash") != config.config_hash():
        raise _refuse(key, f"trained with config hash {meta.get('config_hash')}, the setting now has "
                           f"{config.config_hash()} (stale: retrain it)")
    seeds = [int(s) for s in meta.get("seeds", [])]
    if z["seeds"].tolist() != seeds or z["loss"].shape[1] != len(seeds) or z["final_test_accuracy"].shape != (len(seeds),):
        raise _refuse(key, f"its arrays do not have one column per seed of {seeds}")
    fmt = int(z.get("format", 1))
    width = projected_width(config, N_CLASSES[kind])
    if fmt >= 2 and z["best_projected"].shape[2] != width:
        got = z["best_projected"].shape[2]
        raise _refuse(key, f"its first layer has {got} columns, {HEADS[head]} has {width} hidden units" if head == "TL"
                      else f"its final layer has {got} classes, {kind} has {width}")
    shift = pd.DataFrame(z["shift"], columns=[str(c) for c in z["shift_columns"]]) if z["shift"].size else pd.DataFrame()
    for col in ("word_id", "snapshot", "seed_index", "seed"):
        if col in shift:
            shift[col] = shift[col].astype(np.int64)
    provenance = {k: v for k, v in meta.items() if k not in ("kind", "head", "variant", "seeds", "config")}
    arrays = {name: z[name] for name in ARRAYS if name in z}
    for name in ("scores", "norms", "f7_weights"):
        arrays[name] = arrays[name].astype(np.float32)
    extra = {}
    if fmt >= 2:
        extra = {"best_scores": z["best_scores"], "best_projected": z["best_projected"],
                 "at_best": {k: z[f"at_best_{k}"] for k in AT_BEST}}
    return SSTRun(kind=kind, head=head, variant=variant, config=config, seeds=seeds,
                  word_names=[str(w) for w in z["word_names"]], shift=shift, provenance=provenance, source="stored",
                  store_format=fmt, **arrays, **extra)


def select_seeds(run: SSTRun, seeds: Sequence[int]) -> SSTRun:
    """The run restricted to ``seeds`` (all of which it must have), in that order."""
    index = [list(run.seeds).index(int(s)) for s in seeds]
    if index == list(range(len(run.seeds))):
        return run
    out = copy.copy(run)
    out.seeds = [int(s) for s in seeds]
    for name in ("loss", "dev_loss", "test_accuracy_curve", "pad_weight"):
        value = getattr(run, name)
        setattr(out, name, value[:, index] if value.size else value)
    for name in ("scores", "norms", "f7_weights"):
        value = getattr(run, name)
        setattr(out, name, value[:, index] if value.size else value)
    for name in ("top", "final_test_accuracy", "stopped_epoch", "best_epoch", "query_norm", "best_scores",
                 "best_projected"):
        value = getattr(run, name)
        setattr(out, name, value[index] if value.size else value)
    out.at_best = {k: np.asarray(v)[index] for k, v in run.at_best.items()}
    if not run.shift.empty:
        out.shift = pd.concat([run.shift[run.shift.seed_index == old].assign(seed_index=new)
                               for new, old in enumerate(index)], ignore_index=True)
    return out


# --------------------------------------------------------------------------- seeds stored


def stored_seeds(kind: str, head: str, variant: str, folder: str | Path | None = None) -> list[int]:
    """Seeds of the stored run of a setting whose config hash matches the preset ([] if none or stale);
    a stored run that fails its sha256 or names another setting raises (see :func:`check_stored`)."""
    return check_stored(kind, head, variant, folder)
