"""F4 ablation on a small problem: freezing by configuration, metrics keys, checks that follow the numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from attnlib import paper
from attnlib.config import SyntheticDataConfig, ablation_preset
from attnlib.experiments import EXPERIMENTS
from attnlib.experiments.ablation import (
    AblationResult,
    ablation_checks,
    ablation_configs,
    published_comparison,
)

SMALL = SyntheticDataConfig(n_nontopic=300, n_train=120, n_test=40)
RUNS = ("Attn-FC", "Attn-FC-KF", "Attn-FC-EF", "Attn-TC", "Attn-TC-KF", "Attn-TC-EF")


@pytest.fixture(scope="module")
def result() -> AblationResult:
    base = ablation_preset().replace(data=vars(SMALL), train={"epochs": 400})
    return EXPERIMENTS["ablation"].run(config=base, seeds=(0, 1), record_every=1, quiet=True)


def test_variants_are_configuration_only() -> None:
    configs = ablation_configs("TC")
    assert list(configs) == ["Attn-TC", "Attn-TC-KF", "Attn-TC-EF"]
    assert [c.train.freeze for c in configs.values()] == [(), ("keys",), ("embeddings",)]
    assert all(c.model.embed_init_std == 0.1 and c.train.epochs == 6000 for c in configs.values())


def test_keys_frozen_scores_are_exactly_zero_throughout(result: AblationResult) -> None:
    for name in ("Attn-FC-KF", "Attn-TC-KF"):
        run = result.runs[name]
        assert np.all(run.traced_scores == 0.0) and np.all(run.final_scores == 0.0)
        # uniform attention: the embeddings still learn, so the norms move
        assert np.abs(run.traced_norms[-1] - run.traced_norms[0]).max() > 1e-3


def test_embeddings_frozen_norms_are_constant(result: AblationResult) -> None:
    for name in ("Attn-FC-EF", "Attn-TC-EF"):
        run = result.runs[name]
        assert np.array_equal(run.traced_norms, np.broadcast_to(run.traced_norms[0], run.traced_norms.shape))
        assert run.traced_scores.std() > 0  # the keys still move


def test_all_six_runs_share_data_query_and_initial_embeddings(result: AblationResult) -> None:
    assert list(result.runs) == list(RUNS)
    first = result.runs["Attn-FC"]
    for run in result.runs.values():
        np.testing.assert_allclose(run.query_norm, first.query_norm, rtol=0, atol=0)
        np.testing.assert_allclose(run.traced_norms[0], first.traced_norms[0], rtol=1e-12)
        assert run.loss.shape == (401, 2)


def test_tables_have_the_documented_columns(result: AblationResult) -> None:
    assert {"run", "model", "variant", "seed", "epoch", "loss"} <= set(result.losses().columns)
    curves = result.curves()
    assert {"run", "seed", "epoch", "word", "score", "norm", "theory", "residual"} <= set(curves.columns)
    # N2: the general-init prediction starts exactly at each word's measured start
    start = curves[curves.epoch == 0]
    np.testing.assert_allclose(start.theory, start.norm, rtol=1e-12)
    means = result.topic_means()
    assert len(means) == 6 * 2 * 401
    assert {"run", "seed", "epoch", "score", "norm", "loss"} <= set(means.columns)


def test_metrics_have_every_key_the_cli_writes(result: AblationResult) -> None:
    metrics = result.metrics()
    for run in RUNS:
        for key in ("final_train_loss", "final_topic_score_mean", "final_topic_norm_mean"):
            value = metrics[f"{run}.{key}"]
            assert isinstance(value, float) and math.isfinite(value)
    assert metrics["seeds"] == [0, 1] and isinstance(metrics["attnlib_version"], str)
    json.dumps(metrics)  # plain Python types only
    summary = result.summary()
    assert metrics["Attn-TC-KF.final_train_loss"] == pytest.approx(
        summary.loc[summary.run == "Attn-TC-KF", "final_train_loss"].mean())


def test_checks_follow_from_the_numbers(result: AblationResult) -> None:
    checks = ablation_checks(result)
    assert list(checks.columns) == ["experiment", "criterion", "measured", "passed", "total", "reproduced"]
    assert (checks.passed <= checks.total).all() and list(checks.reproduced) == list(checks.passed == checks.total)
    assert checks.reproduced.map(type).eq(bool).all()
    s = result.summary().set_index(["run", "seed"])
    verdict = lambda text: bool(checks.loc[checks.criterion.str.contains(text, regex=False), "reproduced"].item())  # noqa: E731
    assert verdict("Attn-FC: full-model loss") == bool(s.loc["Attn-FC"].final_train_loss.max() < 0.05)
    assert verdict("Attn-TC-EF: final loss >=") == bool(s.loc["Attn-TC-EF"].final_train_loss.min() >= 1.2)
    assert verdict("Attn-FC-KF: every score exactly 0") is True
    assert verdict("Attn-TC-EF: topic |q||v| constant") is True
    excess = (s.loc["Attn-FC-KF"].final_topic_norm_mean - s.loc["Attn-FC"].final_topic_norm_mean).min()
    assert verdict("Attn-FC-KF: final topic |q||v| above") == bool(excess > 0)
    lo, hi = 0.3, 0.9
    kf = s.loc["Attn-FC-KF"].final_train_loss
    assert verdict("Attn-FC-KF: final loss in") == bool(kf.min() >= lo and kf.max() <= hi)


def test_a_check_fails_when_its_number_says_so(result: AblationResult) -> None:
    """Make the KF run's loss dip below the full model's at the last epoch: the verdict must flip."""
    broken = AblationResult(result.config, result.seeds, dict(result.runs), result.datasets)
    kf = broken.runs["Attn-TC-KF"]
    loss = kf.loss.copy()
    loss[-1] = broken.runs["Attn-TC"].loss[-1] - 1e-3
    broken.runs["Attn-TC-KF"] = type(kf)(**{**vars(kf), "loss": loss})
    checks = ablation_checks(broken).set_index("criterion")
    assert not checks.loc[[c for c in checks.index if c.startswith("Attn-TC-KF: loss above")][0], "reproduced"]


def test_published_values_are_complete(result: AblationResult) -> None:
    assert set(paper.ABLATION_FINAL) == set(RUNS)
    table = published_comparison(result)
    assert list(table.index) == list(RUNS)
    assert isinstance(table, pd.DataFrame) and table.loc["Attn-FC-KF", "norm (published)"] == 9.0


def test_published_outside_names_values_beyond_our_range(result, monkeypatch) -> None:
    """Only a published value outside our seeds' range (widened by the margin) is named; a published loss of 0
    is left to the checks."""
    from attnlib.experiments import ablation

    monkeypatch.setattr(ablation, "PUBLISHED_MARGIN", 1e9)
    assert ablation.published_outside(result) == []
    monkeypatch.setattr(ablation, "PUBLISHED_MARGIN", -1e9)
    everything = ablation.published_outside(result)
    zero_losses = [run for run in result.runs if paper.ABLATION_FINAL[run]["loss"] == 0.0]
    assert len(everything) == 3 * len(result.runs) - len(zero_losses)
    assert not {f"{run} loss" for run in zero_losses} & set(everything)
