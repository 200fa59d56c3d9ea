"""The experiment registry and the shared plumbing: every experiment has the same surface; the grid
helper trains each call once, stacks on request and gives what separate calls give; the long-table helper."""

from __future__ import annotations

import inspect
from importlib import import_module

import numpy as np
import pytest

from attnlib.config import RunConfig, SyntheticDataConfig, TrainConfig
from attnlib.data import generate_synthetic
from attnlib.experiments import EXPERIMENTS, MODULES, base, long_table, train_grid
from attnlib.experiments.base import Check, ExperimentResult, checks_frame, select_entries
from attnlib.experiments.beyond.breaking import breaking_cases, share_topic_word
from attnlib.experiments.beyond.sweeps import identity_sweeps

SMALL = RunConfig(data=SyntheticDataConfig(n_nontopic=100, n_train=60, n_test=20), train=TrainConfig(epochs=40))


def test_every_experiment_is_registered_with_the_surface() -> None:
    modules = [import_module(f"attnlib.experiments.{name}") for name in MODULES]
    assert list(EXPERIMENTS) == [module.NAME for module in modules]
    for name, entry in EXPERIMENTS.items():
        assert entry.name == name
        assert isinstance(entry.summary, str) and entry.summary
        assert entry.preset is None or isinstance(entry.preset(), RunConfig)
        parameters = inspect.signature(entry.run).parameters
        assert list(parameters)[:3] == ["config", "seeds", "quiet"], name
        assert parameters["config"].default is None and parameters["seeds"].default is None
        assert parameters["quiet"].default is True, name  # one default for every experiment
        # what the entry declares reaches run and the config it changes
        assert {option.dest for option in entry.options} | set(entry.card_options) <= set(parameters), name
        assert not entry.seeds or len(entry.seeds) <= entry.max_seeds
        assert all(isinstance(place, int) for place in entry.claims.values())
        for field in entry.sets_itself:
            section, attribute = field.split(".")
            assert hasattr(getattr(entry.preset(), section), attribute), (name, field)


@pytest.mark.parametrize("name", ["synthetic", "ablation"])
def test_a_registered_run_returns_a_result_with_the_surface(name) -> None:
    result = EXPERIMENTS[name].run(config=EXPERIMENTS[name].preset().replace(data=vars(SMALL.data),
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


def test_train_grid_trains_the_same_setting_once(monkeypatch) -> None:
    seeds = [0, 1]
    plain = [generate_synthetic(SMALL.data, s) for s in seeds]
    again = [generate_synthetic(SMALL.data, s) for s in seeds]  # the same data in other objects
    faster = SMALL.replace(train={"lr": 0.2})
    calls = []
    real = base.cached_train
    monkeypatch.setattr(base, "cached_train", lambda *args, **kwargs: calls.append(args[1]) or real(*args, **kwargs))
    runs = train_grid({"a": (SMALL, plain), "b": (SMALL, again), "c": (faster, plain)}, seeds, plain[0].topic_words)
    assert calls == [SMALL.train, faster.train]
    assert runs["a"] is runs["b"] and runs["c"] is not runs["a"]
    assert list(runs) == ["a", "b", "c"]


def test_the_studies_beyond_share_the_presets_run(monkeypatch) -> None:
    small = SMALL.replace(train={"epochs": 20})
    calls = []
    real = base.cached_train
    monkeypatch.setattr(base, "cached_train", lambda *args, **kwargs: calls.append(args[:2]) or real(*args, **kwargs))
    sweeps = identity_sweeps([0], heads=("FC",), ms=(5, 20), query_stds=(0.3, 1.0), epochs=20, base=small)
    assert len(calls) == 3  # m = 5, m = 20 (also query std 0.3), query std 1
    assert sweeps.runs[("m", "Attn-FC", 20.0)][0] is sweeps.runs[("query_std", "Attn-FC", 0.3)][0]
    breaking = breaking_cases([0], heads=("FC",), cases=("baseline",), epochs=20, base=small)
    assert calls[-1] == calls[1]  # the breaking baseline makes the same call as the m = 20 sweep
    np.testing.assert_array_equal(breaking.runs[("baseline", "Attn-FC")].final_scores,
                                  sweeps.runs[("m", "Attn-FC", 20.0)][0].final_scores)


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


def test_fc_first_and_the_initial_loss_gap_read_the_summary() -> None:
    import pandas as pd

    from attnlib.experiments.synthetic import fc_first, initial_loss_gap

    summary = pd.DataFrame({"model": ["Attn-FC", "Attn-TC", "Attn-TL"] * 2, "seed": [0, 0, 0, 1, 1, 1],
                            "epochs_to_train_loss_0.1": [900, 2000, 3000, 2500, 2000, 3000],
                            "initial_train_loss": [np.log(4), np.log(4) + 0.02, np.log(4) - 0.03] * 2})
    assert fc_first(summary).to_dict() == {0: True, 1: False}
    np.testing.assert_allclose(initial_loss_gap(summary, 4), [0, 0.02, 0.03] * 2, atol=1e-12)
