"""The engine's cost model: epoch time as a fixed cost plus a cost per token and per sentence.

:func:`attnlib.benchmark.linear_cost_fit` fits its three coefficients to measured epoch times; the
scaling figure (:func:`attnlib.plots.plot_scaling`) draws it. It lives here so that the figures need
not import the benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def cost_model_ms(fit: Mapping[str, float], tokens: np.ndarray, sentences: np.ndarray) -> np.ndarray:
    """Epoch time (ms) that :func:`~attnlib.benchmark.linear_cost_fit`'s ``fit`` predicts for corpora of these sizes."""
    return fit["fixed_ms"] + (fit["ns_per_token"] * tokens + fit["ns_per_sentence"] * sentences) * 1e-6
