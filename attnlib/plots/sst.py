"""Figures of the SST chapter: losses (T1), SEN curves (F5), attention shift (F6), one sentence (F7), padding."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from attnlib import theory
from attnlib.config import HEADS
from attnlib.paper import SST_F6_WORDS as F6_WORDS
from attnlib.plots.style import (
    CONTRAST_COLORS,
    FIG_WIDTH,
    MODEL_COLORS,
    NORM_LABEL,
    SCORE_LABEL,
    THEORY_COLOR,
    use_style,
)

if TYPE_CHECKING:
    from attnlib.experiments.sst import SSTResult, SSTRun

VARIANT_STYLES = {"default": "-", "patience2000": "--", "unmasked": ":", "code": "-."}


def _model_legend(fig: plt.Figure, names: list[str], styles: list[tuple[str, dict]], ncol: int = 4) -> None:
    """One legend for the whole figure, above it: a colour per model, then each line style's meaning."""
    handles = [Line2D([], [], color=MODEL_COLORS.get(n, "C0"), lw=2, label=n) for n in names]
    handles += [Line2D([], [], color="0.35", label=label, **style) for label, style in styles]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=ncol)


def plot_sst_losses(result: SSTResult) -> plt.Figure:
    """T1: training (solid) and dev (dashed) loss against epoch for every setting; seed 0 bold, others faint."""
    use_style()
    kinds = sorted({k for k, _, _ in result.runs})
    variants = [v for v in VARIANT_STYLES if any(s[2] == v for s in result.runs)]
    fig, axes = plt.subplots(len(variants), len(kinds), figsize=(FIG_WIDTH, 2.2 * len(variants)), squeeze=False)
    names = []
    for (kind, _head, variant), run in result.runs.items():
        ax = axes[variants.index(variant), kinds.index(kind)]
        color = MODEL_COLORS.get(run.name, "C0")
        names.append(run.name)
        for k, _seed in enumerate(run.seeds):
            stop = int(run.stopped_epoch[k])
            epochs = np.arange(stop + 1)
            lw, alpha = (1.6, 1.0) if k == 0 else (0.8, 0.4)
            ax.plot(epochs, run.loss[: stop + 1, k], color=color, lw=lw, alpha=alpha)
            ax.plot(epochs, run.dev_loss[: stop + 1, k], color=color, lw=lw, alpha=alpha, ls="--")
            ax.axvline(int(run.best_epoch[k]), color=color, lw=0.6, alpha=alpha * 0.6, ls=":")
    for (row, variant), (col, kind) in itertools.product(enumerate(variants), enumerate(kinds)):
        axes[row, col].set(title=f"{kind}, {variant}", xscale="symlog", ylabel="mean cross-entropy" if col == 0 else "",
                           xlabel="epoch (symmetric log scale)" if row == len(variants) - 1 else "")
        axes[row, col].set_xlim(left=0)
    _model_legend(fig, list(dict.fromkeys(names)), [("training loss", {"ls": "-"}), ("dev loss", {"ls": "--"}),
                                                  ("best epoch", {"ls": ":", "lw": 1})], ncol=5)
    fig.tight_layout()
    return fig


TURN_COLOR = CONTRAST_COLORS[0]
"""F5: the colour that marks a word whose score turns back (:func:`attnlib.experiments.sst.score_turns`)."""


