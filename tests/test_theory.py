"""The score / embedding-norm identity along gradient flow, |q|^2 (|v_w|^2 - |v_w(0)|^2) = 2 (phi_m(s_w) - phi_m(s_w(0)))
with phi_m(s) = s + (e^s - 1) / m: formulas, and how well trained models follow it."""

from __future__ import annotations

import numpy as np
import pytest

from attnlib import theory
from attnlib.config import RunConfig, SyntheticDataConfig, TrainConfig
from attnlib.experiments import EXPERIMENTS

SMALL = RunConfig(data=SyntheticDataConfig(n_topics=2), train=TrainConfig(epochs=2000))
"""The paper's synthetic setting with two topics and 2000 epochs: every head still reaches zero test error and
a training loss near 0.002, in about a third of the time (the paper's setting is the synthetic chapter's)."""


def test_curve_values_from_the_paper() -> None:
    """sqrt(2 phi_20(s)) at s = 1, 3, 4, 5, worked out by hand from phi_m(s) = s + (e^s - 1) / m (e.g.
    sqrt(2 (1 + (e - 1) / 20)) = 1.47), and the matching attention weights."""
    s = np.array([1.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(theory.sen_norm(s, 20), [1.47, 2.81, 3.66, 4.97], atol=0.01)
    np.testing.assert_allclose(theory.attention_weight(s, 20), [0.12, 0.50, 0.73, 0.88], atol=0.01)
    assert theory.sen_norm(0.0, 20) == 0.0


def test_general_form_reduces_and_is_consistent() -> None:
    s, s0, n0, m = 2.3, 0.4, 0.7, 13
    assert theory.sen_norm(s, m, s0, n0) ** 2 == pytest.approx(n0**2 + 2 * (theory.phi(s, m) - theory.phi(s0, m)))
    assert theory.sen_norm(s, m, 0.0, 0.0) == pytest.approx(np.sqrt(2 * (s + np.expm1(s) / m)))
    assert theory.sen_norm(-5.0, m) == 0.0  # clipped below the root


def test_larger_m_lowers_the_curve() -> None:
    """For s > 0 the curve decreases with m: the term (e^s - 1) / m of phi_m(s) is positive and shrinks."""
    s = np.linspace(0.1, 5, 20)
    assert np.all(theory.sen_norm(s, 5) > theory.sen_norm(s, 20)) and np.all(theory.sen_norm(s, 20) > theory.sen_norm(s, 40))


@pytest.fixture(scope="module")
def small_run():
    """All three models, seed 0, in the :data:`SMALL` setting."""
    return EXPERIMENTS["synthetic"].run(config=SMALL, seeds=[0], quiet=True)


def test_every_model_reaches_full_test_accuracy(small_run) -> None:
    summary = small_run.summary()
    assert list(summary.model) == ["Attn-FC", "Attn-TC", "Attn-TL"]
    assert np.all(summary.test_accuracy == 1.0)
    assert np.all(summary.final_train_loss < 0.05)


def test_identity_holds_on_trained_models(small_run) -> None:
    """N1: measured |q||v| stays within 0.02 of sqrt(2 phi_20(s)) for every topic word and epoch."""
    residual = small_run.summary().sen_max_abs_residual
    assert np.all(residual < 0.02), residual.tolist()
    curves = small_run.curves()
    assert curves.score.max() > 1.0  # the trajectories went somewhere
