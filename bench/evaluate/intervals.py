"""Confidence intervals and paired comparisons by bootstrap over test examples, and the ECE noise floor.

Every resample is a row of counts ``W[b, i]`` (how often example ``i`` was drawn), generated from a seed and the
test-set size alone, so every rung of a dataset is resampled identically and the difference of two rungs' values
on the same rows is a *paired* bootstrap. A metric that registers sufficient statistics is evaluated on all
resamples at once as ``reduce(W @ stats)``; others are recomputed on each resample.

Hand-written rather than ``scipy.stats.bootstrap``: scipy resamples the data by indexing (``B x N x S`` values);
measured here for 1,000 resamples of 872 examples, 0.89 s against 0.02 s for 50 per-example statistics (about
45x) and 18 ms against 8 ms for accuracy alone; and it has no paired mode across separately stored predictions.
The percentile interval is the one scipy calls ``method="percentile"``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.evaluate.metrics import Metric, Predictions, list_metrics, lookup, score

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
CHUNK = 250  # resamples per counts matrix: 250 x 7,600 float64 is 15 MB


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn: ``resamples`` percentile-bootstrap resamples of the test examples at ``level``."""

    resamples: int = RESAMPLES
    level: float = LEVEL
    seed: int = SEED

    def describe(self) -> dict[str, Any]:
        return {
            "method": "bias-shifted percentile bootstrap over test examples (paired across rungs)",
            "resamples": self.resamples,
            "level": self.level,
            "seed": self.seed,
        }

    def counts(self, n: int) -> Iterator[np.ndarray]:
        """The resamples as count rows ``[b, n]``, in chunks; the same for every call with the same ``n``."""
        rng = np.random.default_rng([self.seed, n])
        done = 0
        while done < self.resamples:
            b = min(CHUNK, self.resamples - done)
            idx = rng.integers(0, n, (b, n))
            flat = (np.arange(b)[:, None] * n + idx).ravel()
            yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
            done += b

    def bounds(self, values: np.ndarray, point: float | None = None) -> tuple[float, float]:
        """The percentile interval of bootstrap values (NaN values ignored), shifted by the bootstrap's bias
        (``point`` minus the resamples' mean) when the estimate ``point`` is given. The shift is nil for accuracy
        or F1, but not for ECE: a resample repeats examples, which inflates binned calibration errors, so its
        plain percentiles can lie wholly above the measured value."""
        tail = (1 - self.level) / 2 * 100
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return float("nan"), float("nan")
        lo, hi = np.percentile(finite, [tail, 100 - tail])
        shift = 0.0 if point is None or not np.isfinite(point) else point - float(finite.mean())
        lo, hi = lo + shift, hi + shift
        if finite.min() >= 0:  # a non-negative metric (an error, a loss) keeps a non-negative interval
            lo, hi = max(lo, 0.0), max(hi, 0.0)
        return float(lo), float(hi)


def _flatten(name: str, value: Any) -> dict[str, np.ndarray]:
    if isinstance(value, dict):
        return {f"{name}.{k}": np.asarray(v, dtype=np.float64) for k, v in value.items()}
    return {name: np.asarray(value, dtype=np.float64)}


def _slow(metric: Metric, p: Predictions, counts: np.ndarray) -> dict[str, np.ndarray]:
    """A metric without statistics: recomputed on each resample."""
    rows: list[dict[str, float]] = []
    for w in counts:
        value = metric.compute(p.subset(np.repeat(np.arange(p.n), w.astype(np.int64))))
        rows.append({k: float(v) for k, v in _flatten(metric.name, _scalars(value)).items()})
    return {k: np.array([r[k] for r in rows]) for k in rows[0]} if rows else {}