def plot_sen_grid(run: SSTRun, n_words: int = 12, seed_index: int = 0) -> plt.Figure:
    """F5: the top ``n_words`` words of one seed, (s, |q||v|) at every snapshot against sqrt(2 φ_{m_w}(s)).

    A word whose score rises and then falls back (:meth:`~attnlib.experiments.sst.SSTRun.turns`) has its
    peak (triangle) and last snapshot (square) marked and its title says when it peaked."""
    use_style()
    curves = run.sen_curves(n_top=n_words)
    curves = curves[curves.seed == run.seeds[seed_index]]
    turns = run.turns(n_words)
    turns = turns[turns.seed == run.seeds[seed_index]].set_index("rank")
    cols = 4
    rows = int(np.ceil(n_words / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(FIG_WIDTH, 1.85 * rows + 0.5), squeeze=False)
    color = MODEL_COLORS.get(run.name, "C0")
    for ax, (rank, g) in zip(axes.ravel(), curves.groupby("rank")):
        g = g.sort_values("epoch")
        s_max = max(float(g.score.max()), 1e-3)
        grid = np.linspace(min(0.0, float(g.score.min())), s_max * 1.05, 200)
        m_w = float(g.m_w.iloc[0])
        ax.plot(grid, theory.sen_norm(grid, m_w), color=THEORY_COLOR, lw=1.2, label=r"theory $\sqrt{2\varphi_{m_w}(s)}$")
        ax.plot(g.score, g.norm, ls=":", marker=".", ms=3, color=color, lw=1, label="measured, every 100 epochs")
        word = g.word.iloc[0]
        flag = " (PAD)" if word == "$PAD$" else ""
        title = f"#{rank} {word}{flag}, m={m_w:.1f}"
        if rank in turns.index:  # rose along the curve, then fell back: mark the peak and the end
            turn = turns.loc[rank]
            ax.plot(turn.peak_score, turn.peak_norm, ls="", marker="^", ms=7, color=TURN_COLOR, zorder=5,
                    label="peak of a word that turns back")
            ax.plot(turn.last_score, turn.last_norm, ls="", marker="s", ms=5, color=TURN_COLOR, zorder=5,
                    label="its last snapshot")
            title += f"\npeak: epoch {turn.peak_epoch}"
        ax.set_title(title, fontweight="normal", color=TURN_COLOR if rank in turns.index else "black")
    for ax in axes.ravel()[len(curves["rank"].unique()):]:
        ax.axis("off")
    legend = {}
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
               title=f"{run.kind} {run.name} ({run.variant}), seed {run.seeds[seed_index]}")
    fig.supxlabel(SCORE_LABEL)
    fig.supylabel(NORM_LABEL)
    fig.tight_layout()
    return fig


def plot_sen_gaps(result: SSTResult, n_top: int = 100, criterion: float = 0.25) -> plt.Figure:
    """F5 summary: relative gap |n - sqrt(2φ)| / sqrt(2φ) at the last snapshot of the top words, by rank.

    One row per dataset and model, one column per variant; the dashed line is ``criterion``, the bound on
    the median gap of the top 20 words."""
    use_style()
    rows = list(dict.fromkeys((kind, HEADS[head]) for kind, head, _ in sorted(result.runs)))
    variants = [v for v in VARIANT_STYLES if any(s[2] == v for s in result.runs)]
    fig, axes = plt.subplots(len(rows), len(variants), figsize=(FIG_WIDTH, 1.75 * len(rows) + 0.6), squeeze=False,
                             sharex=True, sharey=True)
    for ax in axes.ravel():
        ax.set_visible(False)
    for (kind, _head, variant), run in result.runs.items():
        row, col = rows.index((kind, run.name)), variants.index(variant)
        ax = axes[row, col]
        ax.set_visible(True)
        gaps = run.sen_gaps(n_top)
        ax.scatter(gaps["rank"], gaps.rel_gap, s=4, color=MODEL_COLORS.get(run.name, "C0"), alpha=0.5, linewidths=0)
        med = gaps[gaps["rank"] <= 20].groupby("seed").rel_gap.median()
        ax.axhline(criterion, color=THEORY_COLOR, lw=0.8, ls="--")
        ax.set_yscale("log")
        header = f"{variant}\n" if row == 0 else ""
        ax.set_title(f"{header}median of top 20: {med.mean():.2f}", fontsize=8, fontweight="normal")
    for ax in axes[-1]:
        ax.set_xlabel("rank of the word")
    for ax, (kind, name) in zip(axes[:, 0], rows):
        ax.set_ylabel(f"{kind} {name}\nrelative gap")
    handles = [Line2D([], [], ls="", marker="o", ms=4, color=MODEL_COLORS[name], label=f"{name}: one word of one seed")
               for name in dict.fromkeys(name for _, name in rows) if name in MODEL_COLORS]
    handles.append(Line2D([], [], color=THEORY_COLOR, lw=0.8, ls="--", label=f"{criterion:g}: bound on the median"))
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    fig.tight_layout()
    return fig


PURITY_COLOR, OCCURRENCE_COLOR = CONTRAST_COLORS[0], CONTRAST_COLORS[1]


