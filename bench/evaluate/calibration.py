"""Calibration errors from (confidence, correctness) pairs: ECE with equal-width or equal-mass bins, MCE.

Binning: bin ``b`` of ``n`` equal-width bins holds confidences in ``[b/n, (b+1)/n)``, and a confidence of
exactly 1 falls in the last bin (as baal's ECE; torchmetrics gives 1.0 a bin of its own).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

DEFAULT_BINS = 15


def _bin_stats(
    conf: np.ndarray, correct: np.ndarray, ids: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = np.bincount(ids, minlength=n_bins).astype(np.float64)
    conf_sum = np.bincount(ids, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(ids, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(counts > 0, np.abs(acc_sum - conf_sum) / counts, 0.0)
    return counts, gap, np.where(counts > 0, acc_sum / np.maximum(counts, 1), np.nan)


def equal_width_ids(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence in ``n_bins`` equal-width bins over [0, 1]."""
    return np.clip(np.floor(conf * n_bins).astype(np.int64), 0, n_bins - 1)


def equal_mass_ids(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence in ``n_bins`` equal-mass bins: bin ``b`` holds the sorted positions
    ``[n*b // n_bins, n*(b+1) // n_bins)``, so sizes differ by at most one."""
    n = len(conf)
    order = np.argsort(conf, kind="stable")
    edges = np.arange(n_bins + 1) * n // n_bins
    ids = np.empty(n, dtype=np.int64)
    ids[order] = np.searchsorted(edges, np.arange(n), side="right") - 1
    return ids


def calibration_error(
    conf: np.ndarray,
    correct: np.ndarray,
    n_bins: int = DEFAULT_BINS,
    binning: Literal["width", "mass"] = "width",
    norm: Literal["l1", "max"] = "l1",
) -> float:
    """Expected (``l1``) or maximum (``max``) gap between accuracy and confidence over bins."""
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return float("nan")
    ids = equal_width_ids(conf, n_bins) if binning == "width" else equal_mass_ids(conf, n_bins)
    counts, gap, _ = _bin_stats(conf, correct, ids, n_bins)
    if norm == "max":
        return float(gap[counts > 0].max())
    return float(np.sum(gap * counts) / counts.sum())


def top_label(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confidence of the predicted class and whether that prediction is correct."""
    pred = probs.argmax(axis=1)
    return probs[np.arange(len(probs)), pred], (pred == y).astype(np.float64)


def binary_top_label(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence and correctness of a binary prediction with positive-class probability ``p``."""
    positive = p >= 0.5
    return np.where(positive, p, 1.0 - p), (positive == (y == 1)).astype(np.float64)


def reliability_table(conf: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS) -> dict[str, list[float]]:
    """Per equal-width bin: count, mean confidence and accuracy (NaN where a bin is empty)."""
    conf = np.asarray(conf, dtype=np.float64)
    ids = equal_width_ids(conf, n_bins)
    counts = np.bincount(ids, minlength=n_bins).astype(np.float64)
    conf_mean = np.bincount(ids, weights=conf, minlength=n_bins) / np.maximum(counts, 1)
    _, _, acc = _bin_stats(conf, np.asarray(correct, dtype=np.float64), ids, n_bins)
    return {
        "count": counts.astype(int).tolist(),
        "confidence": np.where(counts > 0, conf_mean, np.nan).tolist(),
        "accuracy": acc.tolist(),
    }
