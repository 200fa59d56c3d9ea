"""The experiment registry and the shared plumbing: every experiment has the same surface; the grid
helper stacks what it can and gives what separate calls give; the long-table helper."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from attnlib.config import RunConfig, SyntheticDataConfig, TrainConfig
from attnlib.data import generate_synthetic
from attnlib.experiments import EXPERIMENTS, long_table, train_grid
from attnlib.experiments.base import Check, ExperimentResult, checks_frame, select_entries
from attnlib.experiments.beyond.breaking import share_topic_word

SMALL = RunConfig(data=SyntheticDataConfig(n_nontopic=100, n_train=60, n_test=20), train=TrainConfig(epochs=40))


def test_every_experiment_is_registered_with_the_surface() -> None:
    assert list(EXPERIMENTS) == ["synthetic", "ablation", "beyond", "sst", "performance", "trec"]
    for name, module in EXPERIMENTS.items():
        assert module.NAME == name
        assert isinstance(module.SUMMARY, str) and module.SUMMARY
        assert module.PRESET is None or isinstance(module.PRESET(), RunConfig)
        parameters = inspect.signature(module.run).parameters
        assert list(parameters)[:2] == ["config", "seeds"], name
        assert parameters["config"].default is None and parameters["seeds"].default is None


@pytest.mark.parametrize("name", ["synthetic", "ablation"])
def test_a_registered_run_returns_a_result_with_the_surface(name) -> None:
    result = EXPERIMENTS[name].run(config=EXPERIMENTS[name].PRESET().replace(data=vars(SMALL.data),
                                                                                 train={"epochs": 40}),
                                   seeds=[0, 1], quiet=True)
    assert isinstance(result, ExperimentResult) and result.seeds == [0, 1]
    assert result.tables() and all(len(t) for t in result.tables().values())
    assert result.figures() and all(callable(f) for f in result.figures().values())
    checks = result.checks() if name == "ablation" else result.checks(numerical=False)
    assert checks and all(isinstance(c, Check) for c in checks)
    metrics = result.metrics()
    assert metrics["seeds"] == [0, 1] and "attnlib_version" in metrics
    assert result.provenance()["config_hashes"]


def test_train_grid_stacks_settings_that_differ_only_in_data() -> None:
    seeds = [0, 1]
    plain = [generate_synthetic(SMALL.data, s) for s in seeds]
    shared = [share_topic_word(d) for d in plain]
    faster = SMALL.replace(train={"lr": 0.2})
    settings = {"plain": (SMALL, plain), "shared": (SMALL, shared), "faster": (faster, plain)}
    words = plain[0].topic_words
    stacked = train_grid(settings, seeds, words)
    separate = train_grid(settings, seeds, words, stack=False)
    assert list(stacked) == list(settings)
    for key in settings:
        a, b = stacked[key], separate[key]
        assert a.seeds == seeds and a.loss.shape == b.loss.shape and a.traced_scores.shape == b.traced_scores.shape
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.traced_norms, b.traced_norms, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.final_scores, b.final_scores, rtol=1e-12, atol=1e-14)
    # the two data-only settings differ (the shared word changes the training)
    assert not np.allclose(stacked["plain"].final_scores, stacked["shared"].final_scores)
    with pytest.raises(ValueError, match="datasets for 2 seeds"):
        train_grid({"bad": (SMALL, plain[:1])}, seeds, words)


def test_select_entries_keeps_the_per_entry_arrays() -> None:
    seeds = [0, 1]
    data = [generate_synthetic(SMALL.data, s) for s in seeds]
    run = train_grid({"x": (SMALL, data)}, seeds, data[0].topic_words)["x"]
    part = select_entries(run, slice(1, 2))
    assert part.seeds == [1] and part.loss.shape == (run.loss.shape[0], 1)
    np.testing.assert_array_equal(part.final_scores, run.final_scores[1:])
    np.testing.assert_array_equal(part.traced_scores, run.traced_scores[:, 1:])


def test_long_table() -> None:
    values = np.arange(6.0).reshape(2, 3)
    table = long_table({"model": "M"}, {"epoch": [0, 10], "seed": [4, 5, 6]}, {"v": values, "c": 7.0},
                       order=("seed", "epoch"))
    assert list(table.columns) == ["model", "seed", "epoch", "v", "c"]
    assert len(table) == 6 and (table.model == "M").all() and (table.c == 7.0).all()
    row = table[(table.epoch == 10) & (table.seed == 5)].iloc[0]
    assert row.v == values[1, 1]


def test_checks_frame_keeps_gated_checks() -> None:
    checks = [Check("F1", "a claim", "p", "ours", "≤ 1", 3, 3, 3), Check("F2", "b", "p", "o", "c", 1, 2, 2),
              Check("F7", "reported", "p", "o", "reported", 0, 0, 0)]
    frame = checks_frame(checks)
    assert list(frame.experiment) == ["F1", "F2"] and list(frame.reproduced) == [True, False]
    assert frame.criterion.iloc[0] == "a claim: ≤ 1" and checks[1].verdict == "partly"