def plot_attention_shift(runs: list[SSTRun], seed_index: int = 0) -> plt.Figure:
    """F6: per run a row of 5 panels against epoch (log axis, from the step-1 snapshot): purity Π (left
    axis), occurrence Ω in thousands of sentences (right axis), floored as the authors did (solid) and
    unfloored (dashed)."""
    use_style()
    n = len(F6_WORDS)
    fig, axes = plt.subplots(len(runs), n, figsize=(FIG_WIDTH, 1.45 * len(runs) + 0.9), squeeze=False,
                             sharex=True)
    tables = []
    for run in runs:
        df = run.shift_curves()
        tables.append(df[(df.seed == run.seeds[seed_index]) & (df.epoch >= 1)])
    top = max([3.0] + [float(df[["occurrence", "occurrence_unfloored"]].max().max()) for df in tables if len(df)])
    for r, (row, run, df) in enumerate(zip(axes, runs, tables)):
        for c, (ax, word) in enumerate(zip(row, F6_WORDS)):
            g = df[df.word == word].sort_values("epoch")
            ax.plot(g.epoch, g.purity, color=PURITY_COLOR, lw=1.3)
            ax.set(ylim=(-0.05, 1.05), xscale="log")
            twin = ax.twinx()
            twin.plot(g.epoch, g.occurrence, color=OCCURRENCE_COLOR, lw=1.3)
            twin.plot(g.epoch, g.occurrence_unfloored, color=OCCURRENCE_COLOR, lw=1.0, ls="--")
            twin.set_ylim(-0.03 * top, 1.03 * top)
            twin.grid(False)
            twin.tick_params(axis="y", colors=OCCURRENCE_COLOR, right=c == n - 1, labelright=c == n - 1)
            ax.tick_params(axis="y", colors=PURITY_COLOR, left=c == 0, labelleft=c == 0)
            if r == 0:
                ax.set_title(word)
            if c == 0:
                ax.set_ylabel(f"{run.name}\n{run.variant}")
            if c == n - 1:
                twin.set_ylabel("Ω (1000s)", color=OCCURRENCE_COLOR)
    fig.supxlabel("epoch (log scale; first point: after step 1)")
    handles = [Line2D([], [], color=PURITY_COLOR, lw=1.3, label="purity Π of the top token (left axis, 0 to 1)"),
               Line2D([], [], color=OCCURRENCE_COLOR, lw=1.3, label="occurrence Ω, floored (right axis, 1000s of sentences)"),
               Line2D([], [], color=OCCURRENCE_COLOR, lw=1.0, ls="--", label="occurrence Ω, unfloored (right axis)")]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=1)
    fig.tight_layout(h_pad=0.4)
    return fig


F7_STYLES = {"powerful": {"color": CONTRAST_COLORS[1], "ls": "-"}, "best": {"color": CONTRAST_COLORS[2], "ls": "--"}}


def plot_single_sentence(runs: list[SSTRun], seed_index: int = 0) -> plt.Figure:
    """F7: weight, score and |q||v| of "powerful" and "best" in the F7 sentence against epoch (log axis).

    Each column shares its y axis over the runs, so a run that never left its initial plateau shows as flat."""
    use_style()
    fig, axes = plt.subplots(len(runs), 3, figsize=(FIG_WIDTH, 1.45 * len(runs) + 0.9), squeeze=False,
                             sharex=True, sharey="col")
    for _r, (row, run) in enumerate(zip(axes, runs)):
        df = run.single_sentence()
        df = df[(df.seed == run.seeds[seed_index]) & (df.epoch >= 1)]
        for word, g in df.groupby("word"):
            for ax, col in zip(row, ("weight", "score", "norm")):
                ax.plot(g.epoch, g[col], lw=1.4, label=f"\"{word}\"", **F7_STYLES[word])
        row[0].set_ylabel(f"{run.name}\n{run.variant}")
        for ax in row:
            ax.set_xscale("log")
    for ax, title in zip(axes[0], ("(a) attention weight", f"(b) {SCORE_LABEL}", f"(c) {NORM_LABEL}")):
        ax.set_title(title)
    fig.supxlabel("epoch (log scale)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
               title="in the sentence \"a powerful sequel and one of the best films of the year\"")
    fig.tight_layout(h_pad=0.4)
    return fig


