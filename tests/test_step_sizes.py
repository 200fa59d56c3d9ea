"""N6: how far training at step size eta is from gradient flow. The extrapolation to eta -> 0 and the
shares it gives on sequences whose limit is known, then the study itself on a tiny problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attnlib import cache
from attnlib.config import HEADS, RunConfig, SyntheticDataConfig, TrainConfig
from attnlib.experiments import (
    EXPERIMENTS,
    base,
    gradient_flow_gap,
    observed_order,
    richardson_limit,
    step_size_study,
)
from attnlib.experiments.base import select_entries
from attnlib.experiments.numerical_checks import numerical_checks

TINY = RunConfig(data=SyntheticDataConfig(n_nontopic=200, n_train=120, n_test=40), train=TrainConfig(epochs=400))
"""Small enough to train four step sizes in seconds; 400 epochs at 0.1 take the topic scores to about 0.5."""


def test_richardson_limit_is_exact_for_a_first_order_error() -> None:
    h = np.array([0.4, 0.2, 0.1])
    assert richardson_limit(h, 0.3 + 2.0 * h) == pytest.approx(0.3, abs=1e-12)
    assert richardson_limit([0.3, 0.1], [0.3 + 0.6, 0.3 + 0.2]) == pytest.approx(0.3, abs=1e-12)  # ratio 3
    assert richardson_limit(h[::-1], (0.3 + 2.0 * h)[::-1]) == pytest.approx(0.3, abs=1e-12)  # any order given


def test_richardson_limit_uses_the_two_smallest_steps_and_the_order() -> None:
    """With a second-order term left, first-order extrapolation from halved steps h and h/2 leaves
    2 v(h/2) - v(h) = v0 - c h^2 / 2: smaller for the smaller pair. Told the order, it is exact."""
    h = np.array([0.2, 0.1, 0.05])
    values = 0.3 + 2.0 * h + 5.0 * h**2
    assert richardson_limit(h, values) == pytest.approx(0.3 - 5.0 * 0.1**2 / 2, abs=1e-12)
    assert richardson_limit(h, 0.3 + 5.0 * h**2, order=2.0) == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize("steps, values", [([0.1], [0.2]), ([0.1, 0.1], [0.2, 0.3]), ([0.1, -0.05], [0.2, 0.1]),
                                           ([0.1, 0.05], [0.2])])
def test_richardson_limit_refuses_what_it_cannot_extrapolate(steps, values) -> None:
    with pytest.raises(ValueError, match="richardson_limit"):
        richardson_limit(steps, values)


@pytest.mark.parametrize("p", [1.0, 2.0, 0.5])
def test_observed_order_recovers_the_power(p) -> None:
    h = np.array([0.4, 0.2, 0.1, 0.05])
    assert observed_order(h, 1.0 + 3.0 * h**p) == pytest.approx(p, abs=1e-9)


def test_observed_order_needs_geometric_steps_and_is_nan_when_not_monotone() -> None:
    with pytest.raises(ValueError, match="geometrically"):
        observed_order([0.3, 0.2, 0.1], [1.3, 1.2, 1.1])
    assert np.isnan(observed_order([0.4, 0.2, 0.1], [1.0, 1.2, 1.1]))


def test_gradient_flow_gap_splits_the_gap_between_step_size_and_assumptions() -> None:
    """A gap 0.5 + 0.1 eta: gradient flow keeps 0.5; at eta = 0.1 the step size adds 0.01 of 0.51."""
    h = np.array([0.2, 0.1, 0.05, 0.025])
    flow = gradient_flow_gap(pd.DataFrame({"lr": h, "max_abs_residual": 0.5 + 0.1 * h}), lr=0.1)
    assert flow.gap == pytest.approx(0.51) and flow.floor == pytest.approx(0.5)
    assert flow.floor_coarse == pytest.approx(0.5) and flow.order == pytest.approx(1.0)
    assert flow.floor_change == pytest.approx(0.0, abs=1e-12)
    assert flow.step_part == pytest.approx(0.01)
    assert flow.step_share == pytest.approx(0.01 / 0.51) and flow.assumption_share == pytest.approx(0.5 / 0.51)
    with pytest.raises(ValueError, match="no run at lr = 0.3"):
        gradient_flow_gap(pd.DataFrame({"lr": h, "max_abs_residual": 0.5 + 0.1 * h}), lr=0.3)


@pytest.fixture(scope="module")
def tiny_steps() -> pd.DataFrame:
    return step_size_study(learning_rates=(0.4, 0.2, 0.1, 0.05), config=TINY)


def test_the_study_holds_eta_times_epochs_at_the_main_runs_value(tiny_steps) -> None:
    assert list(tiny_steps.lr) == [0.4, 0.2, 0.1, 0.05]
    assert list(tiny_steps.epochs) == [100, 200, 400, 800]  # 0.1 x 400 = 40 for every step size
    assert np.all(tiny_steps.final_topic_score > 0.3)  # the scores left 0 (they start there)


def test_the_residual_shrinks_with_the_step_size_at_first_order(tiny_steps) -> None:
    """Gradient descent is a first-order discretisation of the flow: the gap falls as eta falls, each
    halving removing about half of what the previous one removed, towards a positive floor (A2)."""
    gaps = tiny_steps.max_abs_residual.to_numpy()
    assert np.all(np.diff(gaps) < 0), gaps
    flow = gradient_flow_gap(tiny_steps, lr=0.1)
    assert 0.5 < flow.order < 2.0, flow
    assert 0.0 < flow.floor < gaps.min()
    assert flow.floor_change < 0.1 * (gaps.max() - flow.floor)  # the extrapolation has settled
    assert 0.0 < flow.step_share < 1.0 and flow.step_share + flow.assumption_share == pytest.approx(1.0)


def test_n6_studies_the_widest_gap_and_its_main_step_is_the_main_run() -> None:
    """The result's N6 study trains the head with the largest gap; its row at the config's own step size
    is that head's main run (the same run, from the cache)."""
    result = EXPERIMENTS["synthetic"].run(config=TINY, seeds=[0], quiet=True)
    summary = result.summary()
    widest = summary.loc[summary.sen_max_abs_residual.idxmax()]
    steps = result.step_sizes
    assert set(steps.model) == {widest.model} and HEADS[result.widest_gap_head] == widest.model
    assert steps[np.isclose(steps.lr, 0.1)].max_abs_residual.iloc[0] == widest.sen_max_abs_residual


