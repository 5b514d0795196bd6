"""The metric registry: quality and calibration metrics, each registered once, computed from stored predictions.

A metric is a function of :class:`Predictions` (the task spec, the probabilities, the labels and, for multi-label
tasks, the decision thresholds) returning a value or a dict of values, registered with :func:`register_metric`
together with its direction (higher or lower is better), the task types it applies to and its leaderboard
column(s). :func:`compute_scores` runs every applicable metric; ``bench rescore`` re-runs them over stored
``predictions.npz`` without refitting anything. Bump :data:`METRICS_VERSION` when a metric changes.

Macro averages (precision, recall, F1) are over the classes present in the test labels (multi-label: labels with a
positive), scikit-learn's ``labels=`` of those, and likewise in each bootstrap resample over the classes it drew: a
class the card lists but the test split lacks has no F1 to average (counting it as 0 would understate every rung
alike). ``per_class`` shows such classes with support 0, and the dataset's notes warn of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
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
from bench.evaluate import conformal, diversity, ood
from bench.evaluate.calibration import (
    DEFAULT_BINS,
    binary_top_label,
    calibration_error,
    equal_width_ids,
    reliability_table,
    top_label,
)
from bench.evaluate.thresholds import Thresholds

# 1: before the registry (same values); 2: metrics from the registry, rescorable; 3: with bootstrap intervals;
# 4: macro averages over the classes present in test; 5: selective prediction (AURC, AUGRC, risk@80% coverage,
# coverage@5% risk); 6: conformal prediction sets, OOD detection; 7: ensemble diversity, OOD by mutual information
METRICS_VERSION = 7
SINGLE, MULTI = "single-label", "multi-label"
BOTH = frozenset({SINGLE, MULTI})
Direction = Literal["max", "min"] | None


@dataclass(frozen=True)
class Predictions:
    """What every metric is computed from: a task's test probabilities ``[N, C]`` and labels (``[N]`` class
    indices, or ``[N, C]`` 0/1 for multi-label), the ECE bin count, the multi-label decision thresholds
    (default: 0.5 everywhere) and the conformal miscoverage ``alpha``. Shared intermediate values are computed
    once; ``ood_probs``: the probabilities on out-of-distribution test examples (classes held out), if any;
    ``members`` / ``ood_members``: an ensemble's members' probabilities ``[K, N, C]`` on both, if any."""

    spec: TaskSpec
    probs: np.ndarray
    y: np.ndarray
    n_bins: int = DEFAULT_BINS
    thresholds: Thresholds | None = None
    alpha: float = conformal.DEFAULT_ALPHA
    ood_probs: np.ndarray | None = None  # probabilities on out-of-distribution test examples, where the data has them
    members: np.ndarray | None = None  # an ensemble's members' test probabilities [K, N, C] (their mean is probs)
    ood_members: np.ndarray | None = None  # and on the out-of-distribution examples

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

    def subset(self, idx: np.ndarray) -> Predictions:
        """The same predictions restricted to (possibly repeated) examples ``idx``."""
        members = None if self.members is None else self.members[:, idx]
        return replace(self, probs=self.probs[idx], y=self.y[idx], members=members)

    @property
    def n(self) -> int:
        return len(self.y)

    @cached_property
    def _count_cache(self) -> dict[str, np.ndarray]:
        return {}

    def count_stats(self, rule: str = "global") -> np.ndarray:
        """Per-example decision counts ``[truth (C), decided (C), both (C), all right, wrong labels]``: the sums
        give every accuracy, precision, recall, F1 and Hamming figure (multi-label: at decision ``rule``)."""
        if rule not in self._count_cache:
            self._count_cache[rule] = self._counts(rule)
        return self._count_cache[rule]

    def _counts(self, rule: str) -> np.ndarray:
        if self.spec.multilabel:
            truth = self.y.astype(np.float64)
            decided = (self.probs >= self.decision_rules.decisions()[rule]).astype(np.float64)
        else:
            eye = np.eye(self.spec.n_classes)
            truth, decided = eye[self.y], eye[self.pred]
        wrong = (truth != decided).sum(axis=1, keepdims=True).astype(np.float64)
        return np.hstack([truth, decided, truth * decided, (wrong == 0).astype(np.float64), wrong])

    @cached_property
    def calibration_stats(self) -> np.ndarray:
        """Per-example ``[in bin (K), confidence in bin (K), correct in bin (K)]`` for each label (one for
        single-label), equal-width bins: the sums give ECE and MCE."""
        if self.spec.multilabel:
            pairs = [binary_top_label(self.probs[:, j], self.y[:, j]) for j in range(self.y.shape[1])]
        else:
            pairs = [self.top]
        blocks = []
        for conf, correct in pairs:
            member = np.eye(self.n_bins)[equal_width_ids(conf, self.n_bins)]
            blocks += [member, member * conf[:, None], member * correct[:, None]]
        return np.hstack(blocks)

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
    stats: Callable[[Predictions], np.ndarray] | None = None
    reduce: Callable[[np.ndarray, Predictions], Any] | None = None
    resample: Callable[[Predictions, np.ndarray], np.ndarray] | None = None
    calibration: bool = False  # a calibration error: no "best" for a rung whose predictions ignore the input

    @property
    def scored(self) -> bool:
        """A score (it has a direction): it gets a confidence interval."""
        return self.direction is not None


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
    stats: Callable[[Predictions], np.ndarray] | None = None,
    reduce: Callable[[np.ndarray, Predictions], Any] | None = None,
    resample: Callable[[Predictions, np.ndarray], np.ndarray] | None = None,
    calibration: bool = False,
) -> Callable[[Callable[[Predictions], Any]], Callable[[Predictions], Any]]:
    """Register ``fn(predictions) -> value`` as metric ``name`` (a decorator). ``header`` is shorthand for one
    leaderboard column showing the value itself.

    ``stats`` and ``reduce`` make the bootstrap fast (:mod:`bench.evaluate.intervals`): ``stats(p)`` gives
    per-example sufficient statistics ``[N, S]`` and ``reduce(totals, p)`` the metric from their (weighted) sums
    ``[..., S]`` (each resample has ``p.n`` examples) — a value ``[...]``, or for a dict-valued metric
    ``{dotted key: [...]}``; ``reduce(stats.sum(0), p)`` must equal ``fn(p)``. A metric that does not decompose
    so may give ``resample(p, counts)``: its values on resamples given as count rows ``[B, N]``. Without either the
    bootstrap recomputes ``fn`` on each resample. ``calibration`` marks a calibration error.
    """

    def decorator(fn: Callable[[Predictions], Any]) -> Callable[[Predictions], Any]:
        cols = ((header, ""),) if header else tuple(columns)
        _METRICS[name] = Metric(
            name,
            fn,
            direction,
            frozenset(tasks),
            cols,
            frozenset(column_tasks),
            digits,
            merge,
            stats,
            reduce,
            resample,
            calibration,
        )
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
    return score(Predictions(spec, np.asarray(probs), np.asarray(y), n_bins, thresholds if spec.multilabel else None))


def score(preds: Predictions) -> dict[str, Any]:
    """Every registered metric that applies to ``preds``' task (a metric returning None has nothing to say about
    these predictions, e.g. OOD detection without OOD examples, and is left out)."""
    scores: dict[str, Any] = {}
    for metric in list_metrics(preds.spec.label_kind):
        value = metric.compute(preds)
        if value is None:
            continue
        if metric.merge:
            scores.update(value)
        else:
            scores[metric.name] = value
    return scores


# --------------------------------------------------- reductions of summed statistics (for the bootstrap)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / b``, 0 where ``b`` is 0 (scikit-learn's ``zero_division=0``)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return np.divide(a, b, out=np.zeros(a.shape), where=b != 0)


def _decision_scores(totals: np.ndarray, p: Predictions) -> dict[str, np.ndarray]:
    """Every decision score from summed :meth:`Predictions.count_stats` ``[..., 3C + 2]`` of ``p.n`` examples
    (macro averages over the classes present in each resample's labels, as on the test split itself)."""
    n = p.n
    c = (totals.shape[-1] - 2) // 3
    support, decided, both = totals[..., :c], totals[..., c : 2 * c], totals[..., 2 * c : 3 * c]
    out = {"accuracy": totals[..., 3 * c] / n, "hamming_loss": totals[..., 3 * c + 1] / (n * c)}
    per = {"precision": _div(both, decided), "recall": _div(both, support), "f1": _div(2 * both, support + decided)}
    present = support > 0  # per resample: sklearn's convention on the examples drawn (none present: all)
    present = np.where(present.any(axis=-1, keepdims=True), present, True)
    weight = support.sum(axis=-1)
    tp, dec, sup = both.sum(axis=-1), decided.sum(axis=-1), support.sum(axis=-1)
    micro = {"precision": _div(tp, dec), "recall": _div(tp, sup), "f1": _div(2 * tp, dec + sup)}
    for name, values in per.items():
        out[f"{name}_macro"] = (values * present).sum(axis=-1) / present.sum(axis=-1)
        out[f"{name}_weighted"] = _div((values * support).sum(axis=-1), weight)
        out[f"{name}_micro"] = micro[name]
    return out


def _reduce_decision(key: str, rule: str = "global") -> Callable[[np.ndarray, Predictions], np.ndarray]:
    return lambda totals, p: _decision_scores(totals, p)[key]


def _calibration_reduce(norm: str) -> Callable[[np.ndarray, Predictions], np.ndarray]:
    """ECE (``l1``) or MCE (``max``) from summed :attr:`Predictions.calibration_stats`, averaged over labels."""

    def reduce(totals: np.ndarray, p: Predictions) -> np.ndarray:
        t = totals.reshape(*totals.shape[:-1], -1, 3, p.n_bins)  # [..., label, (count, confidence, right), bin]
        counts, conf, right = t[..., 0, :], t[..., 1, :], t[..., 2, :]
        gap = np.abs(right - conf)
        if norm == "max":
            per_label = np.where(counts > 0, _div(gap, counts), -np.inf).max(axis=-1)
        else:
            per_label = gap.sum(axis=-1) / counts.sum(axis=-1)
        return per_label.mean(axis=-1)

    return reduce


def _mean_reduce(totals: np.ndarray, p: Predictions) -> np.ndarray:
    return totals[..., 0] / p.n


# ------------------------------------------------------------------------------------------ the metrics


def present_classes(y: np.ndarray, n_classes: int) -> list[int]:
    """The classes macro averages run over: those in the labels ``y`` (multi-label: with a positive), else all."""
    present = np.flatnonzero(y.sum(axis=0) if y.ndim == 2 else np.bincount(y, minlength=n_classes)).tolist()
    return present or list(range(n_classes))


def decision_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Subset accuracy, Hamming loss and micro/macro/weighted P/R/F1 of 0/1 multi-label decisions (macro: over the
    labels with a positive in ``y``)."""
    out = {"accuracy": float(accuracy_score(y, pred)), "hamming_loss": float(hamming_loss(y, pred))}
    present = present_classes(y, y.shape[1])
    for avg in ("micro", "macro", "weighted"):
        labels = present if avg == "macro" else None
        p, r, f, _ = precision_recall_fscore_support(y, pred, labels=labels, average=avg, zero_division=0)
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(p), float(r), float(f)
    return out


def _f1(average: str) -> Callable[[Predictions], float]:
    def compute(p: Predictions) -> float:
        if p.spec.multilabel:
            return p.decisions["global"][f"f1_{average}"]
        labels = present_classes(p.y, len(p.labels)) if average == "macro" else list(range(len(p.labels)))
        return float(f1_score(p.y, p.pred, labels=labels, average=average, zero_division=0))

    return compute


def _decision(key: str) -> Callable[[Predictions], float]:
    return lambda p: p.decisions["global"][key]


def _counts(p: Predictions) -> np.ndarray:
    return p.count_stats("global")


def _per_example(fn: Callable[[Predictions], np.ndarray]) -> Callable[[Predictions], np.ndarray]:
    """Statistics of a metric that is the mean of one per-example value."""
    return lambda p: fn(p)[:, None]


COUNTS = {"stats": _counts}


@register_metric("accuracy", direction="max", header="accuracy", **COUNTS, reduce=_reduce_decision("accuracy"))
def accuracy(p: Predictions) -> float:
    """Accuracy; multi-label: subset accuracy at the global threshold."""
    return p.decisions["global"]["accuracy"] if p.spec.multilabel else float(accuracy_score(p.y, p.pred))


register_metric("f1_macro", direction="max", header="macro-F1", **COUNTS, reduce=_reduce_decision("f1_macro"))(
    _f1("macro")
)
register_metric(
    "f1_weighted",
    direction="max",
    header="weighted-F1",
    column_tasks={MULTI},
    **COUNTS,
    reduce=_reduce_decision("f1_weighted"),
)(_f1("weighted"))
for _key, _header in (("f1_micro", "micro-F1"), ("precision_micro", "precision"), ("recall_micro", "recall")):
    register_metric(_key, direction="max", tasks={MULTI}, header=_header, **COUNTS, reduce=_reduce_decision(_key))(
        _decision(_key)
    )
for _key in ("precision_macro", "recall_macro", "precision_weighted", "recall_weighted"):
    register_metric(_key, direction="max", tasks={MULTI}, **COUNTS, reduce=_reduce_decision(_key))(_decision(_key))


@register_metric("threshold", direction=None, tasks={MULTI}, merge=True)
def threshold(p: Predictions) -> dict[str, Any]:
    """The decision thresholds the multi-label scores used: the global one and each label's."""
    rules = p.decision_rules
    return {
        "threshold": rules.global_,
        "thresholds_per_label": {name: float(t) for name, t in zip(p.labels, rules.per_label)},
    }


RULES = ("fixed", "global", "per_label")


def _rule_counts(p: Predictions) -> np.ndarray:
    return np.hstack([p.count_stats(rule) for rule in RULES])


def _rule_scores(totals: np.ndarray, p: Predictions) -> dict[str, np.ndarray]:
    """``{"rule.score": values}`` for every decision rule, from summed :func:`_rule_counts`."""
    out = {}
    for rule, block in zip(RULES, np.split(totals, len(RULES), axis=-1)):
        out.update({f"{rule}.{key}": values for key, values in _decision_scores(block, p).items()})
    return out


@register_metric(
    "by_decision",
    direction="max",
    tasks={MULTI},
    columns=(("weighted-F1 (per-label t)", "per_label.f1_weighted"), ("weighted-F1 (t=0.5)", "fixed.f1_weighted")),
    stats=_rule_counts,
    reduce=_rule_scores,
)
def by_decision(p: Predictions) -> dict[str, dict[str, float]]:
    """Multi-label decision scores at the fixed 0.5, the global and the per-label thresholds."""
    return p.decisions


register_metric(
    "hamming_loss", direction="min", tasks={MULTI}, header="Hamming", **COUNTS, reduce=_reduce_decision("hamming_loss")
)(_decision("hamming_loss"))


def _calibration(binning: str = "width", norm: str = "l1") -> Callable[[Predictions], float]:
    def compute(p: Predictions) -> float:
        if p.spec.multilabel:  # mean over labels of each label's binary top-label error
            return p.per_label(
                lambda s, t: calibration_error(*binary_top_label(s, t), p.n_bins, binning=binning, norm=norm)
            )
        return calibration_error(*p.top, p.n_bins, binning=binning, norm=norm)

    return compute


def _calibration_stats(p: Predictions) -> np.ndarray:
    return p.calibration_stats


register_metric(
    "ece", direction="min", header="ECE", stats=_calibration_stats, reduce=_calibration_reduce("l1"), calibration=True
)(_calibration())


@register_metric("ece_bins", direction=None)
def ece_bins(p: Predictions) -> int:
    """The number of equal-width bins the calibration errors used (a setting, stored beside them)."""
    return p.n_bins


def _adaptive_resampled(p: Predictions, counts: np.ndarray) -> np.ndarray:
    """Equal-mass ECE on resamples given as count rows ``[B, N]``, exactly as on the expanded resample: examples
    sorted by confidence (stably), each occupying as many consecutive positions as it was drawn; a bin sums the
    positions it covers, so a repeated example may straddle two bins."""
    n = p.n
    edges = np.arange(p.n_bins + 1) * n // p.n_bins
    pairs = [binary_top_label(p.probs[:, j], p.y[:, j]) for j in range(p.y.shape[1])] if p.spec.multilabel else [p.top]
    total = np.zeros(len(counts))
    for conf, right in pairs:
        order = np.argsort(conf, kind="stable")
        w = counts[:, order]
        start = np.cumsum(w, axis=1) - w
        weights = np.stack([np.ones(n), conf[order], right[order]])  # count, confidence, right
        below = np.stack([(np.clip(e - start, 0, w)) @ weights.T for e in edges])  # [edge, B, 3]: before each edge
        per_bin = np.diff(below, axis=0)  # [bin, B, 3]
        total += np.abs(per_bin[..., 2] - per_bin[..., 1]).sum(axis=0) / n
    return total / len(pairs)


register_metric("ece_adaptive", direction="min", header="adaptive ECE", resample=_adaptive_resampled, calibration=True)(
    _calibration(binning="mass")
)
register_metric("mce", direction="min", stats=_calibration_stats, reduce=_calibration_reduce("max"), calibration=True)(
    _calibration(norm="max")
)


def _brier_each(p: Predictions) -> np.ndarray:
    """Each example's Brier term, as scikit-learn scales it: binary, the positive class's squared error (0-1);
    more classes, the squared distance to the one-hot label (0-2); multi-label, the mean over labels (0-1)."""
    if p.spec.multilabel:
        return ((p.probs - p.y) ** 2).mean(axis=1)
    if p.spec.n_classes == 2:
        return (p.probs[:, 1] - p.y) ** 2
    return ((p.probs - np.eye(p.spec.n_classes)[p.y]) ** 2).sum(axis=1)


def _nll_each(p: Predictions) -> np.ndarray:
    """Each example's negative log-likelihood, clipped as scikit-learn's ``log_loss`` (multi-label: mean over
    labels of the binary NLL)."""
    eps = np.finfo(p.probs.dtype).eps
    if p.spec.multilabel:
        q = np.clip(p.probs, eps, 1 - eps)
        return -(p.y * np.log(q) + (1 - p.y) * np.log(1 - q)).mean(axis=1)
    q = np.clip(p.probs, eps, 1 - eps)
    q = q / q.sum(axis=1, keepdims=True)
    return -np.log(q[np.arange(p.n), p.y])


@register_metric("brier", direction="min", header="Brier", stats=_per_example(_brier_each), reduce=_mean_reduce)
def brier(p: Predictions) -> float:
    """Brier score (multi-label: mean over labels of the binary Brier score)."""
    if p.spec.multilabel:
        return p.per_label(lambda s, t: brier_score_loss(t, s, labels=[0, 1]))
    return float(brier_score_loss(p.y, p.probs, labels=list(range(len(p.labels)))))


@register_metric("nll", direction="min", header="NLL", digits=3, stats=_per_example(_nll_each), reduce=_mean_reduce)
def nll(p: Predictions) -> float:
    """Negative log-likelihood (multi-label: mean over labels of the binary NLL)."""
    if p.spec.multilabel:
        return p.per_label(lambda s, t: log_loss(t, np.column_stack([1 - s, s]), labels=[0, 1]))
    return float(log_loss(p.y, p.probs, labels=list(range(len(p.labels)))))


# ------------------------------------------------------------ selective prediction (abstain on low confidence)
#
# A rung that may abstain accepts the examples whose confidence (top-label; multi-label: each label's decision)
# reaches a threshold. Thresholds run over the distinct confidences, so tied examples are accepted together and
# nothing depends on how ties are ordered. Selective risk = error rate among the accepted; coverage = the accepted
# share. AURC (Geifman & El-Yaniv) averages, over every example, the selective risk at that example's confidence;
# AUGRC (Traub et al., 2024) likewise averages the generalized risk (accepted errors over all examples), which
# does not reward a rung for being unsure of its easy cases. Vectorised over bootstrap resamples (count rows).

RISK_COVERAGE = 0.8  # the coverage of "risk at 80% coverage"
COVERAGE_RISK = 0.05  # the risk of "coverage at 5% risk"


def risk_coverage_curve(conf: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """The risk-coverage curve at each distinct confidence, highest first: ``coverage``, ``risk`` (selective),
    ``generalized_risk`` and ``added`` (the share each threshold adds), one row per row of ``weights`` ``[B, N]``
    (how often each decision counts; default once)."""
    order = np.argsort(-conf, kind="stable")
    ends = np.flatnonzero(np.r_[conf[order][1:] != conf[order][:-1], True])  # last index of each tie group
    w = np.ones((1, len(conf))) if weights is None else np.asarray(weights)
    # counts are whole numbers: float32 sums are exact below 2**24 and halve the work of the bootstrap (measured:
    # 147 -> 95 ms per 250 resamples of 7,600 examples, with the division below)
    exact = np.float32 if w.shape[1] * max(float(w.max(initial=0)), 1.0) < 2**24 else np.float64
    w = np.take(w.astype(exact, copy=False), order, axis=1)
    accepted = np.cumsum(w, axis=1)[:, ends].astype(np.float64)
    errors = np.cumsum(w * (correct[order] == 0).astype(exact), axis=1)[:, ends].astype(np.float64)
    total = accepted[:, -1:]
    return {
        "coverage": accepted / total,
        "risk": errors / np.maximum(accepted, 1.0),  # whole-number weights: none accepted means no errors
        "generalized_risk": errors / total,
        "added": np.diff(accepted, axis=1, prepend=0.0) / total,
    }


def risk_coverage(p: Predictions, counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """:func:`risk_coverage_curve` of the top-label decisions (multi-label: every label's decision), per resample
    row of ``counts`` ``[B, N]`` (default: the test split itself)."""
    conf, correct = p.top
    if counts is not None and p.spec.multilabel:  # a resample draws examples; each carries all its labels
        counts = np.repeat(counts, p.spec.n_classes, axis=1)
    return risk_coverage_curve(conf, correct, counts)


def _selective(name: str) -> Callable[[Predictions, np.ndarray | None], np.ndarray]:
    def values(p: Predictions, counts: np.ndarray | None = None) -> np.ndarray:
        c = risk_coverage(p, counts)
        if name == "aurc":
            return (c["added"] * c["risk"]).sum(axis=1)
        if name == "augrc":
            return (c["added"] * c["generalized_risk"]).sum(axis=1)
        if name == "risk_at_80_coverage":  # the highest threshold that accepts at least 80%
            first = np.argmax(c["coverage"] >= RISK_COVERAGE - 1e-12, axis=1)
            return c["risk"][np.arange(len(first)), first]
        ok = (c["risk"] <= COVERAGE_RISK + 1e-12) & (c["added"] > 0)  # coverage at 5% risk: 0 if never that low
        return np.where(ok, c["coverage"], 0.0).max(axis=1)

    return values


def _point(values: Callable[[Predictions, np.ndarray | None], np.ndarray]) -> Callable[[Predictions], float]:
    return lambda p: float(values(p)[0])


for _name, _direction, _header in (
    ("aurc", "min", "AURC"),
    ("augrc", "min", None),
    ("risk_at_80_coverage", "min", None),
    ("coverage_at_5_risk", "max", None),
):
    _values = _selective(_name)
    register_metric(_name, direction=_direction, header=_header, resample=_values)(_point(_values))


@register_metric("conformal", direction=None, tasks={SINGLE}, columns=(("set size (LAC)", "lac.set_size"),), digits=2)
def conformal_sets(p: Predictions) -> dict[str, Any]:
    """Split-conformal prediction sets at level ``1 - alpha`` (:mod:`bench.evaluate.conformal`): per score (LAC,
    APS, and each class-wise), coverage with its interval over random calibration halves of the test split, mean
    set size, empty sets, the worst-covered class. Single-label only (a multi-label set is another construction)."""
    return {"alpha": p.alpha, "splits": conformal.SPLITS, **conformal.evaluate(p.probs, p.y, p.alpha)}


@register_metric("ood", direction=None, tasks={SINGLE})
def ood_detection(p: Predictions) -> dict[str, Any] | None:
    """How well the rung's uncertainty (max-probability, entropy) tells out-of-distribution test examples from the
    in-distribution ones (:mod:`bench.evaluate.ood`); None when the data has no OOD examples."""
    if p.ood_probs is None or len(p.ood_probs) == 0:
        return None
    return ood.detection(p.probs, p.ood_probs, p.members, p.ood_members)


@register_metric("ensemble", direction=None)
def ensemble_diversity(p: Predictions) -> dict[str, Any] | None:
    """An ensemble's members' disagreement and the split of its predictive entropy into the members' mean entropy
    and their mutual information (:mod:`bench.evaluate.diversity`); None for a rung without members."""
    if p.members is None:
        return None
    return diversity.summary(p.members, p.spec.multilabel)


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
