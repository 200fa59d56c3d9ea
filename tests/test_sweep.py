"""attnlib.sweep: the same results in the same order on one or two workers, failures named clearly."""

from __future__ import annotations

import functools

import joblib
import numpy as np
import pytest

from attnlib.sweep import SweepError, sweep


def noisy_sum(seed: int, size: int, scale: float = 1.0) -> float:
    """A deterministic function of its arguments (module level, so worker processes can import it)."""
    return float(np.random.default_rng(seed).standard_normal(size).sum() * scale)


def fail_on_three(value: int) -> int:
    if value == 3:
        raise ValueError("three is not allowed")
    return value


def test_one_and_two_workers_give_the_same_results_in_order() -> None:
    tasks = [(seed, 10 + seed) for seed in range(6)]
    serial = sweep(noisy_sum, tasks, n_jobs=1, scale=2.0)
    parallel = sweep(noisy_sum, tasks, n_jobs=2, scale=2.0)
    assert serial == parallel == [noisy_sum(s, n, scale=2.0) for s, n in tasks]


def test_the_backend_comes_from_joblibs_context() -> None:
    tasks = [(seed, 5) for seed in range(4)]
    with joblib.parallel_config(backend="threading", n_jobs=2):
        threaded = sweep(noisy_sum, tasks)
    assert threaded == sweep(noisy_sum, tasks)


def test_no_tasks_give_no_results() -> None:
    assert sweep(noisy_sum, [], n_jobs=2) == []


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_failing_task_is_named_in_the_error(n_jobs: int) -> None:
    """The error names the task and carries the original failure, also from a worker process, so the
    command line can report a data error or a divergence as its own one line."""
    with pytest.raises(SweepError, match=r"task 3 fail_on_three\(3\) failed with ValueError: three is not allowed") as info:
        sweep(fail_on_three, [(v,) for v in range(5)], n_jobs=n_jobs)
    assert type(info.value.error) is ValueError and str(info.value.error) == "three is not allowed"


def test_partials_are_named_too() -> None:
    with pytest.raises(SweepError, match=r"task 0 fail_on_three\(3\)"):
        sweep(functools.partial(fail_on_three), [(3,)])


def _served_settings() -> list[tuple[str, str, str]]:
    """Stored SST settings whose configuration still matches (so run_sst serves them without training)."""
    from attnlib.experiments import sst

    return [s for s in sst.SETTINGS if set(sst.SST_SEEDS) <= set(sst.stored_seeds(*s))]


def _sst_data_available() -> bool:
    from attnlib.data import SSTDataError
    from attnlib.data.sst import find_data_dir

    try:
        find_data_dir(download=False)
    except SSTDataError:
        return False
    return True


CHEAPEST = ("SST2", "TC", "unmasked")
"""The SST setting that trains fastest (early stopping ends it after ~150 epochs: seconds)."""


@pytest.mark.skipif(not _sst_data_available(), reason="the SST data is not available (never downloaded by tests)")
@pytest.mark.skipif(len(_served_settings()) < 2, reason="fewer than two matching stored SST runs")
def test_run_sst_gives_the_same_runs_on_two_workers() -> None:
    """One setting trained for real in each worker set-up, one served from storage, in order."""
    from attnlib.experiments.sst import run_sst

    settings = [CHEAPEST] + [s for s in _served_settings() if s != CHEAPEST][:1]
    serial = run_sst(settings, n_jobs=1, retrain=[CHEAPEST])
    parallel = run_sst(settings, n_jobs=2, retrain=[CHEAPEST])
    assert list(serial.runs) == list(parallel.runs) == settings
    assert [r.source for r in serial.runs.values()] == [r.source for r in parallel.runs.values()] == ["retrained", "stored"]
    for setting in settings:
        assert np.array_equal(serial.runs[setting].loss, parallel.runs[setting].loss, equal_nan=True)
        assert np.array_equal(serial.runs[setting].final_test_accuracy, parallel.runs[setting].final_test_accuracy)
        assert np.array_equal(serial.runs[setting].best_epoch, parallel.runs[setting].best_epoch)
