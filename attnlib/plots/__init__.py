"""Figures: one function per figure, one style for all (see :mod:`attnlib.plots.style`)."""

from attnlib.plots.style import MODEL_COLORS, save_figure, use_style
from attnlib.plots.synthetic import (SYNTHETIC_FIGURES, plot_final_distributions, plot_loss_curves,
                                     plot_sen_curves)
from attnlib.plots.theory import plot_identity_family

__all__ = ["MODEL_COLORS", "SYNTHETIC_FIGURES", "plot_final_distributions", "plot_identity_family", "plot_loss_curves",
           "plot_sen_curves", "save_figure", "use_style"]