def _scalars(value: Any) -> Any:
    """A dict-valued metric's nested numbers as one level of dotted keys."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, inner in value.items():
        if isinstance(inner, dict):
            out.update({f"{key}.{k}": v for k, v in inner.items() if isinstance(v, (int, float))})
        elif isinstance(inner, (int, float)):
            out[key] = inner
    return out


def resampled(
    p: Predictions, metrics: Sequence[Metric] | None = None, boot: Bootstrap = Bootstrap()
) -> dict[str, np.ndarray]:
    """Each scored metric's value on every resample: ``{key: [resamples]}`` (dict-valued metrics by dotted key)."""
    chosen = [m for m in (metrics if metrics is not None else list_metrics(p.spec.label_kind)) if m.scored]
    stats = {id(m.stats): m.stats(p) for m in chosen if m.stats is not None}
    parts: dict[str, list[np.ndarray]] = {}
    for counts in boot.counts(p.n):
        totals = {key: counts @ s for key, s in stats.items()}
        for m in chosen:
            if m.stats is not None:
                values = _flatten(m.name, m.reduce(totals[id(m.stats)], p))
            elif m.resample is not None:
                values = {m.name: m.resample(p, counts)}
            else:
                values = _slow(m, p, counts)
            for key, v in values.items():
                parts.setdefault(key, []).append(v)
    return {key: np.concatenate(v) for key, v in parts.items()}


def confidence_intervals(
    p: Predictions, scores: Mapping[str, Any] | None = None, boot: Bootstrap = Bootstrap()
) -> dict[str, list[float]]:
    """``{metric key: [low, high]}`` for every scored metric of these predictions (``scores``: their point values,
    for the bias shift; computed when not given)."""
    scores = scores if scores is not None else score(p)
    out = {}
    for key, values in resampled(p, boot=boot).items():
        point = lookup(scores, key)
        out[key] = list(boot.bounds(values, None if point is None else float(point)))
    return out


def ece_noise_floor(p: Predictions, simulations: int = RESAMPLES, seed: int = SEED) -> dict[str, float]:
    """What a perfectly calibrated model with these confidences would score in ECE on this many examples: each
    decision is right with probability equal to its confidence. Mean and 95th percentile over simulations."""
    stats = p.calibration_stats  # per label: [in bin (K), confidence in bin (K), right in bin (K)]
    k = p.n_bins
    blocks = stats.reshape(p.n, -1, 3, k)
    member, conf_in_bin = blocks[:, :, 0, :], blocks[:, :, 1, :]
    conf = conf_in_bin.sum(axis=2)  # [N, labels]: each decision's confidence
    rng = np.random.default_rng([seed, p.n])
    eces = np.empty(simulations)
    for start in range(0, simulations, CHUNK):
        s = min(CHUNK, simulations - start)
        right = (rng.random((s, *conf.shape)) < conf).astype(np.float64)  # [S, N, labels]
        right_in_bin = np.einsum("snl,nlk->slk", right, member)
        gap = np.abs(right_in_bin - conf_in_bin.sum(axis=0)).sum(axis=2) / p.n  # [S, labels]
        eces[start : start + s] = gap.mean(axis=1)
    return {"mean": float(eces.mean()), "q95": float(np.percentile(eces, 95)), "simulations": simulations}


def identical_decisions(a: Predictions, b: Predictions) -> bool:
    """Whether two rungs decide every test example the same way."""
    return bool(np.array_equal(a.pred, b.pred))


def paired_difference(a: np.ndarray, b: np.ndarray, point: float, boot: Bootstrap = Bootstrap()) -> dict[str, Any]:
    """``point`` (a's value minus b's) with the interval of the resampled differences, and whether it excludes 0."""
    lo, hi = boot.bounds(a - b, point)
    return {"delta": point, "low": lo, "high": hi, "significant": bool(lo > 0 or hi < 0)}


def interval_report(
    p: Predictions, scores: Mapping[str, Any] | None = None, boot: Bootstrap = Bootstrap()
) -> dict[str, Any]:
    """What result.json stores under ``intervals``: how they were drawn, every scored metric's interval, and the
    ECE a perfectly calibrated model with the same confidences would reach (its noise floor)."""
    return {**boot.describe(), "metrics": confidence_intervals(p, scores, boot), "ece_noise_floor": ece_noise_floor(p)}
