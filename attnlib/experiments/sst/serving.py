"""Serve or retrain: the one policy that decides, per SST (or TREC) setting, whether a stored run is served
or the setting is trained, used by the experiment (``attnlib run sst``), the book and the TREC experiment.

* :func:`load_or_train`: one setting, served when a stored run matches its preset and has the seeds, else
  trained (a stored run that fails its checks raises; it is retrained over only when asked);
* :func:`available_settings`: which settings a build runs, a slow one
  (:data:`~attnlib.experiments.sst.settings.SLOW_SETTINGS`) only when a stored run has some of the seeds;
* :func:`run_sst`: several settings, as :func:`load_or_train` decides, swept (:func:`attnlib.sweep.sweep`);
* :func:`serve_checked`: what the SST chapter runs: the settings :func:`available_settings` allows, each as
  :func:`load_or_train` decides, every stored one verified and every retrained one compared with the store;
* :func:`plan_runs` and :func:`run_planned`: what ``attnlib run sst`` does with each setting, saying so.

Storage (:mod:`~attnlib.experiments.sst.storage`) only reads and writes; training
(:mod:`~attnlib.experiments.sst.training`) only trains.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd

from attnlib.config import sst_preset
from attnlib.data.sst import SSTDataNotFound, candidate_dirs, find_data_dir, verify_files
from attnlib.experiments.sst.analysis import SSTResult
from attnlib.experiments.sst.runs import SSTRun
from attnlib.experiments.sst.settings import SETTINGS, SLOW_SETTINGS, SST_SEEDS
from attnlib.experiments.sst.storage import (
    StoredRunError,
    load_run,
    preset,
    save_run,
    select_seeds,
    store_dir,
    stored_hash,
    stored_seeds,
)
from attnlib.experiments.sst.training import train_setting
from attnlib.experiments.sst.verification import describe, require_same, require_verified, verify_run, verify_stored
from attnlib.sweep import on_cluster, sweep

# --------------------------------------------------------------------------- one setting, several


def missing_seeds(setting: tuple[str, str, str], seeds: Sequence[int], folder: str | Path | None = None) -> list[int]:
    """The rule under every decision here: the seeds of ``seeds`` that the stored run of ``setting`` (in
    ``folder``, see :func:`~attnlib.experiments.sst.storage.store_dir`) lacks, all of them when none is stored or
    it is stale. A setting is served when none is missing; a stored run that fails its checks raises."""
    have = set(stored_seeds(*setting, folder=folder))
    return [int(s) for s in seeds if int(s) not in have]


def available_settings(settings=None, folder: str | Path | None = None, seeds: Sequence[int] | None = None):
    """(settings to run, settings skipped): a slow setting (:data:`~attnlib.experiments.SLOW_SETTINGS`)
    is run only when a matching stored run has at least one of ``seeds`` (default: the book's seeds)."""
    seeds = sorted({int(s) for s in (SST_SEEDS if seeds is None else seeds)})
    run, skipped = [], []
    for setting in SETTINGS if settings is None else settings:
        stored = len(missing_seeds(setting, seeds, folder)) < len(seeds)
        (skipped if setting in SLOW_SETTINGS and not stored else run).append(tuple(setting))
    return run, skipped


def load_or_train(kind: str, head: str, variant: str, seeds: Sequence[int] | None = None,
                  folder: str | Path | None = None, retrain=(), quiet: bool = True, use_store: bool = True) -> SSTRun:
    """Serve the stored run (from ``folder``, see :func:`~attnlib.experiments.sst.storage.store_dir`) when its
    config hash matches the current preset and it has every one of ``seeds``, else retrain.

    A stored run that fails its checks raises :class:`StoredRunError`; it is never replaced by a
    retrained one unless asked: settings listed in ``retrain``, or all with ``use_store=False``.
    """
    seeds = tuple(SST_SEEDS if seeds is None else (int(s) for s in seeds))
    if use_store and (kind, head, variant) not in {tuple(r) for r in retrain}:
        if not missing_seeds((kind, head, variant), seeds, folder):
            return select_seeds(load_run(kind, head, variant, folder), seeds)
    return train_setting(kind, head, variant, seeds, quiet=quiet, config=preset(kind, head, variant))


def run_sst(settings: Iterable[tuple[str, str, str]] = SETTINGS, seeds: Sequence[int] = SST_SEEDS,
            folder: Path | None = None, retrain: Iterable[tuple[str, str, str]] = (),
            quiet: bool = True, n_jobs: int | None = None) -> SSTResult:
    """Every setting, served from storage when it matches (see :func:`load_or_train`), else retrained.

    The settings are independent tasks of :func:`attnlib.sweep.sweep`: ``n_jobs`` local workers, or a
    Dask/Ray cluster through joblib's backend context; each setting's seeds still train in one batched run.
    """
    settings = [tuple(s) for s in settings]
    runs = sweep(load_or_train, settings, n_jobs=n_jobs, seeds=tuple(seeds), folder=folder,
                 retrain=tuple(tuple(r) for r in retrain), quiet=quiet)
    return SSTResult(dict(zip(settings, runs)))

def serve_checked(seeds: Sequence[int] = SST_SEEDS, retrain: Iterable[tuple[str, str, str]] = (),
                  skip_unstored_slow: bool = True, settings: Sequence[tuple[str, str, str]] | None = None):
    """What the SST chapter runs: ``settings`` (default every one), less the slow ones without a stored run with
    some of ``seeds`` unless ``skip_unstored_slow`` is False (:func:`available_settings`), each served or
    trained as :func:`load_or_train` decides (``retrain``: settings trained even when stored).

    A setting retrained although a stored run has the seeds must give that run again
    (:func:`~attnlib.experiments.sst.verification.require_same` raises beyond the tolerances), and every stored
    run with the seeds, served or not, passes :func:`~attnlib.experiments.sst.verification.verify_stored` (a
    failed check raises). Returns the runs by setting, the settings skipped, one provenance row per setting
    run (source, training wall time, git commit, config hash; for a retrained stored setting how it compares)
    and the verification reports."""
    seeds = tuple(int(s) for s in seeds)
    settings = list(SETTINGS if settings is None else settings)
    to_run, skipped = available_settings(settings, seeds=seeds) if skip_unstored_slow else (settings, [])
    runs, rows, reports = {}, [], []
    for setting in to_run:
        stored = not missing_seeds(setting, seeds)
        run = load_or_train(*setting, seeds=seeds, retrain=retrain)
        row = {"setting": "_".join(setting), "source": run.source,
               "wall time of the training (s)": run.provenance.get("wall_time_s"),
               "git commit": str(run.provenance.get("git_commit", ""))[:10],
               "config hash": run.provenance.get("config_hash")}
        if run.source == "retrained" and stored:
            old = load_run(*setting)
            require_same(old, run)
            row.update({"same stopping epochs as stored": bool(np.array_equal(old.stopped_epoch, run.stopped_epoch)),
                        "max |test acc. diff| vs stored": float(np.max(np.abs(old.final_test_accuracy
                                                                                - run.final_test_accuracy)))})
        if stored:
            reports.append(require_verified(verify_stored(*setting)))
        runs[setting] = run
        rows.append(row)
    return runs, skipped, pd.DataFrame(rows), reports


# --------------------------------------------------------------------------- what `attnlib run sst` does


def _sst_setting(kind: str, head: str, variant: str, seeds: tuple[int, ...], store: Path | None, quiet: bool):
    """Train one SST setting, a task of ``attnlib run sst``; with ``store``, write it to STORE/sst at once."""
    run = train_setting(kind, head, variant, seeds, quiet=quiet)
    if store:
        save_run(run, Path(store) / "sst")
    return run


def _data_note() -> str | None:
    """Before serving stored runs: None when the SST files are found and match their pins; one line when
    there are none to check against (no folder named, none found; a run never downloads them). A named
    folder that lacks a file, or a file that does not match its pin, fails the command here."""
    try:
        verify_files(find_data_dir(download=False))
    except SSTDataNotFound:
        looked = ", ".join(str(path) for _, path in candidate_dirs())
        return (f"no SST data found (looked in {looked}): stored runs are served after their integrity and "
                f"patience checks only; `attnlib verify-data` fetches the files for the data checks")
    return None


def _serve_sst(setting: tuple[str, str, str], seeds: list[int], folder: Path, where: str):
    """A stored run after its checks (one line each way; a failed check raises StoredRunError)."""
    run = load_run(*setting, folder)
    report = require_verified(verify_run(run, replay=False))
    print(f"{'_'.join(setting)}: stored in {where}; checks: {describe(report)}", flush=True)
    return select_seeds(run, seeds)


def run_planned(seeds: tuple[int, ...], quiet: bool, only: str | None, store: Path | None, folder: Path | None,
                 retrain: bool, jobs: int | None, scheduler: str | None = None) -> dict[tuple[str, str, str], SSTRun]:
    """``attnlib run sst``: serve or train every setting as :func:`plan_runs` says; the runs by setting."""
    retrain = bool(store) or retrain  # --store always retrains what it stores
    store_folder, where = store_dir(folder)
    if folder is not None and not store_folder.is_dir():
        raise StoredRunError(f"--store-dir {store_folder} is not a folder")
    plan, settings, notes = plan_runs(seeds, store_folder, where, only.split(",") if only else None, retrain)
    for note in notes + ([_data_note()] if plan else []):
        if note:
            print(note, flush=True)
    served = {setting: _serve_sst(setting, served_seeds, store_folder, where) for setting, served_seeds in plan.items()}
    # settings are independent: --jobs N trains N at once, --scheduler on a Dask cluster (see attnlib.sweep)
    with on_cluster(scheduler) if scheduler and settings else nullcontext():
        trained = dict(zip(settings, sweep(_sst_setting, settings, n_jobs=jobs, seeds=seeds, store=store,
                                           quiet=quiet)))
    runs = {s: served[s] if s in served else trained[s] for s in SETTINGS if s in served or s in trained}
    if not runs:
        raise StoredRunError(f"no SST setting to run: every one asked for was skipped (stored runs: {where})")
    for setting, run in runs.items():
        print(f"{'_'.join(setting)}: {run.source}, seeds {', '.join(map(str, run.seeds))}, "
              f"test accuracy {run.final_test_accuracy.mean():.4f}", flush=True)
    return runs


def training_estimate(setting: tuple[str, str, str], folder: Path | None, n_seeds: int) -> str:
    """How long training ``n_seeds`` seeds of a setting takes, from the stored run's wall time."""
    path = folder / f"{'_'.join(setting)}.json" if folder else None
    try:
        meta = json.loads(path.read_text()) if path and path.is_file() else {}
    except ValueError:
        meta = {}
    wall, stored = meta.get("wall_time_s"), len(meta.get("seeds", []))
    if not wall or not stored:
        return "training time unknown (no stored run to estimate it from)"
    return (f"about {wall * n_seeds / stored / 60:.0f} min to train {n_seeds} seed{'s' * (n_seeds > 1)} "
            f"(the stored run's {stored} seeds took {wall:.0f} s on {meta.get('cpu_threads', '?')} CPU threads)")


def plan_runs(seeds: Sequence[int], folder: Path | None, where: str, only: Sequence[str] | None = None,
              retrain: bool = False):
    """What ``attnlib run sst`` does with each setting: (serve, train, notes).

    ``serve`` maps a setting to the stored seeds served; ``train`` lists the settings trained (fast ones,
    or any named in ``only``); ``notes`` are the lines saying what was skipped or why a slow one trains.
    A slow setting (:data:`~attnlib.experiments.SLOW_SETTINGS`) not named in ``only`` is never
    trained: its stored seeds are served and the others skipped, with the command and the time to train them.
    """
    seeds = [int(s) for s in seeds]
    serve, train, notes = {}, [], []
    for setting in SETTINGS:
        key = "_".join(setting)
        if only and key not in only:
            continue
        # a stored run that fails its sha256 or names another setting raises here: never retrained over silently
        missing = missing_seeds(setting, seeds, folder) if folder and not retrain else list(seeds)
        stale = bool(folder) and not retrain and stored_hash(*setting, folder) not in (
            None, sst_preset(*setting).config_hash())
        if stale and missing:
            notes.append(f"{key}: the stored run in {where} was trained with config hash "
                         f"{stored_hash(*setting, folder)}, the setting now has {sst_preset(*setting).config_hash()} "
                         "(stale): it is not served")
        if not missing:
            serve[setting] = seeds
        elif setting in SLOW_SETTINGS and not only:
            if len(missing) < len(seeds):
                serve[setting] = [s for s in seeds if s not in missing]
            plural = len(missing) > 1
            why = ("--retrain retrains slow settings only when --only names them" if retrain
                   else f"no stored run with {'them' if plural else 'it'} in {where}" if folder else where)
            notes.append(f"{key}: seed{'s' * plural} {', '.join(map(str, missing))} skipped: {why}, and Attn-TC is "
                         f"slow, {training_estimate(setting, folder, len(missing))}; train with "
                         f"`attnlib run sst --only {key} --seeds {len(seeds)}`")
        else:
            train.append(setting)
            if setting in SLOW_SETTINGS:
                notes.append(f"{key}: training {len(seeds)} seeds ("
                             f"{'asked for' if retrain else f'no stored run with them in {where}' if folder else where}), "
                             f"{training_estimate(setting, folder, len(seeds))}")
    return serve, train, notes
