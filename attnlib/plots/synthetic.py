"""Figures F1-F3 of the synthetic experiments.

Curves over seeds show the seed-0 run as a solid line and the min-max range over seeds as a band
(the paper shows single runs, which hide the variation over seeds); ``single_run=True`` gives the paper's single-run view instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from attnlib import theory
from attnlib.plots.style import FIG_WIDTH, MODEL_COLORS, NORM_LABEL, SCORE_LABEL, THEORY_COLOR, band, use_style

if TYPE_CHECKING:
    from attnlib.experiments.synthetic import SyntheticResult


def plot_sen_curves(result: SyntheticResult, single_run: bool = False) -> plt.Figure:
    """F1: topic words' |q||v| against their score, measured vs the identity, and the residual per epoch.

    Top row: every topic word of every seed (faint), seed 0's first topic word highlighted, and the
    theory curve sqrt(2 phi_m(s)). Bottom row: the largest |residual| over topic words per epoch.
    """
    use_style()
    curves = result.curves()
    seeds = [result.seeds[0]] if single_run else result.seeds
    curves = curves[curves.seed.isin(seeds)]
    lead_seed, lead_word = result.seeds[0], int(curves.word.min())
    models = result.models
    fig, axes = plt.subplots(2, len(models), figsize=(FIG_WIDTH, 5.6),
                             gridspec_kw={"height_ratios": [2.2, 1]}, squeeze=False)
    s_grid = np.linspace(0, max(5.0, curves.score.max()), 200)
    for col, model in enumerate(models):
        color = MODEL_COLORS.get(model, "C0")
        ax = axes[0, col]
        table = curves[curves.model == model]
        words = table[(table.seed == lead_seed) & (table.word == lead_word)] if single_run else table
        for _, path in words.groupby(["seed", "word"]):
            ax.plot(path.score, path.norm, color=color, lw=0.8, alpha=0.35)
        lead = table[(table.seed == lead_seed) & (table.word == lead_word)]
        ax.plot(lead.score, lead.norm, color=color, lw=2.2, label="measured")
        ax.plot(s_grid, theory.sen_norm(s_grid, result.config.data.m), ls=":", color=THEORY_COLOR, lw=1.8,
                label=rf"theory $\sqrt{{2\varphi_{{{result.config.data.m}}}(s)}}$")
        ax.set(xlim=(0, 5), ylim=(0, 5), title=model, xlabel=SCORE_LABEL, ylabel=NORM_LABEL if col == 0 else "")
        ax.legend(loc="upper left")
        worst = table.assign(abs_residual=table.residual.abs()).groupby(["seed", "epoch"], as_index=False)["abs_residual"].max()
        band(axes[1, col], worst, "epoch", "abs_residual", color, model, lead_seed)
        axes[1, col].set(xlabel="epoch", ylabel=r"max$_w$ |residual|" if col == 0 else "")
    top = max(ax.get_ylim()[1] for ax in axes[1])
    for ax in axes[1]:
        ax.set_ylim(0, top)
    fig.tight_layout()
    return fig


def plot_loss_curves(result: SyntheticResult, single_run: bool = False) -> plt.Figure:
    """F2: training loss against epoch, one panel per model plus an overlay of all models (2 x 2 grid)."""
    use_style()
    losses = result.losses()
    if single_run:
        losses = losses[losses.seed == result.seeds[0]]
    models = result.models
    cols = 2
    rows = int(np.ceil((len(models) + 1) / cols))
    fig, grid = plt.subplots(rows, cols, figsize=(FIG_WIDTH, 2.6 * rows), sharex=True, sharey=True, squeeze=False)
    axes = grid.ravel()
    for col, model in enumerate(models):
        table = losses[losses.model == model]
        color = MODEL_COLORS.get(model, "C0")
        for ax in (axes[col], axes[len(models)]):
            band(ax, table, "epoch", "loss", color, model, result.seeds[0])
        axes[col].set(title=model)
    overlay = axes[len(models)]
    overlay.axhline(np.log(result.config.data.n_topics), color=THEORY_COLOR, ls=":", lw=1, label=r"$\ln K$ (uniform prediction)")
    if not single_run:
        overlay.fill_between([], [], [], color="0.5", alpha=0.25, linewidth=0, label="range over seeds")
    overlay.set(title="all models")
    handles, labels = overlay.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    for ax in axes[len(models) + 1:]:
        ax.set_visible(False)
    for ax in grid[:, 0]:
        ax.set_ylabel("training loss")
    for ax in axes[-cols:]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_tick_params(labelbottom=True)
    fig.tight_layout()
    return fig


SCORE_LINTHRESH = 1e-3
"""The score axis of F3 is symmetric-log, linear within this distance of 0: non-topic scores are small,
mostly negative and some exactly 0, topic scores are positive and about 100 times larger."""


def _grouped_histogram(ax: plt.Axes, table: pd.DataFrame, value: str, models: list[str]) -> None:
    """Bars per model over 9 bins equally wide on the axis's (log or symmetric-log) scale, spanning the
    group's range; heights are fractions of the group's words."""
    scale = ax.xaxis.get_transform()
    forward = lambda v: scale.transform(np.asarray(v, dtype=float).reshape(-1, 1)).ravel()  # noqa: E731
    back = lambda v: scale.inverted().transform(np.asarray(v, dtype=float).reshape(-1, 1)).ravel()  # noqa: E731
    low, high = forward([table[value].min(), table[value].max()])
    edges = np.linspace(low, high if high > low else low + 1e-6, 10)
    width = (edges[1] - edges[0]) / (len(models) + 1)
    for i, model in enumerate(models):
        part = table[table.model == model]
        weights = np.ones(len(part)) / part.groupby("seed").size().reindex(part.seed).to_numpy()
        weights /= part.seed.nunique()
        heights, _ = np.histogram(forward(part[value]), bins=edges, weights=weights)
        left = edges[:-1] + i * width + width / 2
        ax.bar(back(left), heights, width=back(left + width) - back(left), color=MODEL_COLORS.get(model, "C0"), label=model,
               align="edge", linewidth=0)
    ax.set_ylim(0, 1.05)


def plot_final_distributions(result: SyntheticResult, single_run: bool = False) -> plt.Figure:
    """F3: final score and |q||v| of topic and non-topic words, grouped by model, on (symmetric-)log axes.

    Rows: score, norm; columns: topic, non-topic words, sharing the x axis per row, so the orders of
    magnitude between the two groups show as distance. Heights are the fraction of the words in the
    group (pooled over seeds, each seed weighted equally).
    """
    use_style()
    final = result.final_words()
    if single_run:
        final = final[final.seed == result.seeds[0]]
    models = result.models
    fig, axes = plt.subplots(2, 2, figsize=(FIG_WIDTH, 5.0), sharex="row", sharey=True)
    labels = {"score": rf"{SCORE_LABEL} (symmetric log scale, linear within ±{SCORE_LINTHRESH:g})",
              "norm": NORM_LABEL + " (log scale)"}
    for row, value in enumerate(("score", "norm")):
        if value == "score":
            axes[row, 0].set_xscale("symlog", linthresh=SCORE_LINTHRESH)
        else:
            axes[row, 0].set_xscale("log")
        for col, kind in enumerate(("topic", "non-topic")):
            ax = axes[row, col]
            _grouped_histogram(ax, final[final.kind == kind], value, models)
            ax.set(title=f"{kind} words", xlabel=labels[value])
            ax.xaxis.set_tick_params(labelbottom=True)
        axes[row, 0].set_ylabel("fraction of words")
    axes[0, 0].legend(loc="upper left")
    fig.tight_layout()
    return fig
