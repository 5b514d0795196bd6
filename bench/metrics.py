"""Quality and calibration metrics for single-label and multi-label predictions (typed score dicts)."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    hamming_loss,
    log_loss,
    precision_recall_fscore_support,
)

from bench.calibration import DEFAULT_BINS, binary_top_label, calibration_error, reliability_table, top_label
from bench.data import TaskSpec
from bench.thresholds import Thresholds


class ClassScores(TypedDict):
    precision: float
    recall: float
    f1: float
    support: int


class DecisionScores(TypedDict, total=False):
    """Multi-label scores of one decision rule (a threshold, or one per label)."""

    accuracy: float
    hamming_loss: float
    f1_micro: float
    f1_macro: float
    f1_weighted: float
    precision_micro: float
    recall_micro: float
    precision_macro: float
    recall_macro: float
    precision_weighted: float
    recall_weighted: float


class Scores(TypedDict, total=False):
    """Metrics stored in result.json. Multi-label: ``accuracy`` is subset accuracy; the headline decision
    scores use the validation-tuned global ``threshold``, and ``by_decision`` holds them for the fixed 0.5,
    global and per-label thresholds; ``ece``/``mce`` are means over labels of the binary top-label errors
    (decided side at 0.5), ``brier``/``nll`` are per-label means."""

    accuracy: float
    f1_macro: float
    f1_weighted: float
    f1_micro: float
    precision_macro: float
    recall_macro: float
    precision_micro: float
    recall_micro: float
    precision_weighted: float
    recall_weighted: float
    hamming_loss: float
    ece: float
    ece_bins: int
    ece_adaptive: float
    mce: float
    brier: float
    nll: float
    per_class: dict[str, ClassScores]
    confusion_matrix: list[list[int]]
    reliability: dict[str, list[float]]
    threshold: float
    thresholds_per_label: dict[str, float]
    by_decision: dict[str, DecisionScores]


def _per_class(labels: tuple[str, ...], y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, ClassScores]:
    idx = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, average=None, zero_division=0)
    return {
        name: ClassScores(precision=float(p[i]), recall=float(r[i]), f1=float(f[i]), support=int(s[i]))
        for i, name in enumerate(labels)
    }


def single_label_scores(probs: np.ndarray, y: np.ndarray, labels: tuple[str, ...], n_bins: int = DEFAULT_BINS) -> Scores:
    """Accuracy, F1, per-class scores, confusion matrix and calibration of ``[N, C]`` probabilities."""
    idx = list(range(len(labels)))
    pred = probs.argmax(axis=1)
    conf, correct = top_label(probs, y)
    f1 = {avg: float(f1_score(y, pred, labels=idx, average=avg, zero_division=0)) for avg in ("macro", "weighted")}
    return Scores(
        accuracy=float(accuracy_score(y, pred)),
        f1_macro=f1["macro"],
        f1_weighted=f1["weighted"],
        ece=calibration_error(conf, correct, n_bins),
        ece_bins=n_bins,
        ece_adaptive=calibration_error(conf, correct, n_bins, binning="mass"),
        mce=calibration_error(conf, correct, n_bins, norm="max"),
        brier=float(brier_score_loss(y, probs, labels=idx)),
        nll=float(log_loss(y, probs, labels=idx)),
        per_class=_per_class(labels, y, pred),
        confusion_matrix=confusion_matrix(y, pred, labels=idx).tolist(),
        reliability=reliability_table(conf, correct, n_bins),
    )


def decision_scores(y: np.ndarray, pred: np.ndarray) -> DecisionScores:
    """Subset accuracy, Hamming loss and micro/macro/weighted P/R/F1 of 0/1 multi-label decisions."""
    out = DecisionScores(accuracy=float(accuracy_score(y, pred)), hamming_loss=float(hamming_loss(y, pred)))
    for avg in ("micro", "macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(p), float(r), float(f)  # type: ignore[literal-required]
    return out


def multi_label_scores(
    probs: np.ndarray, y: np.ndarray, labels: tuple[str, ...], n_bins: int = DEFAULT_BINS, thresholds: Thresholds | None = None
) -> Scores:
    """Decision scores at the fixed, global and per-label ``thresholds`` (default: all 0.5; headline: global),
    per-label scores, and per-label calibration of ``[N, L]`` probabilities."""
    thresholds = thresholds or Thresholds.fixed(len(labels))
    by_decision = {name: decision_scores(y, (probs >= t).astype(int)) for name, t in thresholds.decisions().items()}
    pred = (probs >= thresholds.global_).astype(int)
    out = Scores(**by_decision["global"], threshold=thresholds.global_,  # type: ignore[typeddict-item]
                 thresholds_per_label={name: float(t) for name, t in zip(labels, thresholds.per_label)},
                 by_decision=by_decision)
    eces, adaptive, mces, briers, nlls = [], [], [], [], []
    for j in range(y.shape[1]):
        conf, correct = binary_top_label(probs[:, j], y[:, j])
        eces.append(calibration_error(conf, correct, n_bins))
        adaptive.append(calibration_error(conf, correct, n_bins, binning="mass"))
        mces.append(calibration_error(conf, correct, n_bins, norm="max"))
        briers.append(brier_score_loss(y[:, j], probs[:, j], labels=[0, 1]))
        nlls.append(log_loss(y[:, j], np.column_stack([1 - probs[:, j], probs[:, j]]), labels=[0, 1]))
    conf_all, correct_all = binary_top_label(probs.ravel(), y.ravel())
    out.update(
        ece=float(np.mean(eces)), ece_bins=n_bins, ece_adaptive=float(np.mean(adaptive)), mce=float(np.mean(mces)),
        brier=float(np.mean(briers)), nll=float(np.mean(nlls)),
        per_class=_per_class(labels, y, pred),
        reliability=reliability_table(conf_all, correct_all, n_bins),
    )
    return out


def compute_scores(spec: TaskSpec, probs: np.ndarray, y: np.ndarray, n_bins: int = DEFAULT_BINS,
                   thresholds: Thresholds | None = None) -> Scores:
    """All metrics for a task's predictions: dispatches on single- vs multi-label (``thresholds``: multi-label only)."""
    if spec.multilabel:
        return multi_label_scores(probs, y, spec.labels, n_bins, thresholds)
    return single_label_scores(probs, y, spec.labels, n_bins)
