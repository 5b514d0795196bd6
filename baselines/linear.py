"""Logistic regression with its regularisation chosen on validation, shared by the linear rungs."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, log_loss
from sklearn.multiclass import OneVsRestClassifier

from bench.data import TaskSpec
from bench.evaluate.thresholds import Thresholds


def _make(spec: TaskSpec, c: float, max_iter: int, seed: int) -> Any:
    lr = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    return OneVsRestClassifier(lr) if spec.multilabel else lr


def class_probabilities(spec: TaskSpec, clf: Any, x: Any) -> np.ndarray:
    """float64 probabilities with a column per class (also classes absent from training)."""
    probs = clf.predict_proba(x).astype(np.float64)
    if spec.multilabel:
        return probs
    full = np.zeros((probs.shape[0], spec.n_classes))
    full[:, clf.classes_] = probs
    return full / full.sum(axis=1, keepdims=True)


def class_logits(spec: TaskSpec, clf: Any, x: Any) -> np.ndarray:
    """Decision values as ``[N, C]`` logits: softmax (multi-label: sigmoid) of them gives the probabilities."""
    z = clf.decision_function(x)
    if z.ndim == 1:  # binary: softmax([0, z]) == sigmoid(z)
        z = np.column_stack([np.zeros_like(z), z])
    if not spec.multilabel and z.shape[1] != spec.n_classes:
        full = np.full((z.shape[0], spec.n_classes), -1e9)
        full[:, clf.classes_] = z
        return full
    return z


def validation_scores(spec: TaskSpec, clf: Any, x: Any, y: np.ndarray) -> tuple[float, float]:
    """(macro-F1, log-loss) on a validation set (multi-label: at the global threshold tuned on it, as the
    harness will decide; mean per-label log-loss)."""
    probs = class_probabilities(spec, clf, x)
    if spec.multilabel:
        pred = (probs >= Thresholds.tune(probs, y).global_).astype(int)
        nll = float(np.mean([log_loss(y[:, j], probs[:, j], labels=[0, 1]) for j in range(y.shape[1])]))
        return float(f1_score(y, pred, average="macro", zero_division=0)), nll
    labels = list(range(spec.n_classes))
    return (
        float(f1_score(y, probs.argmax(1), labels=labels, average="macro", zero_division=0)),
        float(log_loss(y, probs, labels=labels)),
    )


def fit_logistic_regression(
    spec: TaskSpec,
    x_train: Any,
    y_train: np.ndarray,
    x_val: Any,
    y_val: np.ndarray,
    c_grid: Sequence[float],
    max_iter: int = 2000,
    seed: int = 0,
    desc: str = "C grid",
) -> tuple[Any, float, dict[str, dict[str, float]]]:
    """Fit one model per C; keep the best validation macro-F1 (ties: lower log-loss).
    Returns (classifier, C, {C: validation scores})."""
    from tqdm.auto import tqdm

    best: tuple[float, float] | None = None
    grid: dict[str, dict[str, float]] = {}
    chosen: tuple[Any, float] | None = None
    for c in tqdm(c_grid, desc=desc, leave=False, disable=None):
        with warnings.catch_warnings():  # a tag never positive in train: the data checks already warned of it
            warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
            clf = _make(spec, c, max_iter, seed).fit(x_train, y_train)
        f1, nll = validation_scores(spec, clf, x_val, y_val)
        grid[f"{c:g}"] = {"val_f1_macro": f1, "val_nll": nll}
        if best is None or (f1, -nll) > best:
            best, chosen = (f1, -nll), (clf, c)
    assert chosen is not None
    return chosen[0], chosen[1], grid


def num_coefficients(spec: TaskSpec, clf: Any) -> int:
    """Weights and intercepts of a (one-vs-rest) logistic regression; a label that was never (or always) positive
    in training is a constant (scikit-learn's ``_ConstantPredictor``): one number."""
    estimators = clf.estimators_ if spec.multilabel else [clf]
    return int(sum(e.coef_.size + e.intercept_.size if hasattr(e, "coef_") else 1 for e in estimators))
