"""Figures F1-F3 of the synthetic experiments.

Curves over seeds show the seed-0 run as a solid line and the min-max range over seeds as a band
(the paper shows single runs, which hide the variation over seeds); ``single_run=True`` gives the paper's single-run view instead.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from attnlib import theory
from attnlib.experiments.synthetic import SyntheticResult
from attnlib.plots.style import MODEL_COLORS, NORM_LABEL, PANEL_WIDTH, SCORE_LABEL, THEORY_COLOR, band, use_style


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
    fig, axes = plt.subplots(2, len(models), figsize=(PANEL_WIDTH * len(models), 6.4),
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
        ax.legend(loc="upper left", fontsize=8)
        worst = table.assign(abs_residual=table.residual.abs()).groupby(["seed", "epoch"], as_index=False)["abs_residual"].max()
        band(axes[1, col], worst, "epoch", "abs_residual", color, model, lead_seed)
        axes[1, col].set(xlabel="epoch", ylabel=r"max$_w$ |residual|" if col == 0 else "")
    top = max(ax.get_ylim()[1] for ax in axes[1])
    for ax in axes[1]:
        ax.set_ylim(0, top)
    fig.tight_layout()
    return fig


def plot_loss_curves(result: SyntheticResult, single_run: bool = False) -> plt.Figure:
    """F2: training loss against epoch, one panel per model plus an overlay of all models."""
    use_style()
    losses = result.losses()
    if single_run:
        losses = losses[losses.seed == result.seeds[0]]
    models = result.models
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(PANEL_WIDTH * (len(models) + 1) * 0.85, 3.2),
                             sharey=True, squeeze=False)
    for col, model in enumerate(models):
        table = losses[losses.model == model]
        color = MODEL_COLORS.get(model, "C0")
        for ax in (axes[0, col], axes[0, -1]):
            band(ax, table, "epoch", "loss", color, model, result.seeds[0])
        axes[0, col].set(title=model, xlabel="epoch", ylabel="training loss (cross-entropy)" if col == 0 else "")
    axes[0, -1].axhline(np.log(result.config.data.n_topics), color=THEORY_COLOR, ls=":", lw=1, label=r"$\ln K$")
    axes[0, -1].set(title="all models", xlabel="epoch")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _grouped_histogram(ax: plt.Axes, table: pd.DataFrame, value: str, models: list[str]) -> None:
    """Bars per model over 9 equal bins spanning the pooled range; heights are fractions of the group."""
    values = table[value].to_numpy()
    low, high = values.min(), values.max()
    edges = np.linspace(low, high if high > low else low + 1e-12, 10)
    width = (edges[1] - edges[0]) / (len(models) + 1)
    for i, model in enumerate(models):
        part = table[table.model == model]
        weights = np.ones(len(part)) / part.groupby("seed").size().reindex(part.seed).to_numpy()
        weights /= part.seed.nunique()
        heights, _ = np.histogram(part[value], bins=edges, weights=weights)
        ax.bar(edges[:-1] + (i + 0.5) * width, heights, width=width, color=MODEL_COLORS.get(model, "C0"),
               label=model, align="edge")
    ax.set_ylim(0, 1.05)


def plot_final_distributions(result: SyntheticResult, single_run: bool = False) -> plt.Figure:
    """F3: final scores and |q||v| of topic and non-topic words, grouped by model.

    Heights are the fraction of the words in the group (pooled over seeds, each seed weighted equally).
    """
    use_style()
    final = result.final_words()
    if single_run:
        final = final[final.seed == result.seeds[0]]
    models = result.models
    fig, axes = plt.subplots(1, 4, figsize=(PANEL_WIDTH * 4 * 0.85, 3.2))
    panels = [("topic", "score", "topic words: score"), ("non-topic", "score", "non-topic words: score"),
              ("topic", "norm", r"topic words: $\|q\|\|v\|$"), ("non-topic", "norm", r"non-topic words: $\|q\|\|v\|$")]
    for ax, (kind, value, title) in zip(axes, panels):
        _grouped_histogram(ax, final[final.kind == kind], value, models)
        ax.set(title=title, xlabel=SCORE_LABEL if value == "score" else NORM_LABEL)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    axes[0].set_ylabel("fraction of words")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


SYNTHETIC_FIGURES = {
    "f1_sen_curves": plot_sen_curves,
    "f2_loss_curves": plot_loss_curves,
    "f3_final_distributions": plot_final_distributions,
}
