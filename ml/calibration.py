"""Temperature scaling: the one softmax(logits / temperature) that training, evaluation and
serving share, and fitting the temperature on validation logits. numpy only at import, so
the worker can use it."""

from __future__ import annotations

import numpy as np


def calibrated_probs(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities over the last axis: softmax(logits / temperature), in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising validation NLL (Guo et al., 2017)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits = np.asarray(logits, dtype=np.float64)

    def nll(log_t):
        lp = log_softmax(logits / np.exp(log_t), axis=-1)
        return -lp[np.arange(len(labels)), labels].mean()

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))
