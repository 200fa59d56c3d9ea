"""Figures of the TREC chapter: the attention shift over training, the score-norm relation on real words, and
the score curves of words that rise and then fall (the tables are :class:`attnlib.experiments.trec.TRECResult`'s)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from attnlib import theory
from attnlib.plots.style import CONTRAST_COLORS, FIG_WIDTH, MODEL_COLORS, NORM_LABEL, SCORE_LABEL, THEORY_COLOR, use_style


def plot_shift(result) -> plt.Figure:
    """Two panels over epochs (log scale), one line per head and seed: the mean purity and the mean occurrence
    of the training questions' most-attended words."""
    use_style()
    fig, axes = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.2))
    df = result.shift()
    df = df[df.epoch >= 1]
    for (model, seed), g in df.groupby(["model", "seed"], sort=False):
        first = seed == min(result.seeds)
        kw = dict(color=MODEL_COLORS.get(model, "C0"), lw=1.6 if first else 0.8, alpha=1.0 if first else 0.5)
        axes[0].plot(g.epoch, g["mean purity"], label=model if first else None, **kw)
        axes[1].plot(g.epoch, g["mean occurrence"], **kw)
    axes[0].set(xscale="log", xlabel="epoch", ylabel="mean purity", title="purity of the most-attended word")
    axes[1].set(xscale="log", yscale="log", xlabel="epoch", ylabel="training questions containing it",
                title="frequency of the most-attended word")
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_score_norm(result) -> plt.Figure:
    """One panel per head: |q||v| against the score at the best epoch for every frequent word and seed (rising
    words in the head's colour, falling ones grey), with the identity's curve for the median m_w."""
    use_style()
    table = result.score_norm()
    models = list(dict.fromkeys(table.model))
    fig, axes = plt.subplots(1, len(models), figsize=(FIG_WIDTH, 2.9), squeeze=False)
    for ax, model in zip(axes[0], models):
        g = table[table.model == model]
        for direction, color in (("falls", "#999999"), ("rises", MODEL_COLORS.get(model, "C0"))):
            h = g[g.direction == direction]
            ax.scatter(h.score, h.norm, s=5, color=color, alpha=0.6, label=f"score {direction}")
        s = np.linspace(0, max(float(g.score.max()), 0.1), 200)
        ax.plot(s, theory.sen_norm(s, float(g.m_w.median())), color=THEORY_COLOR, lw=1.2,
                label=f"identity, m = {g.m_w.median():.1f}")
        ax.set(title=model, xlabel=SCORE_LABEL, ylabel=NORM_LABEL if ax is axes[0][0] else None)
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_rise_fall(result, words: tuple[str, ...] = ("how", "many", "what", "the")) -> plt.Figure:
    """One panel per head: the score of a few words over epochs (first seed), the words in fixed colours."""
    use_style()
    curves = result.curves()
    models = list(dict.fromkeys(curves.model))
    fig, axes = plt.subplots(1, len(models), figsize=(FIG_WIDTH, 2.9), squeeze=False, sharey=True)
    seed = min(result.seeds)
    for ax, model in zip(axes[0], models):
        for word, color in zip(words, CONTRAST_COLORS):
            g = curves[(curves.model == model) & (curves.word == word) & (curves.seed == seed) & (curves.epoch >= 1)]
            ax.plot(g.epoch, g.score, color=color, lw=1.4, label=f'"{word}"')
        ax.axhline(0, color=THEORY_COLOR, lw=0.6)
        ax.set(title=f"{model}, seed {seed}", xscale="log", xlabel="epoch",
               ylabel=SCORE_LABEL if ax is axes[0][0] else None)
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig
