"""Quality and detection metrics, in numpy, checked by hand in the unit tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def psnr(clean: np.ndarray, other: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image ((N, ...) arrays in [0, data_range]).
    Identical images give +inf."""
    clean = np.asarray(clean, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    mse = ((clean - other) ** 2).reshape(clean.shape[0], -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


def mean_psnr(values: np.ndarray) -> float:
    """Mean of per-image PSNRs, ignoring images restored exactly (+inf)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("inf")


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold (a score at or above the
    threshold is called positive), from (0, 0) to (1, 1), and the thresholds."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("a ROC curve needs both normal and anomalous examples")
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(p)[last_of_tie]
    fp = np.cumsum(~p)[last_of_tie]
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]
    thresholds = np.r_[np.inf, s[last_of_tie]]
    return fpr, tpr, thresholds


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random anomaly scores above a random normal
    example (ties count half)."""
    fpr, tpr, _ = roc_curve(scores, positive)
    return float(np.trapezoid(tpr, fpr))


@dataclass(frozen=True)
class Detection:
    threshold: float
    precision: float
    recall: float
    f1: float
    flagged: int


def detection_at(scores: np.ndarray, positive: np.ndarray, threshold: float) -> Detection:
    """Precision, recall and F1 of calling every score above ``threshold`` an anomaly."""
    flagged = np.asarray(scores) > threshold
    positive = np.asarray(positive, dtype=bool)
    tp = int((flagged & positive).sum())
    precision = tp / int(flagged.sum()) if flagged.any() else 0.0
    recall = tp / int(positive.sum()) if positive.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return Detection(float(threshold), precision, recall, f1, int(flagged.sum()))
