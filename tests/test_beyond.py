"""The studies beyond the paper on a small problem: documented columns, dips, bounds, sweeps, fits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from attnlib import theory
from attnlib.config import SyntheticDataConfig, synthetic_preset
from attnlib.data import generate_synthetic
from attnlib.experiments import beyond
from attnlib.experiments.beyond import (
    BeyondResult,
    breaking_cases,
    capacity_study,
    growth_study,
    identity_sweeps,
    share_topic_word,
    suppression_study,
    topic_attention,
)
from attnlib.experiments.beyond.suppression import _dip
from attnlib.theory import p4_score_dip_bound, phi_inverse

SMALL = SyntheticDataConfig(n_nontopic=300, n_train=120, n_test=40)
BASE = synthetic_preset().replace(data=vars(SMALL))
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def suppression():
    return suppression_study(SEEDS, heads=("FC", "TC"), epochs=150, base=BASE)


@pytest.fixture(scope="module")
def sweeps():
    return identity_sweeps(SEEDS, heads=("FC",), ms=(5, 20), query_stds=(0.3, 1.0), epochs=150, base=BASE)


@pytest.fixture(scope="module")
def breaking():
    return breaking_cases(SEEDS, heads=("FC",), epochs=150, base=BASE)


@pytest.fixture(scope="module")
def capacity():
    return capacity_study(SEEDS, widths=(2, 10), epochs=150, record_every=10, base=BASE)


@pytest.fixture(scope="module")
def growth():
    return growth_study(SEEDS, epochs=600, record_every=10, base=BASE)


def test_phi_inverse_and_the_p4_bound() -> None:
    values = np.array([-0.5, -1e-6, 0.0, 0.3, 4.0])
    for m in (5, 20):
        np.testing.assert_allclose(theory.phi(phi_inverse(values, m), m), values, atol=1e-12)
    # small initial norm n0: the bound is about n0^2 / (2 (1 + 1/m))
    n0 = 1e-3
    assert p4_score_dip_bound(n0, 20) == pytest.approx(n0**2 / (2 * (1 + 1 / 20)), rel=1e-5)
    assert p4_score_dip_bound(0.0, 20) == pytest.approx(0.0, abs=1e-14)


def test_suppression_columns_and_dips_within_the_bound(suppression) -> None:
    dips = suppression.dips()
    assert {"model", "init_std", "seed", "word", "initial_norm", "score_dip", "score_dip_epoch",
            "score_recovery_epoch", "norm_dip", "norm_dip_relative", "norm_dip_epoch", "norm_recovery_epoch",
            "p4_bound", "dip_over_bound", "norm_dip_from_identity"} <= set(dips.columns)
    assert len(dips) == 2 * 2 * len(SEEDS) * 8
    assert (dips.score_dip >= 0).all() and (dips.norm_dip >= 0).all()
    # dips exist for some topic words (an initial embedding the classifier sends to another topic)
    assert (dips.score_dip > 0).any()
    dipped = dips[dips.score_dip > 0]
    assert dipped.score_dip_epoch.notna().all() and (dipped.dip_over_bound < 1.0).all()
    no_dip = dips[dips.score_dip == 0]
    assert no_dip.score_dip_epoch.isna().all()
    # the larger init gives dips orders of magnitude deeper
    by_init = dips.groupby("init_std").score_dip.max()
    assert by_init[0.1] > 100 * by_init[1e-3]
    summary = suppression.summary()
    assert {"model", "init_std", "score_dips", "norm_dips", "max_score_dip", "max_dip_over_bound",
            "latest_dip_epoch", "latest_recovery_epoch", "max_abs_residual"} <= set(summary.columns)
    counted = dips.groupby(["model", "init_std"]).score_dip.apply(lambda d: int((d > 0).sum()))
    for row in summary.itertuples():
        assert row.score_dips == counted[(row.model, row.init_std)]
    curves = suppression.curves()
    assert {"model", "init_std", "seed", "epoch", "word", "score", "norm", "theory", "residual"} <= set(curves.columns)
    assert curves.epoch.max() == 150 and curves.epoch.nunique() == 151  # every epoch recorded


def test_a_synthetic_dip_is_measured_exactly() -> None:
    path, epochs = np.array([0.0, -0.2, -0.5, -0.1, 0.0, 0.4]), np.arange(6) * 10
    assert _dip(path, epochs) == (0.5, 20.0, 40.0)
    depth, at, back = _dip(np.array([0.0, 0.1, 0.3]), np.arange(3))
    assert depth == 0.0 and math.isnan(at) and math.isnan(back)


def test_sweeps_columns_and_the_family(sweeps) -> None:
    curves = sweeps.curves()
    assert {"sweep", "value", "model", "seed", "m", "epoch", "word", "score", "norm", "raw_norm", "query_norm",
            "theory", "residual", "residual_m20"} <= set(curves.columns)
    np.testing.assert_allclose(curves.raw_norm * curves.query_norm, curves.norm, rtol=1e-12)
    summary = sweeps.summary()
    assert {"sweep", "value", "model", "seed", "m", "query_norm", "max_abs_residual", "max_abs_residual_m20",
            "final_topic_score_mean", "epochs_to_train_loss_0.1"} <= set(summary.columns)
    m_rows = summary[summary.sweep == "m"]
    assert sorted(m_rows.value.unique()) == [5.0, 20.0] and (m_rows.m == m_rows.value).all()
    # each m follows its own curve better than the m = 20 curve (a smaller m lifts the curve: phi_m(s) = s + (e^s - 1) / m)
    five = m_rows[m_rows.value == 5.0]
    assert (five.max_abs_residual < five.max_abs_residual_m20).all()
    q_rows = summary[summary.sweep == "query_std"].set_index(["value", "seed"]).query_norm
    np.testing.assert_allclose(q_rows.loc[1.0].to_numpy(), q_rows.loc[0.3].to_numpy() / 0.3, rtol=1e-12)


def test_breaking_cases_columns_and_constructions(breaking) -> None:
    summary = breaking.summary()
    assert {"case", "violates", "model", "seed", "max_abs_residual", "final_abs_residual", "final_relative_residual",
            "max_abs_residual_default_form", "final_topic_score_mean", "final_train_loss",
            "query_norm_change"} <= set(summary.columns)
    assert list(dict.fromkeys(summary.case)) == list(beyond.BREAKING_CASES)
    by_case = summary.set_index(["case", "seed"])
    # only the trainable query moves q
    assert (by_case.loc["trainable query"].query_norm_change.abs() > 0).all()
    assert (by_case.drop(index="trainable query", level=0).query_norm_change == 0).all()
    # the large learning rate covers the same flow time in fewer epochs
    assert breaking.runs[("large learning rate", "Attn-FC")].loss.shape[0] == 16
    # the shared case leaves out the word that no longer occurs
    assert 2 not in set(breaking.curves().query("case == 'shared topic word'").word)
    # the std 0.1 init starts far from the default-form curve but on its own general-init curve
    init = by_case.loc["embedding init std 0.1"]
    assert (init.max_abs_residual_default_form > 5 * init.max_abs_residual).all()


def test_share_topic_word_moves_only_the_topic_word() -> None:
    data = generate_synthetic(SMALL, 0)
    shared = share_topic_word(data)
    assert 2 not in shared.topic_of_word and set(shared.topic_words) == {0, 1, 3, 4, 5, 6, 7}
    for name, corpus in data.splits.items():
        new = shared.splits[name]
        np.testing.assert_array_equal(new.labels, corpus.labels)
        for old, changed in zip(corpus.sentences, new.sentences):
            np.testing.assert_array_equal(changed, np.where(old == 2, 0, old))
    labels_of_zero = {y for s, y in zip(shared.train.sentences, shared.train.labels) if 0 in s}
    assert labels_of_zero == {0, 1}


def test_capacity_columns_and_attention(capacity) -> None:
    summary = capacity.summary()
    assert list(dict.fromkeys(summary.classifier)) == ["Attn-FC", "Attn-TC", "Attn-TL (h=2)", "Attn-TL (h=10)"]
    assert {"classifier", "head", "hidden_units", "trainable_head_parameters", "seed", "final_train_loss",
            "topic_score_mean", "topic_score_min", "topic_score_max", "topic_norm_mean", "attention_mean",
            "attention_min", "epochs_to_train_loss_0.1"} <= set(summary.columns)
    assert summary.set_index("classifier").trainable_head_parameters.to_dict() == {
        "Attn-FC": 0, "Attn-TC": 40, "Attn-TL (h=2)": 2 * 10 + 2 + 2 * 4 + 4, "Attn-TL (h=10)": 10 * 10 + 10 + 40 + 4}
    # attention weights are weights, and at zero scores every word gets 1 / (m + 1)
    assert ((summary.attention_mean > 0) & (summary.attention_mean < 1)).all()
    data = capacity.datasets[0]
    uniform = topic_attention(np.zeros(len(data.vocab)), data)
    np.testing.assert_allclose(uniform, 1 / (SMALL.m + 1))
    curves = capacity.curves()
    assert {"classifier", "seed", "epoch", "score", "norm", "loss"} <= set(curves.columns)


def test_growth_fits_recover_known_slopes(growth) -> None:
    fits = growth.fits()
    assert {"seed", "first_epoch", "last_epoch", "score_power", "norm_power", "loss_power", "norm_per_log_t",
            "score_per_loglog_t"} <= set(fits.columns)
    assert len(fits) == len(SEEDS) * 3
    # the fitting code on curves of known shape
    fake = beyond.GrowthResult(growth.config, growth.seeds, growth.run)
    t = growth.run.record_epochs.astype(float)
    t[0] = 1.0
    scores = np.broadcast_to((2.0 * np.log(np.log(t + 2)))[:, None, None], growth.run.traced_scores.shape)
    norms = np.broadcast_to((0.5 * t**0.25)[:, None, None], growth.run.traced_norms.shape)
    loss = np.broadcast_to((3.0 / (np.arange(growth.run.loss.shape[0]) + 1.0))[:, None], growth.run.loss.shape)
    fake.run = type(growth.run)(**{**vars(growth.run), "traced_scores": scores.copy(), "traced_norms": norms.copy(),
                                   "loss": loss.copy()})
    fitted = fake.fits()
    np.testing.assert_allclose(fitted.norm_power, 0.25, rtol=1e-6)
    np.testing.assert_allclose(fitted.loss_power, -1.0, atol=0.02)


def test_metrics_are_flat_and_json(suppression, sweeps, breaking, capacity, growth) -> None:
    result = BeyondResult(BASE, list(SEEDS), suppression, sweeps, breaking, capacity, growth)
    metrics = result.metrics()
    json.dumps(metrics)
    assert metrics["seeds"] == list(SEEDS) and "attnlib_version" in metrics
    assert "breaking.trainable_query.Attn-FC.max_abs_residual" in metrics
    assert "sweep.m=5.Attn-FC.max_abs_residual" in metrics
    assert "capacity.Attn-TL (h=10).attention_mean" in metrics
    assert "growth.last_window.score_per_loglog_t" in metrics
    tables = result.tables()
    assert all(len(table) > 0 for table in tables.values())


def test_figure_names_survive_save_figure(suppression, sweeps, breaking, capacity, growth) -> None:
    """save_figure replaces the suffix, so a dot in a figure name would make two figures collide."""
    figures = BeyondResult(BASE, list(SEEDS), suppression, sweeps, breaking, capacity, growth).figures()
    assert list(figures) == ["suppression_init_std_large", "suppression_init_std_default", "identity_sweeps",
                             "identity_breaking", "capacity", "growth"]
    assert all("." not in name and callable(draw) for name, draw in figures.items())
