"""Figures for two findings on the stored SST runs: where Attn-FC passes the paper's accuracy, and the dev loss's
trend on the Attn-TC plateau with and without masked padding (see attnlib.experiments.sst.analysis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from attnlib.plots.style import FIG_WIDTH, MODEL_COLORS, THEORY_COLOR, use_style

if TYPE_CHECKING:
    from attnlib.experiments.sst import SSTRun


def _panels(n: int) -> tuple[plt.Figure, list[plt.Axes]]:
    """``n`` panels in rows of two at the book's column width (no figure wider than 3:1); spare axes hidden."""
    rows = -(-n // 2)
    fig, axes = plt.subplots(rows, min(n, 2), figsize=(FIG_WIDTH, 3.6 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def plot_accuracy_against_epoch(runs: Sequence[SSTRun], paper: dict[str, float]) -> plt.Figure:
    """One panel per run (dataset): test accuracy (%) at every snapshot, seed 0 bold and the others faint, the
    paper's value (``paper[kind]``, in %) as a dotted line and each seed's best epoch as a short vertical mark."""
    use_style()
    fig, axes = _panels(len(runs))
    for ax, run in zip(axes, runs):
        color = MODEL_COLORS.get(run.name, "C0")
        curves = run.accuracy_curves()
        for k, seed in enumerate(run.seeds):
            c = curves[curves.seed == seed]
            lw, alpha = (1.8, 1.0) if k == 0 else (1.0, 0.45)
            ax.plot(c.epoch, c["test accuracy (%)"], color=color, lw=lw, alpha=alpha,
                    label=f"{run.name}, seed {seed}" if k == 0 else (f"{run.name}, other seeds" if k == 1 else None))
        for k in range(len(run.seeds)):
            ax.axvline(int(run.best_epoch[k]), color=color, lw=0.8, ls="--", alpha=0.6,
                       label="best epoch (early stopping)" if k == 0 else None)
        ax.axhline(paper[run.kind], color=THEORY_COLOR, lw=1.2, ls=":", label=f"paper: {paper[run.kind]:.2f} %")
        ax.set(title=f"{run.kind}, {run.name} ({run.variant})", xlabel="epoch", ylabel="test accuracy (%)")
        later = curves["test accuracy (%)"][curves.epoch >= 100]  # the first snapshots sit near chance
        if len(later):
            ax.set_ylim(float(np.nanmin(later)) - 1, None)
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_dev_loss_trend(runs: Sequence[SSTRun], start: int, end: int) -> plt.Figure:
    """One panel per dataset: the dev loss minus its value at ``start`` over epochs ``start`` to ``end``, masked
    padding solid and unmasked dashed (seed 0), against the float32 spacing of the loss (grey band)."""
    use_style()
    kinds = sorted({r.kind for r in runs})
    fig, axes = _panels(len(kinds))
    for ax, kind in zip(axes, kinds):
        spacing = None
        for run in (r for r in runs if r.kind == kind):
            stop = min(end, int(run.stopped_epoch[0]))
            epochs = np.arange(start, stop + 1)
            dev = run.dev_loss[start: stop + 1, 0].astype(np.float64)
            masked = run.config.data.mask_padding
            ax.plot(epochs, dev - dev[0], color=MODEL_COLORS.get(run.name, "C0"), ls="-" if masked else "--",
                    lw=1.6, label=f"{run.name}, {'masked' if masked else 'unmasked'} padding ({run.variant})")
            spacing = float(np.spacing(np.float32(run.dev_loss[start, 0])))
        if spacing is not None:
            ax.axhspan(-spacing, spacing, color="0.6", alpha=0.4, lw=0, label="± one float32 spacing")
        ax.set(title=kind, xlabel="epoch", ylabel=f"dev loss − dev loss at epoch {start}")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.legend(loc="best")
    fig.tight_layout()
    return fig
