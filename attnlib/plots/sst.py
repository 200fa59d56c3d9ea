"""Figures of the SST chapter: losses (T1), SEN curves (F5), attention shift (F6), one sentence (F7)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from attnlib import theory
from attnlib.experiments.sst import F6_WORDS, SSTResult, SSTRun
from attnlib.plots.style import MODEL_COLORS, NORM_LABEL, PANEL_WIDTH, SCORE_LABEL, THEORY_COLOR, use_style

VARIANT_STYLES = {"default": "-", "patience2000": "--", "unmasked": ":", "code": "-."}


def plot_sst_losses(result: SSTResult) -> plt.Figure:
    """T1: training (solid) and dev (dashed) loss against epoch for every setting; seed 0 bold, others faint."""
    use_style()
    kinds = sorted({k for k, _, _ in result.runs})
    variants = [v for v in VARIANT_STYLES if any(s[2] == v for s in result.runs)]
    fig, axes = plt.subplots(len(variants), len(kinds), figsize=(PANEL_WIDTH * 1.4 * len(kinds), 3.0 * len(variants)),
                             squeeze=False)
    for (kind, head, variant), run in result.runs.items():
        ax = axes[variants.index(variant), kinds.index(kind)]
        color = MODEL_COLORS.get(run.name, "C0")
        for k, seed in enumerate(run.seeds):
            stop = int(run.stopped_epoch[k])
            epochs = np.arange(stop + 1)
            lw, alpha = (1.6, 1.0) if k == 0 else (0.8, 0.4)
            ax.plot(epochs, run.loss[: stop + 1, k], color=color, lw=lw, alpha=alpha,
                    label=f"{run.name} train" if k == 0 else None)
            ax.plot(epochs, run.dev_loss[: stop + 1, k], color=color, lw=lw, alpha=alpha, ls="--",
                    label=f"{run.name} dev" if k == 0 else None)
            ax.axvline(int(run.best_epoch[k]), color=color, lw=0.6, alpha=alpha * 0.6, ls=":")
        ax.set(title=f"{kind}, {variant}", xlabel="epoch", ylabel="mean cross-entropy", xscale="symlog")
        ax.set_xlim(left=0)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def plot_sen_grid(run: SSTRun, n_words: int = 12, seed_index: int = 0) -> plt.Figure:
    """F5: the top ``n_words`` words of one seed, (s, |q||v|) at every snapshot against sqrt(2 φ_{m_w}(s))."""
    use_style()
    curves = run.sen_curves(n_top=n_words)
    curves = curves[curves.seed == run.seeds[seed_index]]
    cols = 4
    rows = int(np.ceil(n_words / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.3 * rows), squeeze=False)
    color = MODEL_COLORS.get(run.name, "C0")
    for ax, (rank, g) in zip(axes.ravel(), curves.groupby("rank")):
        g = g.sort_values("epoch")
        s_max = max(float(g.score.max()), 1e-3)
        grid = np.linspace(min(0.0, float(g.score.min())), s_max * 1.05, 200)
        m_w = float(g.m_w.iloc[0])
        ax.plot(grid, theory.sen_norm(grid, m_w), color=THEORY_COLOR, lw=1.2, label="theory")
        ax.plot(g.score, g.norm, ls=":", marker=".", ms=3, color=color, lw=1, label="measured")
        word = g.word.iloc[0]
        flag = " (PAD)" if word == "$PAD$" else ""
        ax.set_title(f"#{rank} {word}{flag}, m={m_w:.1f}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(curves["rank"].unique()):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.supxlabel(SCORE_LABEL, fontsize=9)
    fig.supylabel(NORM_LABEL, fontsize=9)
    fig.suptitle(f"{run.kind} {run.name} ({run.variant}), seed {run.seeds[seed_index]}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_sen_gaps(result: SSTResult, n_top: int = 100) -> plt.Figure:
    """F5 summary: relative gap |n - sqrt(2φ)| / sqrt(2φ) at the last snapshot of the top words, by rank."""
    use_style()
    runs = list(result.runs.values())
    fig, axes = plt.subplots(1, len(runs), figsize=(2.6 * len(runs), 3.0), squeeze=False, sharey=True)
    for ax, run in zip(axes[0], runs):
        gaps = run.sen_gaps(n_top)
        color = MODEL_COLORS.get(run.name, "C0")
        ax.scatter(gaps["rank"], gaps.rel_gap, s=5, color=color, alpha=0.5)
        med = gaps[gaps["rank"] <= 20].groupby("seed").rel_gap.median()
        ax.axhline(0.25, color="grey", lw=0.8, ls="--")
        ax.set(title=f"{run.kind} {run.name}\n{run.variant}; median top-20 {med.mean():.2f}", xlabel="rank",
               yscale="log")
        ax.title.set_fontsize(8)
    axes[0, 0].set_ylabel("relative gap at last snapshot")
    fig.tight_layout()
    return fig


def plot_attention_shift(runs: list[SSTRun], seed_index: int = 0) -> plt.Figure:
    """F6: per run a row of 5 panels; purity Π (red, left), occurrence Ω (blue, right), Ω~ dashed."""
    use_style()
    fig, axes = plt.subplots(len(runs), len(F6_WORDS), figsize=(2.5 * len(F6_WORDS), 2.4 * len(runs)), squeeze=False)
    for row, run in zip(axes, runs):
        df = run.shift_curves()
        df = df[(df.seed == run.seeds[seed_index]) & (df.epoch >= 1)]
        for ax, word in zip(row, F6_WORDS):
            g = df[df.word == word].sort_values("epoch")
            x = g.epoch / 1000
            ax.plot(x, g.purity, color="tab:red", lw=1.3)
            ax.set_ylim(-0.1, 1.1)
            twin = ax.twinx()
            twin.plot(x, g.occurrence, color="tab:blue", lw=1.3)
            twin.plot(x, g.occurrence_unfloored, color="tab:blue", lw=1.0, ls="--")
            twin.set_ylim(-0.1, 3.05)
            ax.set_title(f"{run.name} ({run.variant}): {word}", fontsize=8)
            ax.tick_params(labelsize=7)
            twin.tick_params(labelsize=7, colors="tab:blue")
            ax.set_xlabel("epoch / 1000", fontsize=8)
        row[0].set_ylabel("purity Π", color="tab:red")
    fig.tight_layout()
    return fig


def plot_single_sentence(runs: list[SSTRun], seed_index: int = 0) -> plt.Figure:
    """F7: weight, score and |q||v| of "powerful" and "best" in the F7 sentence against epoch / 1000."""
    use_style()
    fig, axes = plt.subplots(len(runs), 3, figsize=(PANEL_WIDTH * 3, 2.6 * len(runs)), squeeze=False)
    colors = {"powerful": "tab:purple", "best": "tab:green"}
    for row, run in zip(axes, runs):
        df = run.single_sentence()
        df = df[df.seed == run.seeds[seed_index]]
        for word, g in df.groupby("word"):
            for ax, col in zip(row, ("weight", "score", "norm")):
                ax.plot(g.epoch / 1000, g[col], color=colors[word], label=word)
        for ax, label in zip(row, ("attention weight in the sentence", SCORE_LABEL, NORM_LABEL)):
            ax.set(xlabel="epoch / 1000", ylabel=label, title=f"{run.name} ({run.variant})")
        row[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_padding(runs: list[SSTRun]) -> plt.Figure:
    """Unmasked variant: ``$PAD$``'s mean attention weight over the training sentences and its score,
    against epoch, per dataset; seed 0 bold, the other seeds faint."""
    use_style()
    kinds = sorted({run.kind for run in runs})
    fig, axes = plt.subplots(2, len(kinds), figsize=(PANEL_WIDTH * 1.4 * len(kinds), 5.4), squeeze=False)
    for run in runs:
        column = kinds.index(run.kind)
        pad = run.word_names.index("$PAD$")
        color = MODEL_COLORS.get(run.name, "C0")
        for k in range(len(run.seeds)):
            last = run.last_index(k) + 1
            lw, alpha = (1.6, 1.0) if k == 0 else (0.8, 0.4)
            style = {"color": color, "lw": lw, "alpha": alpha, "ls": VARIANT_STYLES.get(run.variant, "-"),
                     "label": f"{run.name} ({run.variant})" if k == 0 else None}
            axes[0, column].plot(run.record_epochs[:last], run.pad_weight[:last, k], **style)
            axes[1, column].plot(run.record_epochs[:last], run.scores[:last, k, pad], **style)
    for column, kind in enumerate(kinds):
        axes[0, column].set(title=f"{kind}, unmasked padding", ylabel=r"mean weight of \$PAD\$", ylim=(0, 1), xscale="symlog")
        axes[1, column].set(xlabel="epoch", ylabel=r"score of \$PAD\$", xscale="symlog")
        for ax in axes[:, column]:
            ax.set_xlim(left=0)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def t1_markdown(table: pd.DataFrame) -> str:
    """T1 as a Markdown table (accuracies in %, mean ± std over seeds, paper beside)."""
    lines = ["| dataset | model | variant | test acc. (%) | paper | diff | best epoch | stopped | source |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.dataset} | {r.model} | {r.variant} | {r.test_mean:.2f} ± {r.test_std:.2f} | {r.paper:.2f} | "
                     f"{r.diff:+.2f} | {r.best_epoch_mean:.0f} | {r.stopped_epoch_mean:.0f} | {r.source} |")
    return "\n".join(lines)
