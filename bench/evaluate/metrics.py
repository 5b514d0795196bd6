"""The metric registry: quality and calibration metrics, each registered once, computed from stored predictions.

A metric is a function of :class:`Predictions` (the task spec, the probabilities, the labels and, for multi-label
tasks, the decision thresholds) returning a value or a dict of values, registered with :func:`register_metric`
together with its direction (higher or lower is better), the task types it applies to and its leaderboard
column(s). :func:`compute_scores` runs every applicable metric; ``bench rescore`` re-runs them over stored
``predictions.npz`` without refitting anything. Bump :data:`METRICS_VERSION` when a metric changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

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

from bench.data.spec import TaskSpec
from bench.errors import UnknownNameError
from bench.evaluate.calibration import DEFAULT_BINS, binary_top_label, calibration_error, reliability_table, top_label
from bench.evaluate.thresholds import Thresholds

METRICS_VERSION = 2  # 1: before the registry (same values); 2: metrics from the registry, rescorable
SINGLE, MULTI = "single-label", "multi-label"
BOTH = frozenset({SINGLE, MULTI})
Direction = Literal["max", "min"] | None


@dataclass(frozen=True)
class Predictions:
    """What every metric is computed from: a task's test probabilities ``[N, C]`` and labels (``[N]`` class
    indices, or ``[N, C]`` 0/1 for multi-label), the ECE bin count and the multi-label decision thresholds
    (default: 0.5 everywhere). Shared intermediate values are computed once."""

    spec: TaskSpec
    probs: np.ndarray
    y: np.ndarray
    n_bins: int = DEFAULT_BINS
    thresholds: Thresholds | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @cached_property
    def decision_rules(self) -> Thresholds:
        return self.thresholds or Thresholds.fixed(self.spec.n_classes)

    @cached_property
    def pred(self) -> np.ndarray:
        """Decisions: the argmax class, or (multi-label) each label at the global threshold."""
        if self.spec.multilabel:
            return (self.probs >= self.decision_rules.global_).astype(int)
        return self.probs.argmax(axis=1)

    @cached_property
    def top(self) -> tuple[np.ndarray, np.ndarray]:
        """Confidence and correctness: top-label, or (multi-label) every (example, label) decision at 0.5."""
        if self.spec.multilabel:
            return binary_top_label(self.probs.ravel(), self.y.ravel())
        return top_label(self.probs, self.y)

    @cached_property
    def decisions(self) -> dict[str, dict[str, float]]:
        """Multi-label decision scores for each decision rule (fixed 0.5, global, per label)."""
        return {
            name: decision_scores(self.y, (self.probs >= t).astype(int))
            for name, t in self.decision_rules.decisions().items()
        }

    def per_label(self, fn: Callable[[np.ndarray, np.ndarray], float]) -> float:
        """Multi-label: the mean over labels of ``fn(probs[:, j], y[:, j])``."""
        return float(np.mean([fn(self.probs[:, j], self.y[:, j]) for j in range(self.y.shape[1])]))


@dataclass(frozen=True)
class Metric:
    """A registered metric. ``columns`` are its leaderboard columns, ``(header, key)`` with ``key`` a dotted path
    inside a dict value ("" for the value itself), shown on ``column_tasks``; ``digits`` is their display
    precision."""

    name: str
    compute: Callable[[Predictions], Any]
    direction: Direction
    tasks: frozenset[str]
    columns: tuple[tuple[str, str], ...] = ()
    column_tasks: frozenset[str] = BOTH
    digits: int = 4
    merge: bool = False  # a dict value whose keys are stored at the top level of the scores


_METRICS: dict[str, Metric] = {}


def register_metric(
    name: str,
    *,
    direction: Direction,
    tasks: frozenset[str] | set[str] = BOTH,
    header: str | None = None,
    columns: tuple[tuple[str, str], ...] = (),
    column_tasks: frozenset[str] | set[str] = BOTH,
    digits: int = 4,
    merge: bool = False,
) -> Callable[[Callable[[Predictions], Any]], Callable[[Predictions], Any]]:
    """Register ``fn(predictions) -> value`` as metric ``name`` (a decorator). ``header`` is shorthand for one
    leaderboard column showing the value itself."""

    def decorator(fn: Callable[[Predictions], Any]) -> Callable[[Predictions], Any]:
        cols = ((header, ""),) if header else tuple(columns)
        _METRICS[name] = Metric(name, fn, direction, frozenset(tasks), cols, frozenset(column_tasks), digits, merge)
        return fn

    return decorator


def unregister_metric(name: str) -> None:
    """Remove metric ``name`` (for tests and plugins)."""
    _METRICS.pop(name, None)


def list_metrics(task: str | None = None) -> list[Metric]:
    """Registered metrics in registration order (the leaderboard's column order), optionally for one label kind
    (``single-label``, which includes sentence pairs, or ``multi-label``)."""
    return [m for m in _METRICS.values() if task is None or task in m.tasks]


def get_metric(name: str) -> Metric:
    if name not in _METRICS:
        raise UnknownNameError("metric", name, _METRICS)
    return _METRICS[name]


def compute_scores(
    spec: TaskSpec, probs: np.ndarray, y: np.ndarray, n_bins: int = DEFAULT_BINS, thresholds: Thresholds | None = None
) -> dict[str, Any]:
    """Every registered metric that applies to the task, on these predictions (``thresholds``: multi-label only)."""
    preds = Predictions(spec, np.asarray(probs), np.asarray(y), n_bins, thresholds if spec.multilabel else None)
    scores: dict[str, Any] = {}
    for metric in list_metrics(spec.label_kind):
        value = metric.compute(preds)
        if metric.merge:
            scores.update(value)
        else:
            scores[metric.name] = value
    return scores


# ------------------------------------------------------------------------------------------ the metrics


def decision_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Subset accuracy, Hamming loss and micro/macro/weighted P/R/F1 of 0/1 multi-label decisions."""
    out = {"accuracy": float(accuracy_score(y, pred)), "hamming_loss": float(hamming_loss(y, pred))}
    for avg in ("micro", "macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(p), float(r), float(f)
    return out


def _f1(average: str) -> Callable[[Predictions], float]:
    def compute(p: Predictions) -> float:
        if p.spec.multilabel:
            return p.decisions["global"][f"f1_{average}"]
        return float(f1_score(p.y, p.pred, labels=list(range(len(p.labels))), average=average, zero_division=0))

    return compute


def _decision(key: str) -> Callable[[Predictions], float]:
    return lambda p: p.decisions["global"][key]


@register_metric("accuracy", direction="max", header="accuracy")
def accuracy(p: Predictions) -> float:
    """Accuracy; multi-label: subset accuracy at the global threshold."""
    return p.decisions["global"]["accuracy"] if p.spec.multilabel else float(accuracy_score(p.y, p.pred))


register_metric("f1_macro", direction="max", header="macro-F1")(_f1("macro"))
register_metric("f1_weighted", direction="max", header="weighted-F1", column_tasks={MULTI})(_f1("weighted"))
register_metric("f1_micro", direction="max", tasks={MULTI}, header="micro-F1")(_f1("micro"))
register_metric("precision_micro", direction="max", tasks={MULTI}, header="precision")(_decision("precision_micro"))
register_metric("recall_micro", direction="max", tasks={MULTI}, header="recall")(_decision("recall_micro"))
for _key in ("precision_macro", "recall_macro", "precision_weighted", "recall_weighted"):
    register_metric(_key, direction="max", tasks={MULTI})(_decision(_key))


@register_metric("threshold", direction=None, tasks={MULTI}, merge=True)
def threshold(p: Predictions) -> dict[str, Any]:
    """The decision thresholds the multi-label scores used: the global one and each label's."""
    rules = p.decision_rules
    return {
        "threshold": rules.global_,
        "thresholds_per_label": {name: float(t) for name, t in zip(p.labels, rules.per_label)},
    }


@register_metric(
    "by_decision",
    direction="max",
    tasks={MULTI},
    columns=(("weighted-F1 (per-label t)", "per_label.f1_weighted"), ("weighted-F1 (t=0.5)", "fixed.f1_weighted")),
)
def by_decision(p: Predictions) -> dict[str, dict[str, float]]:
    """Multi-label decision scores at the fixed 0.5, the global and the per-label thresholds."""
    return p.decisions


register_metric("hamming_loss", direction="min", tasks={MULTI}, header="Hamming")(_decision("hamming_loss"))


def _calibration(binning: str = "width", norm: str = "l1") -> Callable[[Predictions], float]:
    def compute(p: Predictions) -> float:
        if p.spec.multilabel:  # mean over labels of each label's binary top-label error
            return p.per_label(
                lambda s, t: calibration_error(*binary_top_label(s, t), p.n_bins, binning=binning, norm=norm)
            )
        return calibration_error(*p.top, p.n_bins, binning=binning, norm=norm)

    return compute


register_metric("ece", direction="min", header="ECE")(_calibration())


@register_metric("ece_bins", direction=None)
def ece_bins(p: Predictions) -> int:
    """The number of equal-width bins the calibration errors used (a setting, stored beside them)."""
    return p.n_bins


register_metric("ece_adaptive", direction="min")(_calibration(binning="mass"))
register_metric("mce", direction="min")(_calibration(norm="max"))


@register_metric("brier", direction="min", header="Brier")
def brier(p: Predictions) -> float:
    """Brier score (multi-label: mean over labels of the binary Brier score)."""
    if p.spec.multilabel:
        return p.per_label(lambda s, t: brier_score_loss(t, s, labels=[0, 1]))
    return float(brier_score_loss(p.y, p.probs, labels=list(range(len(p.labels)))))


@register_metric("nll", direction="min", header="NLL", digits=3)
def nll(p: Predictions) -> float:
    """Negative log-likelihood (multi-label: mean over labels of the binary NLL)."""
    if p.spec.multilabel:
        return p.per_label(lambda s, t: log_loss(t, np.column_stack([1 - s, s]), labels=[0, 1]))
    return float(log_loss(p.y, p.probs, labels=list(range(len(p.labels)))))


@register_metric("per_class", direction=None)
def per_class(p: Predictions) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class (label)."""
    idx = list(range(len(p.labels)))
    prec, rec, f, s = precision_recall_fscore_support(p.y, p.pred, labels=idx, average=None, zero_division=0)
    return {
        name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(p.labels)
    }


@register_metric("confusion_matrix", direction=None, tasks={SINGLE})
def confusion(p: Predictions) -> list[list[int]]:
    return confusion_matrix(p.y, p.pred, labels=list(range(len(p.labels)))).tolist()


@register_metric("reliability", direction=None)
def reliability(p: Predictions) -> dict[str, list[float]]:
    """Accuracy, confidence and count per equal-width bin (multi-label: every decision pooled)."""
    return reliability_table(*p.top, p.n_bins)


def single_label_scores(
    probs: np.ndarray, y: np.ndarray, labels: tuple[str, ...], n_bins: int = DEFAULT_BINS
) -> dict[str, Any]:
    """Every single-label metric of ``[N, C]`` probabilities."""
    return compute_scores(TaskSpec("", SINGLE, tuple(labels)), probs, y, n_bins)


def multi_label_scores(
    probs: np.ndarray,
    y: np.ndarray,
    labels: tuple[str, ...],
    n_bins: int = DEFAULT_BINS,
    thresholds: Thresholds | None = None,
) -> dict[str, Any]:
    """Every multi-label metric of ``[N, L]`` probabilities at ``thresholds`` (default: all 0.5)."""
    return compute_scores(TaskSpec("", MULTI, tuple(labels)), probs, y, n_bins, thresholds)


def lookup(values: Mapping[str, Any] | None, key: str) -> Any:
    """``values[a][b]`` for the dotted key ``a.b`` (None where a part is missing)."""
    value: Any = values or {}
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value
