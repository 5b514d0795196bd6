"""Out-of-distribution detection from a rung's probabilities: how well its uncertainty on test examples of classes
it never saw (:mod:`bench.data.ood`) separates them from in-distribution test examples.

Each score is higher for "more likely out of distribution": ``msp``, one minus the maximum probability (Hendrycks
& Gimpel, 2017), and ``entropy``, the predictive entropy — of the mean probabilities for MC-Dropout and ensembles,
so their extra uncertainty counts. OOD examples are the positives: AUROC, AUPR (average precision) and FPR at 95%
TPR (the share of in-distribution examples flagged when 95% of the OOD ones are), from scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

TPR_LEVEL = 0.95


def msp(probs: np.ndarray) -> np.ndarray:
    """One minus the maximum probability."""
    return 1.0 - probs.max(axis=1)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy in nats (0 log 0 = 0)."""
    p = np.clip(probs, 0.0, 1.0)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)


SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"msp": msp, "entropy": entropy}


def fpr_at_tpr(is_ood: np.ndarray, score: np.ndarray, level: float = TPR_LEVEL) -> float:
    """False-positive rate at the first threshold whose true-positive rate reaches ``level``."""
    fpr, tpr, _ = roc_curve(is_ood, score)
    return float(fpr[np.searchsorted(tpr, level - 1e-12, side="left")])


def detection(in_probs: np.ndarray, ood_probs: np.ndarray) -> dict[str, dict[str, float] | int]:
    """Each score's AUROC, AUPR and FPR at 95% TPR for telling ``ood_probs`` rows from ``in_probs`` rows."""
    is_ood = np.r_[np.zeros(len(in_probs)), np.ones(len(ood_probs))]
    out: dict[str, dict[str, float] | int] = {"n_in": len(in_probs), "n_out": len(ood_probs)}
    for name, fn in SCORES.items():
        score = np.r_[fn(in_probs), fn(ood_probs)]
        out[name] = {
            "auroc": float(roc_auc_score(is_ood, score)),
            "aupr": float(average_precision_score(is_ood, score)),
            "fpr_at_95_tpr": fpr_at_tpr(is_ood, score),
        }
    return out
