"""Multi-label decision thresholds tuned on validation to maximise F1: one global, and one per label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve

FIXED_THRESHOLD = 0.5
MIN_POSITIVES = 5  # a PR curve over fewer validation positives is too coarse to pick a label's own threshold


def best_f1_threshold(scores: np.ndarray, y: np.ndarray) -> float | None:
    """The threshold maximising the F1 of ``scores >= t`` against 0/1 ``y``, read off sklearn's
    precision-recall curve; placed midway between the chosen score and the next lower one so it does not
    sit on a validation example. A cut calling every example positive is a constant, not a decision rule,
    and is not considered. None when ``y`` has no positive or all scores tie."""
    scores, y = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(y).ravel()
    if not y.any():
        return None
    precision, recall, cuts = precision_recall_curve(y, scores)
    if len(cuts) < 2:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    i = 1 + int(np.argmax(f1[1:-1]))  # cuts[0] is the lowest score (all positive); the last PR point has no cut
    return (float(cuts[i]) + float(cuts[i - 1])) / 2


@dataclass(frozen=True)
class Thresholds:
    """A global threshold and per-label thresholds (labels with under ``MIN_POSITIVES`` validation positives
    use the global one)."""

    global_: float
    per_label: np.ndarray

    @classmethod
    def fixed(cls, n_labels: int, threshold: float = FIXED_THRESHOLD) -> Thresholds:
        """The same threshold everywhere (no tuning)."""
        return cls(threshold, np.full(n_labels, threshold))

    @classmethod
    def tune(cls, probs: np.ndarray, y: np.ndarray, min_positives: int = MIN_POSITIVES) -> Thresholds:
        """Tune on validation ``[N, L]`` probabilities: the global threshold maximises micro-F1 (every
        (example, label) decision pooled, the lesson's PR-curve choice); each label's maximises its F1."""
        pooled = best_f1_threshold(probs, y)
        g = FIXED_THRESHOLD if pooled is None else pooled
        per = [
            best_f1_threshold(probs[:, j], y[:, j]) if y[:, j].sum() >= min_positives else None
            for j in range(y.shape[1])
        ]
        return cls(g, np.array([g if t is None else t for t in per]))

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any], labels: tuple[str, ...]) -> Thresholds:
        """The thresholds a stored multi-label score dict was computed with."""
        per = metrics["thresholds_per_label"]
        return cls(float(metrics["threshold"]), np.array([per[name] for name in labels], dtype=np.float64))

    def decisions(self) -> dict[str, float | np.ndarray]:
        """The three decision rules reported: fixed 0.5, the tuned global threshold, per-label thresholds."""
        return {"fixed": FIXED_THRESHOLD, "global": self.global_, "per_label": self.per_label}
