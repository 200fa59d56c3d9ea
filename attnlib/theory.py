"""The score / embedding-norm identity (spec §3) and the topic word's attention weight.

Along gradient flow, a topic word w in sentences of one topic word plus m null words obeys

    |q|^2 (|v_w(t)|^2 - |v_w(0)|^2) = 2 [ s_w(t) - s_w(0) + (e^{s_w(t)} - e^{s_w(0)}) / m ],

so with s_w(0) = 0 and v_w(0) = 0 the plotted quantity is |q| |v_w| = sqrt(2 (s + (e^s - 1) / m)).
"""

from __future__ import annotations

import numpy as np


def phi(score: np.ndarray | float, m: float) -> np.ndarray:
    """phi_m(s) = s + (e^s - 1) / m, the potential whose double is |q|^2 |v|^2 (default init)."""
    score = np.asarray(score, dtype=float)
    return score + np.expm1(score) / m


def sen_norm(score: np.ndarray | float, m: float, initial_score: np.ndarray | float = 0.0,
             initial_norm: np.ndarray | float = 0.0) -> np.ndarray:
    """Predicted |q| |v_w| for a topic word with score ``score`` (general initial condition).

    ``initial_norm`` is |q| |v_w(0)|; negative values under the root are clipped to 0 for plotting.
    """
    gain = 2.0 * (phi(score, m) - phi(initial_score, m))
    return np.sqrt(np.clip(np.asarray(initial_norm, dtype=float) ** 2 + gain, 0.0, None))


def attention_weight(score: np.ndarray | float, m: float) -> np.ndarray:
    """Weight e^s / (e^s + m) of a topic word among m null words (score 0)."""
    score = np.asarray(score, dtype=float)
    return 1.0 / (1.0 + m * np.exp(-score))
