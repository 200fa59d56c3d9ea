"""N5 and N6: checks of the numerics rather than of the paper's claims.

N5 trains Attn-TL with full keys in float64 and measures how far the keys leave the query's direction
(exactly 0 in exact arithmetic). N6 asks how far the main runs, at the paper's step size, are from
gradient flow, for which the identity is exact: the same run at smaller steps with the step size times
the number of epochs held fixed, extrapolated to a step size of 0 (Richardson extrapolation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from attnlib import theory
from attnlib.config import RunConfig, SyntheticDataConfig, synthetic_preset
from attnlib.data import generate_synthetic
from attnlib.experiments.base import Check, train_grid
from attnlib.train import TrainResult, train

PARALLEL_TOLERANCE = 1e-8
"""N5: relative deviation of the keys from the query direction in float64 (exactly 0 in exact arithmetic)."""

STEP_SIZES = (0.1, 0.05, 0.025)
"""N6's step sizes: the paper's 0.1 and two halvings below it, the fewest that extrapolate to lr -> 0 and
show the error's order (at fixed lr * epochs the smallest trains 4 times the main run's epochs)."""


def step_size_study(learning_rates: Sequence[float] = STEP_SIZES, lr_times_epochs: float | None = None,
                    head: str = "FC", seed: int = 0, config: RunConfig | None = None,
                    data: SyntheticDataConfig | None = None, main_run: TrainResult | None = None) -> pd.DataFrame:
    """N6: the identity's largest residual for several step sizes at fixed lr * epochs.

    Gradient flow is the limit lr -> 0; what remains as lr shrinks is due to the assumptions, not to
    the discrete steps (:func:`gradient_flow_gap` extrapolates it). The default problem is the main
    runs': ``config`` (the synthetic preset) with ``data`` replacing its data config if given, and
    lr * epochs = the config's (0.1 x 5000 for the preset), so the run at the config's own step size is
    the main run (the same cache entry). A run at a smaller step records the traced words every
    ``record_every * lr_main / lr`` epochs (rounded), so that for steps that divide the main one, as the
    defaults do, every row's residual is the largest over the same instants of the flow as the main run's.

    ``main_run``, the main run of ``seed`` alone (e.g. its entry of a run of several seeds: an entry of a
    batch is bit for bit the run of its seed alone), gives the row at the config's own step size instead
    of training that run again; a run of another config, data or seed is not used.
    """
    base = (config or synthetic_preset()).replace(model={"head": head})
    if data is not None:
        base = RunConfig(data=data, model=base.model, train=base.train)
    base_lr, base_every = base.train.lr, base.train.record_every
    total = base_lr * base.train.epochs if lr_times_epochs is None else lr_times_epochs
    dataset = generate_synthetic(base.data, seed)
    settings = {}
    for lr in learning_rates:
        every = max(1, int(round(base_every * base_lr / lr)))
        settings[lr] = (base.replace(train={"lr": lr, "epochs": int(round(total / lr)), "record_every": every}),
                        [dataset])
    known = {}
    if main_run is not None and data is None and main_run.seeds == [seed]:
        known = {lr: main_run for lr, (setting, _) in settings.items()
                 if (main_run.model, main_run.train_config) == (setting.model, setting.train)
                 and np.array_equal(main_run.traced_words, dataset.topic_words)}
    runs = {**known, **train_grid({lr: s for lr, s in settings.items() if lr not in known}, [seed], dataset.topic_words)}
    rows = []
    for lr, run in ((lr, runs[lr]) for lr in settings):
        residual = np.abs(run.traced_norms - theory.sen_norm(run.traced_scores, base.data.m)).max()
        rows.append({"model": base.model.name, "lr": lr, "epochs": run.train_config.epochs, "max_abs_residual": residual,
                     "final_topic_score": run.traced_scores[-1].mean()})
    return pd.DataFrame(rows)


def richardson_limit(steps: Sequence[float], values: Sequence[float], order: float = 1.0) -> float:
    """The limit h -> 0 of values v(h) = v0 + c h^order + o(h^order), from the two smallest steps.

    With h1 > h2 and r = h1 / h2 the leading term cancels in (r^order v(h2) - v(h1)) / (r^order - 1)
    (Richardson extrapolation); for halved steps and order 1 that is 2 v(h2) - v(h1).
    """
    h, v = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if h.shape != v.shape or h.size < 2 or np.any(h <= 0) or len(np.unique(h)) != h.size:
        raise ValueError(f"richardson_limit needs two or more distinct positive steps with a value each (got {steps!r})")
    small = np.argsort(h)[:2]
    (h2, v2), (h1, v1) = (h[small[0]], v[small[0]]), (h[small[1]], v[small[1]])
    r = (h1 / h2) ** order
    return float((r * v2 - v1) / (r - 1.0))


def observed_order(steps: Sequence[float], values: Sequence[float]) -> float:
    """The order p of v(h) = v0 + c h^p seen on the three smallest of geometrically spaced steps:
    log((v1 - v2) / (v2 - v3)) / log(h1 / h2) (1 for a first-order error such as gradient descent's)."""
    h, v = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if h.shape != v.shape or h.size < 3:
        raise ValueError(f"observed_order needs three or more steps with a value each (got {steps!r})")
    order = np.argsort(h)[:3][::-1]
    (h1, h2, h3), (v1, v2, v3) = h[order], v[order]
    if not np.isclose(h1 / h2, h2 / h3):
        raise ValueError(f"observed_order needs geometrically spaced steps (got {h1:g}, {h2:g}, {h3:g})")
    ratio = (v1 - v2) / (v2 - v3) if v2 != v3 else np.nan
    return float(np.log(ratio) / np.log(h1 / h2)) if ratio > 0 else float("nan")  # nan: not monotone


@dataclass(frozen=True)
class GradientFlowGap:
    """How far a run at step size ``lr`` is from gradient flow, from :func:`step_size_study`'s table."""

    lr: float
    """The step size judged (the main runs')."""
    gap: float
    """The identity's largest residual at ``lr``."""
    floor: float
    """The residual extrapolated to lr -> 0 (first order, the two smallest steps): what gradient flow
    would leave, the part due to the assumptions (A2)."""
    floor_coarse: float | None
    """The same extrapolation from the next pair of steps (None with two steps): how settled it is."""
    order: float | None
    """The observed order of the step-size error on the three smallest steps (None with two steps)."""

    @property
    def floor_change(self) -> float | None:
        """How far the two extrapolations lie apart (None with two steps): how settled the limit is."""
        return None if self.floor_coarse is None else abs(self.floor - self.floor_coarse)

    @property
    def step_part(self) -> float:
        """The part of the gap at ``lr`` due to the discrete steps."""
        return self.gap - self.floor

    @property
    def step_share(self) -> float:
        """The share of the gap at ``lr`` due to the discrete steps (the rest is due to A2)."""
        return self.step_part / self.gap

    @property
    def assumption_share(self) -> float:
        """The share of the gap at ``lr`` that gradient flow keeps: due to A2, not to the step size."""
        return self.floor / self.gap


def gradient_flow_gap(steps: pd.DataFrame, lr: float = 0.1) -> GradientFlowGap:
    """:class:`GradientFlowGap` at step size ``lr`` (a row of ``steps``) from every step size in ``steps``."""
    h, v = steps.lr.to_numpy(dtype=float), steps.max_abs_residual.to_numpy(dtype=float)
    at = np.flatnonzero(np.isclose(h, lr))
    if not at.size:
        raise ValueError(f"gradient_flow_gap: the study has no run at lr = {lr:g} (it has {sorted(h.tolist())})")
    by_step = np.argsort(h)
    coarse = richardson_limit(h[by_step[1:3]], v[by_step[1:3]]) if h.size >= 3 else None
    order = observed_order(h, v) if h.size >= 3 else None
    return GradientFlowGap(lr=float(h[at[0]]), gap=float(v[at[0]]), floor=richardson_limit(h, v),
                           floor_coarse=coarse, order=order)


def keys_parallel_deviation(seed: int = 0, epochs: int | None = None, config: RunConfig | None = None) -> float:
    """N5: train Attn-TL with full keys (no score reduction), float64; the largest relative deviation
    of any key from the query direction at the end. TL trains the most parameters of the three heads."""
    config = (config or synthetic_preset()).replace(model={"head": "TL", "reduce_keys": False},
                                                    train={"dtype": "float64"})
    if epochs is not None:
        config = config.replace(train={"epochs": epochs})
    # only the final keys are read: record the test split once, at the end, not every epoch (the same training)
    config = config.replace(train={"record_every": config.train.epochs})
    dataset = generate_synthetic(config.data, seed)
    run = train(config.model, config.train, [dataset], [seed], quiet=True, keep_params=True)
    keys, query = run.params.keys[0].double(), run.params.query[0].double()
    along = (keys @ query)[:, None] * query[None, :] / (query @ query)
    norms = keys.norm(dim=1)
    moved = norms > 0
    return float(((keys - along).norm(dim=1)[moved] / norms[moved]).max())


def numerical_checks(deviation: float, steps: pd.DataFrame, lr: float = 0.1) -> list[Check]:
    """N5 (keys parallel to q) and N6 (the gap shrinks with the step size; the note says how much of the
    gap at the main runs' step size ``lr`` the step size accounts for, when ``steps`` has a run there)."""
    steps = steps.sort_values("lr", ascending=False)
    model = steps.model.iloc[0] if "model" in steps else "Attn-FC"
    gaps = steps.max_abs_residual.to_numpy()
    rates = ", ".join(f"η={step:g}: {g:.4f}" for step, g in zip(steps.lr, gaps))
    note = "it shrinks towards a floor set by A2, not to 0 (see the theory chapter)"
    if np.isclose(steps.lr, lr).any():
        flow = gradient_flow_gap(steps, lr)
        note = (f"extrapolated to η → 0 it leaves {flow.floor:.4f} (A2); the step size's share of the gap at "
                f"η = {flow.lr:g} is {flow.step_share:.1%} (see the theory chapter)")
    return [Check("N5", "keys stay parallel to the query (full keys, float64)",
                  "exactly (the keys start at 0 and move only along q)",
                  f"largest relative deviation {deviation:.1e}", f"≤ {PARALLEL_TOLERANCE:g}",
                  int(deviation <= PARALLEL_TOLERANCE), 1, 1),
            Check("N6", f"{model}: the identity's gap shrinks with the step size at fixed η·T", "gradient-flow limit",
                  rates, "decreasing as η decreases", int((np.diff(gaps) < 0).sum()), len(gaps) - 1, len(gaps) - 1,
                  note=note)]
