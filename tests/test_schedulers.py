"""Same bytes whatever runs the work: the caller's torch thread count does not change a result, and a sweep
on a real Dask cluster (2 worker processes on the loopback address) gives what the local run gives."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch

from attnlib import train as engine
from attnlib.config import ModelConfig, SyntheticDataConfig, TrainConfig, sst_preset
from attnlib.data import generate_synthetic, sst

HAVE_SST = not sst.missing_files(sst.shared_data_dir())
needs_sst = pytest.mark.skipif(not HAVE_SST, reason="needs the pinned SST files beside the checkout (no download in tests)")

SST_EPOCHS = 200
"""Epochs of the SST5 Attn-FC comparison: the float32 loss curves of 1 and 2 threads parted within these."""


def arrays(run) -> dict[str, np.ndarray]:
    """Every array and table of a result, by name (dataclass fields), tables as their values' arrays."""
    found = {name: value for name, value in vars(run).items() if isinstance(value, np.ndarray)}
    found.update({name: value.to_numpy() for name, value in vars(run).items() if isinstance(value, pd.DataFrame)})
    return found


def assert_same_bytes(first, second) -> None:
    a, b = arrays(first), arrays(second)
    assert a.keys() == b.keys() and a
    different = [name for name in a if a[name].tobytes() != b[name].tobytes()]
    assert not different, f"arrays that differ between thread counts: {different}"


