"""Figures of the performance appendix: epoch time against the size of the corpus."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from attnlib.epoch_cost import cost_model_ms
from attnlib.plots.style import FIG_WIDTH, use_style


def plot_scaling(rows: Sequence[Mapping], fit: Mapping[str, float]) -> plt.Figure:
    """Engine epoch time against tokens (log-log), one colour per sentence length: the measured rows of
    :func:`attnlib.benchmark.corpus_table` as points, the two-term cost model of
    :func:`attnlib.benchmark.linear_cost_fit` as dashed lines, and the per-token rate as a second panel."""
    use_style()
    figure, (time_ax, rate_ax) = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.2))
    lengths = sorted({int(row["length"]) for row in rows})
    colors = dict(zip(lengths, sns.color_palette("viridis", len(lengths))))
    for length in lengths:
        mine = sorted((row for row in rows if int(row["length"]) == length), key=lambda row: row["tokens"])
        tokens = np.array([row["tokens"] for row in mine], dtype=float)
        sentences = np.array([row["sentences"] for row in mine], dtype=float)
        ms = np.array([row["epoch_ms"] for row in mine], dtype=float)
        color = colors[length]
        time_ax.loglog(tokens, ms, "o", color=color, label=f"{length} words per sentence")
        time_ax.loglog(tokens, cost_model_ms(fit, tokens, sentences), "--", color=color, lw=1)
        rate_ax.semilogx(tokens, ms * 1e6 / tokens, "o-", color=color)
    time_ax.plot([], [], "ko", label="measured")
    time_ax.plot([], [], "k--", lw=1, label="cost model: fixed + per token + per sentence")
    time_ax.set(xlabel="tokens in the corpus", ylabel="epoch time (ms)", title="Epoch time")
    time_ax.legend()
    rate_ax.set(xlabel="tokens in the corpus", ylabel="ns per token", title="Cost per token")
    rate_ax.set_ylim(bottom=0)
    figure.tight_layout()
    return figure
