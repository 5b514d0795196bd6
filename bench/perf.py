"""The latency regression gate: each rung's prediction time *relative to a fixed reference workload* timed
in the same rounds, compared with a stored baseline ratio.

Absolute times on shared machines swing by 2x between runs (the same forward pass: 313 to 748 ms); a rung
and the reference slow down together, so their ratio is what is compared. Every round times the reference
just before the rung's call; the ratio of a case is the median over rounds of (rung time / reference
time), and its spread (interquartile range / median) says how stable that was.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import Dataset, Split, TaskSpec
from bench.protocol import Rung
from bench.registry import create_rung, get_rung, list_rungs

BATCH_SIZES = (1, 16)
DEFAULT_THRESHOLD = 0.25
DEFAULT_BASELINE = Path("perf") / "baseline.json"
ROUND_SECONDS = 0.03  # fast calls are repeated within a round until it lasts about this long
MIN_ROUNDS, MAX_ROUNDS, CASE_SECONDS = 5, 40, 1.2
SCHEMA = 1
# Small, quick fits: timing does not depend on how well a rung learned.
FIT_OPTIONS: dict[str, dict[str, Any]] = {
    "finetuned": {"max_train": 256, "epochs": 1, "min_steps": 0, "max_length": 64, "batch_size": 32},
    "features_lr": {"max_length": 64},
    "char_cnn": {"max_epochs": 1, "min_steps": 0},
    # 5 passes time the same per-pass code as 20 in a quarter of the time, so a case gets more rounds
    "finetuned+mc": {"passes": 5},
}


POSITIVE = "good great wonderful lovely superb moving brilliant charming funny delightful".split()
NEGATIVE = "bad awful boring dull terrible painful stupid tedious weak messy".split()
FILLER = ("the film a story with its cast and plot is was of in that this director script scenes music ending "
          "characters acting pace moments every minute performance camera dialogue").split()


def workload(seed: int = 0) -> Dataset:
    """A fixed synthetic sentiment dataset (sst2-like lengths: 4 to 40 words) to fit and time rungs on."""
    rng = np.random.default_rng(seed)

    def split(name: str, n: int) -> Split:
        y = rng.integers(0, 2, n)
        texts = []
        for label in y:
            words = list(rng.choice(FILLER, int(rng.integers(3, 36))))
            for _ in range(int(rng.integers(1, 4))):
                words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POSITIVE if label else NEGATIVE)))
            texts.append(" ".join(words))
        return Split(name, spec, tuple(texts), y)

    spec = TaskSpec("perf_workload", "single-label", ("negative", "positive"))
    splits = {"train": split("train", 256), "validation": split("validation", 96), "test": split("test", 64)}
    return Dataset(spec, splits, source="bench.perf.workload", fingerprint=f"perf-{seed}")


def case_inputs(dataset: Dataset, batch: int) -> list[str]:
    """The fixed inputs timed at a batch size: the first ``batch`` test texts."""
    return list(dataset.test.inputs[:batch])  # type: ignore[arg-type]


class Reference:
    """The fixed reference workload, in parts timed separately: a float32 matrix product (torch, the
    rungs' threads), a tokeniser pass and pure-Python text handling. Each case is compared against the
    part whose ratio moved least between the ``--save`` runs (see :func:`combine_runs`): a matrix product
    tracks a transformer's slowdowns, not a dictionary lookup's."""

    def __init__(self) -> None:
        import torch

        gen = torch.Generator().manual_seed(0)
        self._a = torch.randn(256, 384, generator=gen)
        self._b = torch.randn(384, 1536, generator=gen)
        self._texts = [" ".join(FILLER[i % len(FILLER):] + POSITIVE[: i % 7]) for i in range(32)]
        self._tokenizer = _tokenizer()
        self.parts: dict[str, Callable[[], Any]] = {"matmul": self._matmul, "python": self._python}
        if self._tokenizer is not None:
            self.parts["tokenizer"] = self._tokenize

    def _matmul(self) -> None:
        import torch

        with torch.inference_mode():
            torch.matmul(self._a, self._b)

    def _tokenize(self) -> None:
        self._tokenizer(self._texts, truncation=True, max_length=64)

    def _python(self) -> None:
        counts: dict[str, int] = {}
        for text in self._texts:
            for word in text.lower().split():
                counts[word] = counts.get(word, 0) + 1

    def __call__(self) -> None:
        for part in self.parts.values():
            part()


def _tokenizer() -> Any:
    try:
        from models.hf import DEFAULT_MODEL, load_tokenizer

        return load_tokenizer(DEFAULT_MODEL)
    except Exception:  # noqa: BLE001 - the reference still works without the packaged model
        return None


def fit_ladder(names: Sequence[str], dataset: Dataset, seed: int = 0) -> dict[str, Rung]:
    """Fit the named rungs (and the bases they wrap) once on ``dataset``; wrappers share their fitted base."""
    needed: list[str] = []

    def add(name: str) -> None:
        base = get_rung(name).base
        if base is not None:
            add(base)
        if name not in needed:
            needed.append(name)

    for name in names:
        add(name)
    order = list_rungs()
    fitted: dict[str, Rung] = {}
    for name in sorted(needed, key=lambda n: order.index(n) if n in order else len(order)):
        base = get_rung(name).base
        extra = {} if base is None else {"base": fitted[base]}
        rung = create_rung(name, context={"seed": seed, "device": "cpu"}, **FIT_OPTIONS.get(name, {}), **extra)
        fitted[name] = rung.fit(dataset.train, dataset.validation)
    return {n: fitted[n] for n in names}


def _timed(fn: Callable[[], Any], repeat: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


@dataclass
class Plan:
    """How a case is timed: calls per round and rounds."""

    calls: int
    rounds: int


def plan(fn: Callable[[], Any], round_seconds: float = ROUND_SECONDS, case_seconds: float = CASE_SECONDS) -> Plan:
    """Calls per round so a round lasts about ``round_seconds``; rounds to fill about ``case_seconds``."""
    fn()  # warm-up
    one = max(_timed(fn, 1), 1e-7)
    calls = max(1, math.ceil(round_seconds / one))
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, case_seconds // max(one * calls, 1e-9))))
    return Plan(calls, rounds)


def repeat(fn: Callable[[], Any], calls: int) -> None:
    """Call ``fn`` ``calls`` times (one timed round)."""
    for _ in range(calls):
        fn()


class Slowed(Rung):
    """Test hook for the gate: ``rung`` doing its prediction work ``factor`` times on average (each call does
    it once more with probability ``factor - 1``, on a fixed schedule)."""

    def __init__(self, rung: Rung, factor: float) -> None:
        self.rung, self.factor, self._debt = rung, factor, 0.0

    def fit(self, train: Split, validation: Split) -> "Slowed":
        return self

    def predict_proba(self, inputs: Sequence[Any]) -> np.ndarray:
        out = self.rung.predict_proba(inputs)
        self._debt += self.factor - 1
        while self._debt >= 1:
            self.rung.predict_proba(inputs)
            self._debt -= 1
        return out


def parse_slowdowns(text: str | None) -> dict[str, float]:
    """``"tfidf_lr=1.5,majority=2"`` -> ``{"tfidf_lr": 1.5, "majority": 2.0}``."""
    out: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        name, _, factor = item.partition("=")
        out[name.strip()] = float(factor)
    return out


def summarise(ratios: Sequence[float]) -> dict[str, float]:
    """Median ratio and its relative spread (interquartile range / median)."""
    q1, med, q3 = np.percentile(np.asarray(ratios, dtype=float), [25, 50, 75])
    return {"ratio": float(med), "spread": float((q3 - q1) / med) if med else float("inf"), "rounds": len(ratios)}


def choose_reference(rung_times: Sequence[float], part_times: dict[str, Sequence[float]], fixed: str | None = None) -> dict[str, Any]:
    """Ratios of a case against each reference part, round by round; the summary of ``fixed`` (the
    baseline's choice) or else of the part giving the lowest spread, plus every part's ratio."""
    summaries = {name: summarise([t / r for t, r in zip(rung_times, times)]) for name, times in part_times.items()}
    chosen = fixed if fixed in summaries else min(summaries, key=lambda n: summaries[n]["spread"])
    return {**summaries[chosen], "reference": chosen, "ratios": {n: s["ratio"] for n, s in summaries.items()},
            "spreads": {n: s["spread"] for n, s in summaries.items()}}


def combine_runs(runs: list[dict[str, dict[str, Any]]], choose_reference: bool = False) -> dict[str, dict[str, Any]]:
    """Cases of several suite runs: each case's median ratio over runs (the upper median for an even count, which
    errs towards fewer false alarms), with the other fields of that run.

    ``choose_reference`` (at ``--save``): first switch every case to the reference part whose ratio moved least
    *between* runs (max / min of the runs' ratios), the variation the gate has to live with."""
    if choose_reference and len(runs) > 1:
        runs = [dict(r) for r in runs]
        for key in runs[0]:
            found = [r[key] for r in runs if key in r]
            parts = set.intersection(*(set(c["ratios"]) for c in found))
            best = min(sorted(parts), key=lambda p: max(c["ratios"][p] for c in found) / min(c["ratios"][p] for c in found))
            for r in runs:
                if key in r:
                    spread = r[key].get("spreads", {}).get(best, r[key]["spread"])
                    r[key] = {**r[key], "reference": best, "ratio": r[key]["ratios"][best], "spread": spread}
    combined = {}
    for key in runs[0]:
        found = sorted((r[key] for r in runs if key in r), key=lambda c: c["ratio"])
        combined[key] = {**found[len(found) // 2], "run_ratios": [c["ratio"] for c in found]}
    return combined


def to_retry(rows: list[dict[str, Any]]) -> list[str]:
    """Rungs with a case over its limit: the ones to measure again before failing the gate."""
    return sorted({r["rung"] for r in failed(rows)})


def compare(current: dict[str, Any], baseline: dict[str, Any], threshold: float = DEFAULT_THRESHOLD) -> list[dict[str, Any]]:
    """One row per case in the baseline: baseline ratio, current ratio, change and verdict.

    A case fails when its ratio grew by more than its threshold (the baseline's per-rung ``thresholds``,
    else ``threshold``); a case missing from the current run is reported as ``missing``.
    """
    thresholds = baseline.get("thresholds", {})
    rows = []
    for key, base in sorted(baseline["cases"].items()):
        rung = base["rung"]
        limit = float(thresholds.get(rung, threshold))
        now = current["cases"].get(key)
        if now is None:
            rows.append({"case": key, "rung": rung, "batch": base["batch"], "baseline": base["ratio"], "current": None,
                         "change": None, "limit": limit, "verdict": "missing"})
            continue
        change = now["ratio"] / base["ratio"] - 1
        verdict = "SLOWER" if change > limit else ("faster" if change < -limit else "ok")
        rows.append({"case": key, "rung": rung, "batch": base["batch"], "baseline": base["ratio"], "current": now["ratio"],
                     "change": change, "spread": now.get("spread"), "limit": limit, "verdict": verdict,
                     "runs": len(now.get("run_ratios", [now["ratio"]])),
                     "reference": base.get("reference", "")})
    return rows


def failed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that make the gate fail: slower beyond the limit."""
    return [r for r in rows if r["verdict"] == "SLOWER"]


def table(rows: list[dict[str, Any]]) -> str:
    """The comparison as a plain-text table."""
    from tabulate import tabulate

    def pct(v: float | None) -> str:
        return "" if v is None else f"{v:+.1%}"

    body = [[r["rung"], r["batch"], r.get("reference", ""), f"{r['baseline']:.4g}", "" if r["current"] is None else f"{r['current']:.4g}",
             pct(r["change"]), f"±{r['limit']:.0%}", "" if r.get("spread") is None else f"{r['spread']:.1%}", r.get("runs", ""),
             r["verdict"]] for r in rows]
    return tabulate(body, headers=["rung", "batch", "reference", "baseline ratio", "current ratio", "change", "limit", "spread", "runs",
                                   "verdict"])


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    from bench.environment import cpu_model, git_commit

    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "commit": git_commit(),
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def read_baseline(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_baseline(current: dict[str, Any], path: Path, thresholds: dict[str, float] | None = None) -> Path:
    """Store ``current`` as the baseline (keeping per-rung thresholds already in the file)."""
    path = Path(path)
    kept = read_baseline(path).get("thresholds", {}) if path.is_file() else {}
    payload = {"schema": SCHEMA, "machine": current["machine"], "default_threshold": DEFAULT_THRESHOLD,
               "thresholds": {**kept, **(thresholds or {})}, "cases": current["cases"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
