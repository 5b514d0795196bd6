"""Comparisons between the rungs of one dataset, from their stored predictions: paired differences from the top
rung with intervals, tiers of rungs that cannot be told apart, rungs that make identical decisions, which "best"
values are significant, and what each step up the ladder buys.

All differences are paired bootstraps (:mod:`bench.evaluate.intervals`): every rung is resampled on the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from bench.evaluate.intervals import Bootstrap, identical_decisions, paired_difference, resampled
from bench.evaluate.metrics import Metric, Predictions, list_metrics, lookup

SORT_KEY = "f1_macro"


@dataclass
class Entry:
    """One finished rung: its predictions, stored point values and what it is."""

    rung: str
    predictions: Predictions
    metrics: Mapping[str, Any]
    chance: bool = False  # its predictions ignore the input: its calibration is not a model's
    bases: Sequence[str] = ()


@dataclass
class Comparison:
    """The rungs of a dataset compared on the scored metrics (``keys``: metric keys, dotted for dict metrics)."""

    entries: dict[str, Entry]
    keys: Sequence[str]
    sort_key: str = SORT_KEY
    boot: Bootstrap = field(default_factory=Bootstrap)

    @cached_property
    def _metrics(self) -> dict[str, Metric]:
        kind = next(iter(self.entries.values())).predictions.spec.label_kind
        return {m.name: m for m in list_metrics(kind) if m.scored}

    def metric_of(self, key: str) -> Metric | None:
        return self._metrics.get(key.split(".")[0])

    def point(self, rung: str, key: str) -> float:
        value = lookup(self.entries[rung].metrics, key)
        return float("nan") if value is None else float(value)

    @cached_property
    def _resampled(self) -> dict[str, dict[str, np.ndarray]]:
        wanted = {self.metric_of(k) for k in [*self.keys, self.sort_key]} - {None}
        return {
            rung: resampled(e.predictions, sorted(wanted, key=lambda m: m.name), self.boot)
            for rung, e in self.entries.items()
        }

    def difference(self, a: str, b: str, key: str) -> dict[str, Any]:
        """``a`` minus ``b`` on ``key``, with its paired interval."""
        return paired_difference(
            self._resampled[a][key], self._resampled[b][key], self.point(a, key) - self.point(b, key), self.boot
        )

    def ranked(self, key: str | None = None) -> list[str]:
        """Rungs best first on ``key`` (default: the sort key); ties by name."""
        key = key or self.sort_key
        sign = -1 if (self.metric_of(key) and self.metric_of(key).direction == "max") else 1
        return sorted(
            self.entries, key=lambda r: (math.inf if math.isnan(self.point(r, key)) else sign * self.point(r, key), r)
        )

    @cached_property
    def same_as(self) -> dict[str, str]:
        """Each rung that decides every test example as a rung ranked above it does: that rung."""
        order, out = self.ranked(), {}
        for i, rung in enumerate(order):
            for above in order[:i]:
                if above not in out and identical_decisions(
                    self.entries[rung].predictions, self.entries[above].predictions
                ):
                    out[rung] = above
                    break
        return out

    @cached_property
    def versus_top(self) -> dict[str, dict[str, Any]]:
        """Every rung's paired difference from the top rung on the sort key."""
        top = self.ranked()[0]
        return {rung: self.difference(rung, top, self.sort_key) for rung in self.entries}

    @cached_property
    def tiers(self) -> dict[str, int]:
        """Tier 1: the top rung and every rung not significantly below it on the sort key; each next tier is led
        by the best rung left and holds those not significantly below that leader."""
        out: dict[str, int] = {}
        tier, leader = 0, None
        for rung in self.ranked():
            if leader is None or self.difference(leader, rung, self.sort_key)["significant"]:
                tier, leader = tier + 1, rung
            out[rung] = tier
        return out

    def best(self, key: str) -> str | None:
        """The rung whose value on ``key`` is best *significantly* (its paired interval against the runner-up
        excludes 0); None when the top two cannot be told apart. A rung whose predictions ignore the input is
        never the best calibration."""
        metric = self.metric_of(key)
        if metric is None or metric.direction is None:
            return None
        candidates = [
            r
            for r in self.ranked(key)
            if not math.isnan(self.point(r, key)) and not (metric.calibration and self.entries[r].chance)
        ]
        if len(candidates) < 2:
            return candidates[0] if candidates else None
        first, second = candidates[:2]
        return first if self.difference(first, second, key)["significant"] else None


def verdict(difference: Mapping[str, Any], direction: str | None) -> str:
    """``better``, ``worse`` or ``tie`` for a paired difference (a minus b) of a metric with this direction."""
    if not difference["significant"] or direction is None:
        return "tie"
    return "better" if (difference["delta"] > 0) == (direction == "max") else "worse"


def steps(comparison: Comparison, ladder: Sequence[str], keys: Sequence[str]) -> list[dict[str, Any]]:
    """What each step buys: every wrapper against its base, and every learned rung that wraps nothing against the
    learned rung below it in the ladder (``ladder``: rung order). One row per step, per key: the paired difference
    with its interval and a verdict."""
    present = [r for r in ladder if r in comparison.entries]
    plain = [r for r in present if not comparison.entries[r].bases and not comparison.entries[r].chance]
    pairs = [
        (r, comparison.entries[r].bases[0])
        for r in present
        if len(comparison.entries[r].bases) == 1 and comparison.entries[r].bases[0] in comparison.entries
    ]
    pairs += list(zip(plain[1:], plain[:-1]))
    rows = []
    for rung, below in pairs:
        row: dict[str, Any] = {
            "rung": rung,
            "versus": below,
            "kind": "wrapper" if below in comparison.entries[rung].bases else "ladder",
        }
        for key in keys:
            diff = comparison.difference(rung, below, key)
            metric = comparison.metric_of(key)
            row[key] = {**diff, "verdict": verdict(diff, metric.direction if metric else None)}
        rows.append(row)
    return rows


def worse_than_below(
    comparison: Comparison, ladder: Sequence[str], families: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Sanity checks: every rung that wraps nothing and is significantly worse on the sort key than a rung that
    wraps nothing below it in the ladder (``families``: rung → family; ``same_family`` flags a simpler rung on the
    same backbone, e.g. a fine-tuned transformer below its frozen features). One row per such pair."""
    present = [r for r in ladder if r in comparison.entries and not comparison.entries[r].bases]
    metric = comparison.metric_of(comparison.sort_key)
    rows = []
    for i, rung in enumerate(present):
        for below in present[:i]:
            diff = comparison.difference(rung, below, comparison.sort_key)
            if verdict(diff, metric.direction if metric else None) == "worse":
                same = families.get(rung) is not None and families.get(rung) == families.get(below)
                rows.append({"rung": rung, "versus": below, "same_family": same, **diff})
    return rows