def on_threads(count: int, function, *args, **kwargs):
    """``function(*args, **kwargs)`` with the caller's torch thread count at ``count`` (as a scheduler sets it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        result = function(*args, **kwargs)
        assert torch.get_num_threads() == count  # the caller's setting is given back
        return result
    finally:
        torch.set_num_threads(before)


@needs_sst
def test_an_sst_setting_is_the_same_bytes_on_one_and_two_threads() -> None:
    """SST5 Attn-FC (the paper's setting, its first epochs): trained and reduced to the stored arrays
    (at_best's products included) on a caller's 1 and 2 threads, byte for byte."""
    from attnlib.experiments.sst.training import train_setting

    config = sst_preset("SST5", "FC", "default").replace(train={"epochs": SST_EPOCHS})
    one, two = (on_threads(n, train_setting, "SST5", "FC", "default", (0, 1), config=config) for n in (1, 2))
    assert_same_bytes(one, two)


def test_huge_epochs_run_on_a_fixed_thread_count(monkeypatch) -> None:
    """Epochs past SMALL_EPOCH run on HUGE_EPOCH_THREADS, whatever the caller had: the same bytes from 1 and 3."""
    monkeypatch.setattr(engine, "SMALL_EPOCH", 0)
    data = SyntheticDataConfig(n_nontopic=1000, n_train=300, n_test=20)
    datasets = [generate_synthetic(data, seed) for seed in (0, 1)]
    model, config = ModelConfig(head="TC", d_embed=20), TrainConfig(epochs=10, dtype="float32")
    seen = []
    real = engine.cpu_threads

    def spy(device, size):
        seen.append(size)
        return real(device, size)

    monkeypatch.setattr(engine, "cpu_threads", spy)
    one, three = (on_threads(n, engine.train, model, config, datasets, [0, 1], trace_words=range(8), quiet=True)
                  for n in (1, 3))
    assert seen and all(size >= engine.SMALL_EPOCH for size in seen)
    assert_same_bytes(one, three)


# --------------------------------------------------------------------------- a real Dask cluster

SHORT_EPOCHS = 60
"""Epochs of every setting trained on the cluster: enough to move every array, few enough for a short test."""
FAST_SST = [("SST2", "FC", "default"), ("SST5", "FC", "default")]
"""Attn-FC settings (exact span reduction: the fast ones) of the SST sweep."""


@pytest.fixture(scope="module")
def cluster():
    """A ``distributed.LocalCluster`` on the loopback address: 2 worker processes of 1 thread each, the
    setting in which torch runs on one thread (a local process runs on every core)."""
    distributed = pytest.importorskip("distributed", reason="the Dask test needs attnlib[dask] (make venv installs it)")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, protocol="tcp") as local:
        assert all(address.startswith("tcp://127.0.0.1:") for address in local.scheduler_info["workers"])
        yield local


def short_sst_preset(kind: str, head: str, variant: str):
    return sst_preset(kind, head, variant).replace(train={"epochs": SHORT_EPOCHS})


def synthetic_tasks() -> list[tuple]:
    """A grid of synthetic settings (head x learning rate), each a task of attnlib.train.train."""
    data = SyntheticDataConfig(n_nontopic=300, n_train=120, n_test=40)
    datasets = [generate_synthetic(data, seed) for seed in (0, 1)]
    return [(ModelConfig(head=head), TrainConfig(lr=lr, epochs=SHORT_EPOCHS, dtype="float32"), datasets, [0, 1])
            for head in ("FC", "TC", "TL") for lr in (0.1, 0.3)]


def on_dask(cluster, function, *args, **kwargs):
    """``function(*args, **kwargs)`` inside ``joblib.parallel_config(backend="dask")`` with a client of
    ``cluster``, checking that the cluster ran ``tasks`` tasks."""
    import joblib
    from distributed import Client, get_task_stream

    with Client(cluster) as client, get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        result = function(*args, **kwargs)
    workers = {record["worker"] for record in stream.data}
    return result, workers


def test_a_synthetic_grid_on_dask_is_the_same_bytes_as_locally(cluster) -> None:
    from attnlib.sweep import sweep

    tasks = synthetic_tasks()
    local = sweep(engine.train, tasks, quiet=True)
    remote, workers = on_dask(cluster, sweep, engine.train, tasks, quiet=True)
    assert workers == set(cluster.scheduler_info["workers"])  # both workers took tasks
    for here, there in zip(local, remote, strict=True):
        assert_same_bytes(here, there)


@pytest.fixture(scope="module")
def local_sst():
    """The fast Attn-FC settings, shortened, trained and reduced as attnlib stores them, in this process."""
    from attnlib.experiments.sst.training import train_setting
    from attnlib.sweep import sweep

    return sweep(train_setting, sst_tasks())


def sst_tasks() -> list[tuple]:
    return [(*setting, (0, 1), True, short_sst_preset(*setting)) for setting in FAST_SST]


@needs_sst
def test_an_sst_sweep_on_dask_is_the_same_bytes_as_locally(cluster, local_sst) -> None:
    """The fast Attn-FC settings through attnlib.sweep, as run_sst sweeps them."""
    from attnlib.experiments.sst.training import train_setting
    from attnlib.sweep import sweep

    remote, workers = on_dask(cluster, sweep, train_setting, sst_tasks())
    assert len(workers) == 2
    for here, there in zip(local_sst, remote, strict=True):
        assert_same_bytes(here, there)


@needs_sst
def test_run_sst_with_scheduler_is_the_same_bytes_as_locally(cluster, local_sst, tmp_path, monkeypatch) -> None:
    """``attnlib run sst --retrain --only ... --scheduler ADDRESS`` writes the tables of the local runs (the
    settings shortened on the workers)."""
    from distributed import Client

    from attnlib import cli
    from attnlib.experiments.sst import training as sst_train
    from attnlib.experiments.sst.experiment import SSTExperimentResult

    with Client(cluster) as client:
        client.run(setattr, sst_train, "sst_preset", short_sst_preset)
    written = []
    monkeypatch.setattr(cli, "_write_outputs", lambda folder, tables, *rest, **kw: written.append(tables))
    only = ",".join("_".join(setting) for setting in FAST_SST)
    assert cli.main(["run", "sst", "--retrain", "--only", only, "--seeds", "2", "--quiet", "--out", str(tmp_path),
                     "--scheduler", cluster.scheduler_address]) == 0
    local = SSTExperimentResult(dict(zip(FAST_SST, local_sst))).tables()
    assert [name for name in written[0] if name != "checks"] == [*local]  # checks.csv: every run writes it
    for name in local:  # every table, but how long the training took
        timeless = [column for column in local[name] if not str(column).startswith("wall_time")]
        pd.testing.assert_frame_equal(local[name][timeless], written[0][name][timeless], check_exact=True)


def test_scheduler_is_refused_where_nothing_is_swept(capsys) -> None:
    from attnlib.cli import main

    assert main(["run", "synthetic", "--scheduler", "tcp://127.0.0.1:8786", "--out", "/nonexistent-never-written"]) == 2
    assert capsys.readouterr().err == "attnlib: --scheduler applies to sst, not to synthetic\n"


def test_a_scheduler_that_does_not_answer_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("distributed", reason="needs attnlib[dask]")
    import socket

    from attnlib import sweep as sweeps
    from attnlib.cli import main

    monkeypatch.setattr(sweeps, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    code = main(["run", "sst", "--retrain", "--only", "SST2_FC_default", "--quiet", "--out", str(tmp_path / "out"),
                 "--scheduler", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"attnlib: cannot use the Dask scheduler at tcp://127.0.0.1:{port}: ")
    assert len(err.splitlines()) == 1 and not (tmp_path / "out" / "sst").exists()