def test_n6_of_several_seeds_reads_its_main_step_from_the_main_run(monkeypatch) -> None:
    """With several seeds, N6's row at the config's own step size is the first seed's entry of the main run,
    not trained again, and the study is the one trained from scratch, bit for bit."""
    config = TINY.replace(train={"epochs": 100})
    result = EXPERIMENTS["synthetic"].run(config=config, seeds=[0, 1], quiet=True, heads=("FC",))
    calls = []
    real = base.cached_train
    monkeypatch.setattr(base, "cached_train", lambda *args, **kwargs: calls.append(args[1].lr) or real(*args, **kwargs))
    first = select_entries(result.runs["Attn-FC"], slice(0, 1))
    reused = step_size_study(learning_rates=(0.2, 0.1), config=config, main_run=first)
    assert calls == [0.2]
    with cache.disabled():
        fresh = step_size_study(learning_rates=(0.2, 0.1), config=config)
    assert calls == [0.2, 0.2, 0.1]
    pd.testing.assert_frame_equal(reused, fresh, check_exact=True)
    other_seed = step_size_study(learning_rates=(0.1,), seed=1, config=config, main_run=first)
    assert calls[-1] == 0.1 and len(calls) == 4  # a main run of another seed is not used
    assert other_seed.max_abs_residual.iloc[0] != reused.max_abs_residual.iloc[1]


def test_n6_passes_on_the_study_in_any_row_order_and_names_the_step_share(tiny_steps) -> None:
    flow = gradient_flow_gap(tiny_steps, lr=0.1)
    for steps in (tiny_steps, tiny_steps.iloc[::-1]):
        n6 = numerical_checks(0.0, steps, lr=0.1)[1]
        assert n6.id == "N6" and n6.reproduced and n6.total == len(steps) - 1
        assert f"{flow.step_share:.1%}" in n6.note and f"{flow.floor:.4f}" in n6.note
    shuffled = tiny_steps.assign(max_abs_residual=tiny_steps.max_abs_residual.to_numpy()[[0, 2, 1, 3]])
    assert not numerical_checks(0.0, shuffled, lr=0.1)[1].reproduced
