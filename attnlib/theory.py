"""The score / embedding-norm identity the paper proves for a topic word, and the topic word's attention weight.

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


def phi_inverse(value: np.ndarray | float, m: float) -> np.ndarray:
    """The score s with phi_m(s) = value (phi_m is strictly increasing), by bisection to float precision."""
    value = np.asarray(value, dtype=float)
    # phi_m(s) <= s for s <= 0 and phi_m(s) >= s for s >= 0, so the root is >= min(value, 0);
    # phi_m(s) >= s - 1/m and phi_m(s) >= (e^s - 1)/m bound it above.
    low = np.minimum(value, 0.0) - 1.0
    high = np.maximum(np.log1p(np.maximum(value, 0.0) * m) + 1.0, 1.0)
    for _ in range(200):
        middle = 0.5 * (low + high)
        above = phi(middle, m) > value
        high, low = np.where(above, middle, high), np.where(above, low, middle)
    return 0.5 * (low + high)


def p4_score_dip_bound(initial_norm: np.ndarray | float, m: float, initial_score: np.ndarray | float = 0.0) -> np.ndarray:
    """P4: the deepest score dip the identity allows, s(0) - phi_m^{-1}(phi_m(s(0)) - (|q||v(0)|)^2 / 2).

    The norm cannot fall below 0, so 2 (phi_m(s) - phi_m(s(0))) >= -(|q||v(0)|)^2.
    """
    initial_score = np.asarray(initial_score, dtype=float)
    floor = phi(initial_score, m) - np.asarray(initial_norm, dtype=float) ** 2 / 2
    return initial_score - phi_inverse(floor, m)

