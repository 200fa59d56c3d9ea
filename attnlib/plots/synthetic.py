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
from attnlib.plots.style import (
    FIG_WIDTH,
    MODEL_COLORS,
    NARROW_WIDTH,
    NORM_LABEL,
    SCORE_LABEL,
    THEORY_COLOR,
    band,
    use_style,
)

if TYPE_CHECKING:
    from attnlib.experiments.synthetic import SyntheticResult


SEN_VIEWS = ("full", "overlay", "residual")
"""The views of F1: ``full`` (the figure of the synthetic chapter), ``overlay`` (one panel, every model on the
one curve: how far along it each classifier takes its topic words) and ``residual`` (one panel, the
largest distance from the curve per epoch and model)."""


def _end_points(ax: plt.Axes, table: pd.DataFrame, color: str, label: str | None = None) -> None:
    """A dot where each (seed, topic word) trajectory of ``table`` ends: the trajectories overlap on the
    curve, their end points show how many there are and how far along the curve each got."""
    last = table[table.epoch == table.epoch.max()]
    ax.plot(last.score, last.norm, ls="", marker="o", ms=4.5, mfc="white", mec=color, mew=1.2, label=label,
            zorder=4)


def _worst_residual(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(abs_residual=table.residual.abs()).groupby(["seed", "epoch"], as_index=False)["abs_residual"].max()


def plot_sen_curves(result: SyntheticResult, single_run: bool = False, view: str = "full") -> plt.Figure:
    """F1: topic words' |q||v| against their score, measured vs the identity, and the residual per epoch.

    ``full``: top row, every topic word of every seed (thin lines; they overlap on the curve), a dot where
    each ends, seed 0's first topic word bold, and the theory curve sqrt(2 phi_m(s)); bottom row, the
    largest |residual| over topic words per epoch (seed 0 a line, the min-max over seeds a band). See
    :data:`SEN_VIEWS` for the one-panel views.
    """
    if view not in SEN_VIEWS:
        raise ValueError(f"attnlib: unknown F1 view {view!r}; choose one of {', '.join(SEN_VIEWS)}")
    use_style()
    curves = result.curves()
    seeds = [result.seeds[0]] if single_run else result.seeds
    curves = curves[curves.seed.isin(seeds)]
    lead_seed, lead_word = result.seeds[0], int(curves.word.min())
    models = result.models
    m = result.config.data.m
    theory_label = rf"theory $\sqrt{{2\varphi_{{{m}}}(s)}}$"
    s_grid = np.linspace(0, max(5.0, curves.score.max()), 200)
    if view == "overlay":
        fig, ax = plt.subplots(figsize=(NARROW_WIDTH, 3.3))  # fits a phone as it is
        ax.plot(s_grid, theory.sen_norm(s_grid, m), ls=":", color=THEORY_COLOR, lw=1.8, label=theory_label)
        for model in models:
            table = curves[curves.model == model]
            color = MODEL_COLORS.get(model, "C0")
            for _, path in table.groupby(["seed", "word"]):
                ax.plot(path.score, path.norm, color=color, lw=0.8, alpha=0.5)
            _end_points(ax, table, color, f"{model}: end of each topic word")
        ax.set(xlim=(0, 5), ylim=(0, 5), xlabel=SCORE_LABEL, ylabel=NORM_LABEL)
        ax.legend(loc="lower right")
        fig.tight_layout()
        return fig
    if view == "residual":
        fig, ax = plt.subplots(figsize=(NARROW_WIDTH, 2.9))  # fits a phone as it is
        for model in models:
            band(ax, _worst_residual(curves[curves.model == model]), "epoch", "abs_residual",
                 MODEL_COLORS.get(model, "C0"), model, lead_seed)
        ax.set(xlabel="epoch", ylabel=r"max$_w$ |residual|", ylim=(0, None))
        ax.legend(loc="upper left")
        fig.tight_layout()
        return fig
    fig, axes = plt.subplots(2, len(models), figsize=(FIG_WIDTH, 5.6),
                             gridspec_kw={"height_ratios": [2.2, 1]}, squeeze=False)
    for col, model in enumerate(models):
        color = MODEL_COLORS.get(model, "C0")
        ax = axes[0, col]
        table = curves[curves.model == model]
        words = table[(table.seed == lead_seed) & (table.word == lead_word)] if single_run else table
        for _, path in words.groupby(["seed", "word"]):
            ax.plot(path.score, path.norm, color=color, lw=0.8, alpha=0.35)
        lead = table[(table.seed == lead_seed) & (table.word == lead_word)]
        ax.plot(lead.score, lead.norm, color=color, lw=2.2, label=f"seed {lead_seed}, one word")
        _end_points(ax, words, color, "end of each word" if not single_run else None)
        ax.plot(s_grid, theory.sen_norm(s_grid, m), ls=":", color=THEORY_COLOR, lw=1.8, label=theory_label)
        ax.set(xlim=(0, 5), ylim=(0, 5), title=model, xlabel=SCORE_LABEL, ylabel=NORM_LABEL if col == 0 else "")
        if col == 0:
            ax.legend(loc="lower right")
        band(axes[1, col], _worst_residual(table), "epoch", "abs_residual", color, model, lead_seed)
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


def _topic_strip(ax: plt.Axes, table: pd.DataFrame, value: str, models: list[str]) -> None:
    """One row per model, a dot per topic word and seed (slightly spread vertically by seed), and a
    vertical bar at the model's mean: the ordering of the models reads from top to bottom."""
    for i, model in enumerate(models):
        part = table[table.model == model]
        color = MODEL_COLORS.get(model, "C0")
        seeds = sorted(part.seed.unique())
        offset = {seed: (k - (len(seeds) - 1) / 2) * 0.1 for k, seed in enumerate(seeds)}
        ax.plot(part[value], i + part.seed.map(offset), ls="", marker="o", ms=4, mfc="none", mec=color, mew=1.0)
        ax.plot([part[value].mean()] * 2, [i - 0.35, i + 0.35], color=color, lw=2.4)
    ax.set_yticks(range(len(models)), models)
    ax.set_ylim(len(models) - 0.5, -0.5)
    ax.set_xlim(0, None)


def _grouped_histogram(ax: plt.Axes, table: pd.DataFrame, value: str, models: list[str]) -> None:
    """Bars per model over 9 equal bins spanning the group's range; heights are fractions of the group's
    words (pooled over seeds, each seed weighted equally)."""
    low, high = table[value].min(), table[value].max()
    edges = np.linspace(low, high if high > low else low + 1e-6, 10)
    width = (edges[1] - edges[0]) / (len(models) + 1)
    for i, model in enumerate(models):
        part = table[table.model == model]
        weights = np.ones(len(part)) / part.groupby("seed").size().reindex(part.seed).to_numpy()
        weights /= part.seed.nunique()
        heights, _ = np.histogram(part[value], bins=edges, weights=weights)
        ax.bar(edges[:-1] + i * width + width / 2, heights, width=width, color=MODEL_COLORS.get(model, "C0"),
               label=model, align="edge", linewidth=0)
    ax.set_ylim(0, 1.05)


def plot_final_distributions(result: SyntheticResult, single_run: bool = False) -> plt.Figure:
    """F3: final score (top) and |q||v| (bottom) of the topic words (left) and the non-topic words (right).

    Topic words: one dot per word and seed on a row per model, a bar at the model's mean, so the ordering
    FC > TC > TL and each model's spread show. Non-topic words: the fraction of the words per bin, one bar
    series per model. Both on linear axes: the x ranges themselves (units against hundredths) show the two
    orders of magnitude between the groups.
    """
    use_style()
    final = result.final_words()
    if single_run:
        final = final[final.seed == result.seeds[0]]
    models = result.models
    fig, axes = plt.subplots(2, 2, figsize=(FIG_WIDTH, 4.8))
    for row, (value, label) in enumerate((("score", SCORE_LABEL), ("norm", NORM_LABEL))):
        topic, other = final[final.kind == "topic"], final[final.kind == "non-topic"]
        _topic_strip(axes[row, 0], topic, value, models)
        axes[row, 0].set(title=f"topic words: {value}", xlabel=label)
        _grouped_histogram(axes[row, 1], other, value, models)
        axes[row, 1].set(title=f"non-topic words: {value}", xlabel=label, ylabel="fraction of words")
        axes[row, 1].ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
    axes[0, 1].legend(loc="upper left")
    fig.tight_layout()
    return fig
