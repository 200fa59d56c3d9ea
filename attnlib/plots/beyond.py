"""Figures of the studies beyond the paper (:mod:`attnlib.experiments.beyond`), in the one attnlib style."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from attnlib import theory
from attnlib.plots.style import (
    CONTRAST_COLORS,
    FIG_WIDTH,
    MODEL_COLORS,
    NORM_LABEL,
    SCORE_LABEL,
    THEORY_COLOR,
    band,
    use_style,
)

if TYPE_CHECKING:
    from attnlib.experiments.beyond import BreakingResult, CapacityResult, GrowthResult, SuppressionResult, SweepResult

DIP_COLOR = CONTRAST_COLORS[0]
QUIET_COLOR = "#9a9a9a"


SEQUENTIAL_RANGE = (0.4, 1.0)
"""The part of a sequential colour map used for ordered values: below 0.4 the light maps (Purples, Greys)
are near white and their lines vanish on the white background."""


def _sequential(n: int, name: str = "viridis") -> list:
    cmap = plt.get_cmap(name)
    return [cmap(x) for x in np.linspace(*SEQUENTIAL_RANGE, n)]


def plot_suppression(result: SuppressionResult, init_std: float = 0.1, seed: int | None = None) -> plt.Figure:
    """The early window of one seed at one embedding init: one column per head.

    Row 1: s_w(t) - s_w(0); row 2: |q||v_w(t)| - |q||v_w(0)|; row 3: the same words in
    (score, |q||v|) with the identity's curve through each word's start (dotted). Words whose score
    dips are red, the others grey. The window ends a little after the last dipping word recovers.
    """
    use_style()
    seed = result.seeds[0] if seed is None else seed
    curves = result.curves()
    curves = curves[(curves.init_std == init_std) & (curves.seed == seed)]
    dips = result.dips()
    dips = dips[(dips.init_std == init_std) & (dips.seed == seed)]
    models = list(dict.fromkeys(curves.model))
    m = result.config.data.m
    fig, axes = plt.subplots(3, len(models), figsize=(FIG_WIDTH, 7.6), squeeze=False)
    for col, model in enumerate(models):
        table = curves[curves.model == model]
        info = dips[dips.model == model].set_index("word")
        ends = info[["score_recovery_epoch", "norm_recovery_epoch"]].to_numpy()
        finite = ends[np.isfinite(ends)]
        last = table.epoch.max()
        window = int(min(last, max(20, 1.4 * finite.max()))) if len(finite) else int(min(last, 200))
        table = table[table.epoch <= window]
        for word, path in table.groupby("word"):
            dipping = info.loc[word, "score_dip"] > 0
            style = {"color": DIP_COLOR if dipping else QUIET_COLOR, "lw": 1.5 if dipping else 0.9,
                     "alpha": 0.9 if dipping else 0.6}
            s0, n0 = path.score.iloc[0], path.norm.iloc[0]
            axes[0, col].plot(path.epoch, path.score - s0, **style)
            axes[1, col].plot(path.epoch, path.norm - n0, **style)
            axes[2, col].plot(path.score, path.norm, **style)
            if dipping:
                grid = np.linspace(path.score.min(), path.score.max(), 100)
                axes[2, col].plot(grid, theory.sen_norm(grid, m, s0, n0), color=THEORY_COLOR, ls=":", lw=1.2)
        for ax in axes[:2, col]:
            ax.axhline(0, color=THEORY_COLOR, lw=0.8)
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        axes[0, col].set(title=f"{model}, std {init_std:g}", xlabel="epoch",
                         ylabel=r"$s_w(t) - s_w(0)$" if col == 0 else "")
        axes[1, col].set(xlabel="epoch", ylabel=r"$\|q\|\|v_w(t)\| - \|q\|\|v_w(0)\|$" if col == 0 else "")
        axes[2, col].set(xlabel=SCORE_LABEL, ylabel=NORM_LABEL if col == 0 else "")
        axes[2, col].ticklabel_format(axis="both", style="sci", scilimits=(-2, 3))
    axes[0, 0].plot([], [], color=DIP_COLOR, label="score dips")
    axes[0, 0].plot([], [], color=QUIET_COLOR, label="no dip")
    axes[2, 0].plot([], [], color=THEORY_COLOR, ls=":", label="identity from the start")
    axes[0, 0].legend()
    axes[2, 0].legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot_sweeps(result: SweepResult) -> plt.Figure:
    """The identity across m (top row) and the query std (bottom row), every seed and topic word.

    Top: (score, |q||v|) per head, coloured by m, with sqrt(2 phi_m) dotted for each m. Bottom: the
    query-std runs in (score, |q||v|) per head, all against the one m = 20 curve, and, in the last
    panel, the first seed in raw (score, |v|) with the curve divided by that run's |q|.
    """
    use_style()
    curves = result.curves()
    models = list(dict.fromkeys(curves.model))
    lead = result.seeds[0]
    fig, axes = plt.subplots(2, len(models) + 1, figsize=(FIG_WIDTH, 5.8), squeeze=False)
    m_values = sorted(curves[curves.sweep == "m"].value.unique())
    q_values = sorted(curves[curves.sweep == "query_std"].value.unique())
    m_colors, q_colors = _sequential(len(m_values), "Purples"), _sequential(len(q_values), "Greys")
    for col, model in enumerate(models):
        for row, (sweep, values, colors) in enumerate((("m", m_values, m_colors), ("query_std", q_values, q_colors))):
            ax = axes[row, col]
            part = curves[(curves.sweep == sweep) & (curves.model == model)]
            top = part.score.max()
            if sweep == "query_std":
                grid = np.linspace(0, top, 200)
                ax.plot(grid, theory.sen_norm(grid, result.config.data.m), color=THEORY_COLOR, lw=5, alpha=0.2,
                        label=rf"$\sqrt{{2\varphi_{{{result.config.data.m}}}(s)}}$")
            for value, color in reversed(list(zip(values, colors))):  # widest range first, so none is hidden
                runs = part[part.value == value]
                if sweep == "m":
                    grid = np.linspace(0, runs.score.max(), 200)
                    ax.plot(grid, theory.sen_norm(grid, value), color=color, lw=5, alpha=0.25)
                for _, path in runs.groupby(["seed", "word"]):
                    ax.plot(path.score, path.norm, color=color, lw=0.8, alpha=0.8)
            if col == 0:  # one legend per row: the values are the same in every panel of the row
                for value, color in zip(values, colors):
                    label = f"m = {value:g}" if sweep == "m" else f"query std {value:.3g}"
                    ax.plot([], [], color=color, lw=2, label=label)
                # the empty corner: below the concave curves of the m sweep, above the convex ones of the std sweep
                ax.legend(loc="lower right" if sweep == "m" else "upper left")
            ax.set(title=f"{model}: {'m' if sweep == 'm' else 'query std'}", xlabel=SCORE_LABEL,
                   ylabel=NORM_LABEL if col == 0 else "")
    # raw coordinates: |v| against the score, the curve scaled by 1/|q| of the run
    ax = axes[1, -1]
    model = models[0]
    part = curves[(curves.sweep == "query_std") & (curves.model == model) & (curves.seed == lead)]
    for value, color in zip(q_values, q_colors):
        run = part[part.value == value]
        grid = np.linspace(0, run.score.max(), 200)
        ax.plot(grid, theory.sen_norm(grid, result.config.data.m) / run.query_norm.iloc[0], color=color, lw=5, alpha=0.25)
        for _, path in run.groupby("word"):
            ax.plot(path.score, path.raw_norm, color=color, lw=0.8, alpha=0.9)
        ax.plot([], [], color=color, lw=2, label=rf"$\|q\|$ = {run.query_norm.iloc[0]:.2f}")
    ax.set(title=f"{model}, seed {lead}: raw norm", xlabel=SCORE_LABEL, ylabel=r"$\|v_w\|$", ylim=(0, None))
    ax.legend(loc="upper right")
    # residual per m
    ax = axes[0, -1]
    summary = result.summary()
    for i, model in enumerate(models):
        part = summary[(summary.sweep == "m") & (summary.model == model)]
        stats = part.groupby("value").max_abs_residual.agg(["min", "max"])
        lead_rows = part[part.seed == lead].set_index("value").max_abs_residual
        x = np.arange(len(stats)) + (i - (len(models) - 1) / 2) * 0.25
        color = MODEL_COLORS.get(model, f"C{i}")
        ax.vlines(x, stats["min"], stats["max"], color=color, lw=6, alpha=0.35)
        ax.plot(x, lead_rows.reindex(stats.index), "o", color=color, label=model)
        wrong = part.groupby("value").max_abs_residual_m20.max()
        ax.plot(x, wrong.reindex(stats.index), "x", color=color, alpha=0.8,
                label=f"{model} vs the m = 20 curve" if i == 0 else None)
    ax.set_xticks(np.arange(len(m_values)), [f"{v:g}" for v in m_values])
    ax.set(title="max |residual| per m", xlabel="m", ylabel="max |residual|", yscale="log")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3))  # below the panel: its markers fill it
    fig.tight_layout()
    return fig


def plot_breaking(result: BreakingResult) -> plt.Figure:
    """Residual of the identity per case: against flow time (lr x epoch) per head, and the worst value."""
    use_style()
    curves = result.curves()
    summary = result.summary()
    models = list(dict.fromkeys(curves.model))
    cases = list(dict.fromkeys(curves.case))
    colors = {case: CONTRAST_COLORS[i % len(CONTRAST_COLORS)] for i, case in enumerate(cases)}
    lead = result.seeds[0]
    cols = 2
    rows = int(np.ceil((len(models) + 1) / cols))
    fig, grid = plt.subplots(rows, cols, figsize=(FIG_WIDTH, 2.9 * rows), squeeze=False, layout="constrained")
    axes = grid.ravel()[None, :]
    for ax in grid.ravel()[len(models) + 1:]:
        ax.set_visible(False)
    for col, model in enumerate(models):
        ax = axes[0, col]
        for case in cases:
            part = curves[(curves.model == model) & (curves.case == case)]
            lr = result.runs[(case, model)].train_config.lr
            worst = (part.assign(abs_residual=part.residual.abs(), time=part.epoch * lr)
                     .groupby(["seed", "time"], as_index=False)["abs_residual"].max())
            worst = worst[worst.time > 0]
            band(ax, worst, "time", "abs_residual", colors[case], case, lead)
        ax.set(title=model, xlabel=r"flow time $\eta t$", ylabel="max$_w$ |residual|", yscale="log")
    ax = axes[0, len(models)]
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        part = summary[summary.model == model].groupby("case", sort=False).max_abs_residual.agg(["min", "max"])
        part = part.reindex(cases)
        y = np.arange(len(cases)) + (i - (len(models) - 1) / 2) * width
        ax.barh(y, part["max"], height=width, color=MODEL_COLORS.get(model, f"C{i}"), label=model)
    ax.set_yticks(np.arange(len(cases)), cases)
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel="max |residual| (all seeds)", title="worst residual per case")
    ax.legend()
    axes[0, 0].legend(loc="lower right", title="case (colour)")
    return fig


def plot_capacity(result: CapacityResult) -> plt.Figure:
    """Mean topic score against epoch per classifier, and the final topic score and attention weight.

    Right panels: one dot per seed, a bar for the mean over seeds.
    """
    use_style()
    curves, summary = result.curves(), result.summary()
    labels = list(result.runs)
    colors = {label: MODEL_COLORS.get(label, None) for label in labels}
    tl = [label for label in labels if colors[label] is None]
    greens = plt.get_cmap("Greens")
    for label, color in zip(tl, greens(np.linspace(0.95, 0.45, len(tl)))):
        colors[label] = color
    lead = result.seeds[0]
    fig = plt.figure(figsize=(FIG_WIDTH, 5.6))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.15, 1])
    axes = [fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])]
    for label in labels:
        band(axes[0], curves[curves.classifier == label], "epoch", "score", colors[label], label, lead)
    axes[0].set(title="topic score during training", xlabel="epoch", ylabel="topic-word score (mean)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", bbox_to_anchor=(0.5, 1.0),
               ncol=4)  # above the panels: inside, it would cover the curves
    for ax, column, title in ((axes[1], "topic_score_mean", "final topic score"),
                              (axes[2], "attention_mean", "attention on the topic word")):
        for i, label in enumerate(labels):
            values = summary.loc[summary.classifier == label, column]
            ax.bar(i, values.mean(), color=colors[label], alpha=0.5, width=0.7)
            ax.plot(np.full(len(values), i), values, "o", color=colors[label], ms=4)
        rotate = len(labels) > 5  # side by side, that many labels run into each other: turn them upright
        ax.set_xticks(np.arange(len(labels)), [label.replace("Attn-", "").replace(" (h=", " h=" if rotate else "\nh=")
                                               .rstrip(")") for label in labels])
        if rotate:
            ax.tick_params(axis="x", labelrotation=90)
        ax.set(title=title, xlabel="classifier")
    axes[1].set_ylabel("mean over topic words")
    axes[2].set(ylabel="mean over training sentences", ylim=(0, 1))
    fig.tight_layout()
    return fig


def plot_growth(result: GrowthResult) -> plt.Figure:
    """Log-log plots of the mean topic score, mean |q||v| and training loss against the epoch.

    Dashed: the last window's power-law fit; dotted: the heuristic's shapes (norm linear in ln t,
    score growing like 2 ln ln t, loss like 1/t), anchored at the seed-0 curve's last point. The last
    panel shows the local slopes d ln y / d ln t (0 and -1 dotted).
    """
    use_style()
    curves = result.curves()
    curves = curves[curves.epoch > 0]
    fits = result.fits()
    lead = result.seeds[0]
    first, last = result.windows[-1]
    color = MODEL_COLORS.get(result.run.model.name, "C0")
    fig, grid = plt.subplots(2, 2, figsize=(FIG_WIDTH, 6.0))
    axes = grid.ravel()
    lead_curve = curves[curves.seed == lead]
    t = lead_curve.epoch.to_numpy(dtype=float)
    end = lead_curve.iloc[-1]
    heuristic = {
        "score": end.score + 2 * (np.log(np.log(t)) - np.log(np.log(end.epoch))),
        "norm": None,
        "loss": end.loss * end.epoch / t,
    }
    fit = fits[(fits.seed == lead) & (fits.first_epoch == first)].iloc[0]
    heuristic["norm"] = end.norm + fit.norm_per_log_t * (np.log(t) - np.log(end.epoch))
    for ax, column, power, label in ((axes[0], "score", "score_power", "topic-word score (mean)"),
                                     (axes[1], "norm", "norm_power", f"topic-word {NORM_LABEL} (mean)"),
                                     (axes[2], "loss", "loss_power", "training loss")):
        band(ax, curves, "epoch", column, color, result.run.model.name, lead)
        window = (t >= first) & (t <= last)
        ax.plot(t[window], getattr(end, column) * (t[window] / end.epoch) ** fit[power], color="black", ls="--", lw=1.2,
                label=f"power fit, slope {fit[power]:.3f}")
        shape = {"score": r"$c + 2\ln\ln t$", "norm": r"$a + b\ln t$ (fitted)", "loss": r"$\propto 1/t$"}[column]
        positive = heuristic[column] > 0
        ax.plot(t[positive], heuristic[column][positive], color=THEORY_COLOR, ls=":", lw=1.4, label=shape)
        ax.axvspan(first, last, color="0.9", zorder=0)
        ax.set(xscale="log", yscale="log", xlabel="epoch t", ylabel=label)
        ax.legend(loc="lower right" if column != "loss" else "lower left")
    for ax in axes[:2]:
        ax.set_xlim(left=100)
        low = curves[curves.epoch >= 100][["score", "norm"]].min().min()
        ax.set_ylim(bottom=max(low * 0.8, 1e-2))
    slopes = result.local_slopes(min_epoch=max(100, result.config.train.epochs // 30))
    ax = axes[3]
    for column, shade in (("score", color), ("norm", CONTRAST_COLORS[1]), ("loss", CONTRAST_COLORS[5])):
        band(ax, slopes, "epoch", column, shade, column, lead)
    for level in (0.0, -1.0):
        ax.axhline(level, color=THEORY_COLOR, ls=":", lw=1)
    ax.axvspan(first, last, color="0.9", zorder=0)
    ax.set(xscale="log", ylim=(-2.0, 0.6), xlabel="epoch t", ylabel=r"local slope $d\ln y / d\ln t$")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def suppression_table(result: SuppressionResult) -> pd.DataFrame:
    """The suppression summary formatted for the book: one row per head and init."""
    s = result.summary()
    return pd.DataFrame({
        "model": s.model, "embedding std": s.init_std.map(lambda v: f"{v:g}"),
        "topic words whose score dips": [f"{a} of {b}" for a, b in zip(s.score_dips, s.words)],
        "deepest score dip": s.max_score_dip.map(lambda v: f"{v:.1e}"),
        "deepest dip / P4 bound": s.max_dip_over_bound.map(lambda v: f"{v:.2f}"),
        "deepest norm dip (relative)": s.max_norm_dip_relative.map(lambda v: f"{100 * v:.1f}%"),
        "latest minimum (epoch)": s.latest_dip_epoch.map(lambda v: f"{v:.0f}"),
        "latest recovery (epoch)": s.latest_recovery_epoch.map(lambda v: "not in window" if np.isnan(v) else f"{v:.0f}"),
    }).set_index(["model", "embedding std"])
