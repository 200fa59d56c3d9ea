"""Figures of the F4 ablation: the three variants of each model together, seed bands (the paper shows one run)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from attnlib import theory
from attnlib.plots.style import FIG_WIDTH, MODEL_COLORS, NORM_LABEL, SCORE_LABEL, THEORY_COLOR, band, use_style

if TYPE_CHECKING:
    from attnlib.experiments.ablation import AblationResult

VARIANT_COLORS = {"-KF": "#d62728", "-EF": "#7f7f7f"}
"""The full model keeps its colour from :data:`MODEL_COLORS`; the frozen variants get these."""
VARIANT_LEGEND = {"-KF": "-KF: keys frozen", "-EF": "-EF: embeddings frozen"}


def _variant_color(run: str, result: AblationResult) -> str:
    model, suffix = result.split_name(run)
    return VARIANT_COLORS.get(suffix, MODEL_COLORS.get(model, "C0"))


def plot_ablation(result: AblationResult, single_run: bool = False) -> plt.Figure:
    """F4: per model (row), training loss, mean topic-word score and mean topic-word |q||v| against the
    epoch, for all trainable, keys frozen (-KF) and embeddings frozen (-EF).

    Line: seed 0 (mean over the topic words); band: min-max over seeds of that mean. The loss axis is
    logarithmic so that the near-zero losses of the full models stay apart from the KF losses.
    """
    use_style()
    lead = result.seeds[0]
    losses, means = result.losses(), result.topic_means()
    if single_run:
        losses, means = losses[losses.seed == lead], means[means.seed == lead]
    models = result.models
    fig, axes = plt.subplots(len(models), 3, figsize=(FIG_WIDTH, 2.4 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        for suffix in result.variant_labels:
            run = model + suffix
            if run not in result.runs:
                continue
            color = _variant_color(run, result)
            band(axes[row, 0], losses[losses.run == run], "epoch", "loss", color, run, lead)
            band(axes[row, 1], means[means.run == run], "epoch", "score", color, run, lead)
            band(axes[row, 2], means[means.run == run], "epoch", "norm", color, run, lead)
        axes[row, 0].axhline(np.log(result.config.data.n_topics), color=THEORY_COLOR, ls=":", lw=1)
        axes[row, 0].set(yscale="log", ylabel="training loss", title=f"{model}: loss")
        axes[row, 1].set(ylabel="mean topic-word score", title=f"{model}: score")
        axes[row, 2].set(ylabel=f"mean topic-word {NORM_LABEL}", title=f"{model}: norm")
        for ax in axes[row]:
            ax.set_xlabel("epoch")
    # one legend for all panels, above them: inside a panel it would cover curves that fill the panels
    handles = [Line2D([], [], color=MODEL_COLORS.get(model, "C0"), lw=1.6, label=f"{model} (all trained)")
               for model in models]
    handles += [Line2D([], [], color=color, lw=1.6, label=VARIANT_LEGEND[suffix])
                for suffix, color in VARIANT_COLORS.items()]
    handles.append(Line2D([], [], color=THEORY_COLOR, ls=":", lw=1, label=r"$\ln 4$ (uniform prediction)"))
    if not single_run:
        handles.append(Patch(color="0.5", alpha=0.25, label="range over seeds"))
    fig.tight_layout()
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    return fig


def plot_general_identity(result: AblationResult) -> plt.Figure:
    """N2: the full models with embedding std 0.1 against the general-init identity.

    Per model: seed 0's topic words in (score, |q||v|) as markers (one every few epochs), each with the
    curve the identity predicts from its own start as a dashed line through them (the two coincide to
    the residual of the last panel, so the markers show the measurement under the line); the default
    form through the origin dotted. Last panel: the largest |residual| over topic words per epoch, line
    seed 0, band the range over seeds.
    """
    use_style()
    curves = result.curves()
    models = result.models
    lead = result.seeds[0]
    m = result.config.data.m
    fig, grid = plt.subplots(1, len(models) + 1, figsize=(FIG_WIDTH, 3.3), squeeze=False)
    axes = grid.ravel()
    for col, model in enumerate(models):
        ax = axes[col]
        color = MODEL_COLORS.get(model, "C0")
        table = curves[(curves.run == model) & (curves.seed == lead)]
        for i, (_, path) in enumerate(table.groupby("word")):
            s0, n0 = path.score.iloc[0], path.norm.iloc[0]
            grid_s = np.linspace(path.score.min(), path.score.max(), 200)
            step = max(1, len(path) // 25)
            ax.plot(path.score.iloc[::step], path.norm.iloc[::step], ls="", marker="o", ms=3.5, color=color,
                    alpha=0.8, label="measured" if i == 0 else None)
            ax.plot(grid_s, theory.sen_norm(grid_s, m, s0, n0), color=THEORY_COLOR, ls="--", lw=1.0,
                    label="identity from each word's start" if i == 0 else None)
        grid_s = np.linspace(0, table.score.max(), 200)
        ax.plot(grid_s, theory.sen_norm(grid_s, m), color=THEORY_COLOR, ls=":", lw=1.2, alpha=0.8,
                label=rf"default form $\sqrt{{2\varphi_{{{m}}}(s)}}$")
        ax.set(title=f"{model}, seed {lead}", xlabel=SCORE_LABEL, ylabel=NORM_LABEL if col == 0 else "")
        worst = curves[curves.run == model].assign(abs_residual=lambda t: t.residual.abs())
        worst = worst.groupby(["seed", "epoch"], as_index=False)["abs_residual"].max()
        band(axes[len(models)], worst, "epoch", "abs_residual", color, model, lead)
    axes[len(models)].set(title="N2 residual", xlabel="epoch", ylabel=r"max$_w$ |residual|")
    axes[len(models)].legend(loc="lower right")
    handles, labels = axes[0].get_legend_handles_labels()
    handles[0] = Line2D([], [], ls="", marker="o", ms=3.5, color="0.4", label="measured (model's colour)")
    fig.tight_layout()
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    return fig
