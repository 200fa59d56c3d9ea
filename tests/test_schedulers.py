"""Same bytes whatever runs the work: the caller's torch thread count does not change a result."""

from __future__ import annotations

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
    from attnlib.experiments.sst_train import train_setting

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