def plot_padding(runs: list[SSTRun]) -> plt.Figure:
    """Unmasked variant: ``$PAD$``'s mean attention weight over the training sentences and its score,
    against epoch, per dataset; seed 0 bold, the other seeds faint."""
    use_style()
    kinds = sorted({run.kind for run in runs})
    fig, axes = plt.subplots(2, len(kinds), figsize=(FIG_WIDTH, 5.0), squeeze=False, sharex="col")
    names, variants = [], []
    for run in runs:
        column = kinds.index(run.kind)
        pad = run.word_names.index("$PAD$")
        color = MODEL_COLORS.get(run.name, "C0")
        names.append(run.name)
        variants.append(run.variant)
        for k in range(len(run.seeds)):
            last = run.last_index(k) + 1
            lw, alpha = (1.6, 1.0) if k == 0 else (0.8, 0.4)
            style = {"color": color, "lw": lw, "alpha": alpha, "ls": VARIANT_STYLES.get(run.variant, "-")}
            axes[0, column].plot(run.record_epochs[:last], run.pad_weight[:last, k], **style)
            axes[1, column].plot(run.record_epochs[:last], run.scores[:last, k, pad], **style)
    for column, kind in enumerate(kinds):
        axes[0, column].set(title=f"{kind}, unmasked padding", ylabel=r"mean weight of \$PAD\$" if column == 0 else "",
                            ylim=(0, 1), xscale="symlog")
        axes[1, column].set(xlabel="epoch (symmetric log scale)", ylabel=r"score of \$PAD\$" if column == 0 else "",
                            xscale="symlog")
        for ax in axes[:, column]:
            ax.set_xlim(left=0)
    _model_legend(fig, list(dict.fromkeys(names)),
                  [(f"variant {v}", {"ls": VARIANT_STYLES.get(v, "-")}) for v in dict.fromkeys(variants)], ncol=4)
    fig.tight_layout()
    return fig


SEED_MARKERS = ("o", "s", "^", "D", "v")


def plot_logit_against_padding(table: pd.DataFrame, correlations: pd.DataFrame, model: str,
                               priors: dict[str, float] | None = None, title: str = "") -> plt.Figure:
    """Each sentence's logit (left) and P(positive) in % (right) against its padding share, one marker per seed
    (seed 0 opaque, the others faint), the correlation of logit and padding share in the legend.

    ``table`` is :func:`~attnlib.experiments.sst.analysis.sentence_logits`, ``correlations`` has a row per seed
    with its ``r(logit, padding share)`` (:func:`~attnlib.experiments.sst.analysis.logit_correlations` of the
    table, or :func:`~attnlib.experiments.sst.analysis.padding_logit_summary`); ``priors`` maps a label to a share of
    positive sentences in %, drawn as horizontal lines on the right panel (e.g. the training and dev priors)."""
    use_style()
    color = MODEL_COLORS.get(model, "C0")
    r = correlations.set_index("seed")["r(logit, padding share)"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.3), sharex=True)
    for k, (seed, g) in enumerate(table.groupby("seed", sort=False)):
        style = {"color": color, "marker": SEED_MARKERS[k % len(SEED_MARKERS)], "s": 7, "lw": 0,
                 "alpha": 0.8 if k == 0 else 0.3, "zorder": 3 if k == 0 else 2}
        left.scatter(g["padding share"], g["logit"], label=f"{model}, seed {seed}: r = {r[seed]:.4f}", **style)
        right.scatter(g["padding share"], 100 * g["P(positive)"], **style)
    for (label, value), ls in zip((priors or {}).items(), (":", "--", "-.")):
        right.axhline(value, color=THEORY_COLOR, lw=1.1, ls=ls, label=f"{label}: {value:.1f} %")
    left.set(xlabel=r"padding share (\$PAD\$ tokens / padded length)", ylabel="logit (positive − negative)",
             title=title)
    right.set(xlabel="padding share", ylabel="P(positive) (%)", title="predicted probability")
    left.legend(loc="upper left", markerscale=2)
    if priors:
        right.legend(loc="center left")
    fig.tight_layout()
    return fig


def unavailable_figure(text: str) -> plt.Figure:
    """A small figure that only says ``text`` (e.g. that a run is not available in this build), glued where the
    book would show a run's figure, so that every figure the chapter names exists."""
    use_style()
    fig, ax = plt.subplots(figsize=(4.5, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center")
    return fig


def t1_markdown(table: pd.DataFrame) -> str:
    """T1 as a Markdown table (accuracies in %, mean ± std over seeds, paper beside)."""
    lines = ["| dataset | model | variant | test acc. (%) | paper | diff | best epoch | stopped | source |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.dataset} | {r.model} | {r.variant} | {r.test_mean:.2f} ± {r.test_std:.2f} | {r.paper:.2f} | "
                     f"{r.diff:+.2f} | {r.best_epoch_mean:.0f} | {r.stopped_epoch_mean:.0f} | {r.source} |")
    return "\n".join(lines)
