"""Figures of the identity itself: the SEN curve family and the topic word's attention weight."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from attnlib import theory
from attnlib.plots.style import FIG_WIDTH, NORM_LABEL, SCORE_LABEL, use_style


def plot_identity_family(m_values: Sequence[int] = (5, 10, 20, 40), max_score: float = 5.0) -> plt.Figure:
    """|q||v| = sqrt(2 phi_m(s)) and the attention weight e^s / (e^s + m) for several m (P5, P7)."""
    use_style()
    s = np.linspace(0, max_score, 300)
    fig, (left, right) = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.2))
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(m_values)))
    for m, color in zip(m_values, colors):
        left.plot(s, theory.sen_norm(s, m), color=color, lw=2, label=f"m = {m}")
        right.plot(s, theory.attention_weight(s, m), color=color, lw=2, label=f"m = {m}")
    left.set(xlabel=SCORE_LABEL, ylabel=NORM_LABEL, title="the identity", xlim=(0, max_score), ylim=(0, None))
    right.set(xlabel=SCORE_LABEL, ylabel=r"attention weight $e^{s}/(e^{s}+m)$", title="the topic word's weight",
              xlim=(0, max_score), ylim=(0, 1))
    left.legend()
    fig.tight_layout()
    return fig
