"""Figures: one function per figure, one style for all (see :mod:`attnlib.plots.style`)."""

from attnlib.plots.ablation import plot_ablation, plot_general_identity
from attnlib.plots.beyond import (
                                  plot_breaking,
                                  plot_capacity,
                                  plot_growth,
                                  plot_suppression,
                                  plot_sweeps,
                                  suppression_table,
)
from attnlib.plots.performance import plot_scaling
from attnlib.plots.sst import (
                                  plot_attention_shift,
                                  plot_sen_gaps,
                                  plot_sen_grid,
                                  plot_single_sentence,
                                  plot_sst_losses,
                                  t1_markdown,
)
from attnlib.plots.style import MODEL_COLORS, figure_png, glue_figure, min_font_pt, save_figure, use_style
from attnlib.plots.synthetic import plot_final_distributions, plot_loss_curves, plot_sen_curves
from attnlib.plots.theory import plot_identity_family

__all__ = ["MODEL_COLORS", "plot_final_distributions", "plot_identity_family", "plot_loss_curves",
           "plot_sen_curves", "save_figure", "use_style", "figure_png", "glue_figure", "min_font_pt",
           "plot_ablation", "plot_general_identity",
           "plot_breaking", "plot_capacity", "plot_growth", "plot_suppression", "plot_sweeps",
           "suppression_table",
           "plot_attention_shift", "plot_sen_gaps", "plot_sen_grid", "plot_single_sentence", "plot_sst_losses",
           "t1_markdown", "plot_scaling"]
