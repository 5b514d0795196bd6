"""Leaderboards from stored results: ``<dataset>/leaderboard.md`` and ``.csv`` (pandas + tabulate).

Every score is shown with its 95% bootstrap interval; rungs are compared with the top rung by paired bootstrap
(difference, interval, tier), identical decisions are named, and a value is marked best only where it is
significantly better than the runner-up. A second table says what each step up the ladder buys.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.evaluate.compare import SORT_KEY, Comparison, Entry, steps, worse_than_below
from bench.evaluate.efficiency import TIMING_METHODS
from bench.evaluate.metrics import list_metrics, lookup
from bench.evaluate.rescore import stored_predictions
from bench.rungs.protocol import under_trained, under_trained_hint
from bench.rungs.registry import list_rungs
from bench.store.results import ResultStore, seed_of

log = logging.getLogger(__name__)
EFFICIENCY_MARGIN = 0.10  # an efficiency figure is marked best when 10% better than the runner-up (run-to-run noise)
DELTA = "Δ macro-F1 vs top"
STEP_KEYS = ("accuracy", "f1_macro", "ece", "nll")
CHECKS_TITLE = "Sanity checks"
MD_FILE, CSV_FILE, STEPS_FILE = "leaderboard.md", "leaderboard.csv", "steps.csv"
STEPS_NOTE = (
    "Each wrapper against its base, each learned rung against the learned rung below it in the ladder: paired "
    "differences with 95% intervals; better / worse where the interval excludes 0, else tie. Latency and size: "
    "ratios of the two rungs' figures (latency only where both were timed on one machine)."
)


@dataclass(frozen=True)
class Column:
    """A leaderboard column: ``key`` in result section ``section``; ``best`` max/min/None; ``scored``: it has a
    bootstrap interval."""

    header: str
    section: str
    key: str
    best: str | None
    format: Callable[[Any], str]
    scored: bool = False
    digits: int = 4


def _human(n: Any, unit: str = "") -> str:
    if n is None or pd.isna(n):
        return ""
    n = float(n)
    for suffix in ("", "k", "M", "G", "T"):
        if abs(n) < 1000 or suffix == "T":
            return f"{n:.0f}{suffix}{unit}" if suffix == "" else f"{n:.1f}{suffix}{unit}"
        n /= 1000
    return str(n)


def _fixed(digits: int) -> Callable[[Any], str]:
    return lambda v: "" if v is None or pd.isna(v) else f"{float(v):.{digits}f}"


def _percent(v: Any) -> str:
    return "" if v is None or pd.isna(v) else f"{100 * float(v):.1f}%"


def metric_columns(task: str) -> list[Column]:
    """The leaderboard columns registered metrics declare for a label kind, in registration order."""
    return [
        Column(
            header, "metrics", f"{m.name}.{key}" if key else m.name, m.direction, _fixed(m.digits), m.scored, m.digits
        )
        for m in list_metrics(task)
        if task in m.column_tasks
        for header, key in m.columns
    ]


EFFICIENCY_COLUMNS: list[Column] = [
    Column("latency p50 (ms)", "efficiency", "latency_ms_p50", "min", _fixed(3)),
    Column("throughput (/s)", "efficiency", "throughput_per_s", "max", _human),
    Column("at batch", "efficiency", "throughput_batch", None, _human),  # the size the rung's sweep found fastest
    # the same batch tokenised ahead of the timed calls: the model alone (rungs with a host stage)
    Column("model alone (/s)", "efficiency", "throughput_prepared_per_s", "max", _human),
    # achieved FLOP/s on real tokens over the measured matmul peak: how near the hardware the rung runs
    Column("% matmul peak", "efficiency", "flops_peak_fraction", None, _percent),
    Column("params", "efficiency", "params", None, _human),  # more parameters is neither better nor worse
    Column("size", "efficiency", "size_bytes", "min", lambda v: _human(v, "B")),
    Column("fit (s)", "efficiency", "fit_seconds", "min", _fixed(1)),
]
OWN_COLUMNS = (("params (own)", "params_own"), ("size (own)", "size_bytes_own"), ("fit (s, own)", "fit_seconds_own"))


def _multilabel(results: Sequence[dict[str, Any]]) -> bool:
    return any((r.get("data") or {}).get("task") == "multi-label" for r in results)


def columns_for(results: Sequence[dict[str, Any]]) -> list[Column]:
    """The leaderboard's columns: the registered metrics' for the task (multi-label: its decision scores too), then
    efficiency. ``params``, ``size`` and ``fit (s)`` of a wrapper are totals that include its bases'."""
    return [*metric_columns("multi-label" if _multilabel(results) else "single-label"), *EFFICIENCY_COLUMNS]


def load_predictions(
    store: ResultStore, dataset: str, results: Sequence[dict[str, Any]]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``(probs, labels)`` of every finished rung whose predictions can be read (the others are logged)."""
    out = {}
    for r in results:
        if r.get("status") == "ok":
            try:
                out[r["rung"]] = store.load_predictions(dataset, r["rung"], seed_of(r))
            except (OSError, KeyError, ValueError) as exc:
                log.warning("%s/%s: predictions unreadable (%s)", dataset, r["rung"], exc)
    return out


def comparison_for(
    results: Sequence[dict[str, Any]], predictions: dict[str, tuple[np.ndarray, np.ndarray]]
) -> Comparison | None:
    """The finished rungs compared from their predictions (None when under two have usable ones)."""
    entries = {}
    for r in results:
        if r["rung"] not in predictions:
            continue
        try:
            p = stored_predictions(r, *predictions[r["rung"]])
        except BenchError:
            continue
        entries[r["rung"]] = Entry(r["rung"], p, r.get("metrics") or {}, bool(r.get("chance")), r.get("bases") or ())
    if len(entries) < 2:
        return None
    keys = [c.key for c in columns_for(results) if c.scored]
    return Comparison(entries, keys)


SEED_KEYS = (("macro-F1", "f1_macro"), ("ECE", "ece"))


def same_recipe_seeds(seeds: dict[str, list[dict[str, Any]]]) -> dict[str, set[int]]:
    """Each rung's seeds that ran its lowest seed's configuration (but for the seed) — and, for a wrapper, whose
    bases did too: a seed left from an older recipe is not averaged with the current one."""

    def recipe(r: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in (r.get("config") or {}).items() if k not in ("seed", "bases")}

    out: dict[str, set[int]] = {}

    def kept(rung: str) -> set[int]:
        if rung not in out:
            runs = seeds.get(rung) or []
            good = {seed_of(x) for x in runs if recipe(x) == recipe(runs[0])}
            for base in (runs[0].get("bases") or []) if runs else []:
                if base in seeds:
                    good &= kept(base)
            out[rung] = good
        return out[rung]

    for rung in seeds:
        kept(rung)
    return out


def timed_on(result: dict[str, Any]) -> str:
    """The machine a result's latency was measured on (older results: their environment's CPU)."""
    key = (result.get("machine") or {}).get("key")
    if key:
        return key
    env = result.get("environment") or {}
    return f"{env.get('cpu', '?')}, {env.get('cpu_count', '?')} cpus (recorded before machines were)"


def timing_method(result: dict[str, Any]) -> str | None:
    """How a finished result's latency was taken (a key of :data:`TIMING_METHODS`, or ``pending``)."""
    if result.get("status") != "ok":
        return None
    timing = result.get("timing") or {}
    if timing.get("pending"):
        return "pending"
    return timing.get("method") or ("retimed" if result.get("retimed_from") else "inline")


def leaderboard_frame(
    results: Sequence[dict[str, Any]],
    comparison: Comparison | None = None,
    seeds: dict[str, list[dict[str, Any]]] | None = None,
) -> pd.DataFrame:
    """One row per rung with the leaderboard's raw numbers — each score with its interval (``<header> low`` /
    ``high``) — best macro-F1 first, unfinished rungs last; with a comparison, the paired difference from the top
    rung, the tier and identical decisions too; with ``seeds`` (every seed's result by rung), the mean and standard
    deviation of macro-F1 and ECE over seeds. ``frame.attrs["best"]`` holds, per column, the rows marked best."""
    columns = columns_for(results)
    recipes = same_recipe_seeds(seeds or {})
    rows = []
    for r in results:
        row: dict[str, Any] = {"rung": r["rung"], "status": r.get("status", "?")}
        bounds = (r.get("intervals") or {}).get("metrics") or {}
        for c in columns:
            row[c.header] = lookup(r.get(c.section), c.key)
            if c.scored:
                row[f"{c.header} low"], row[f"{c.header} high"] = (bounds.get(c.key) or [None, None])[:2]
        floor = (r.get("intervals") or {}).get("ece_noise_floor") or {}
        row["ECE noise floor"] = floor.get("q95")
        if comparison is not None and r["rung"] in comparison.entries:
            d = comparison.versus_top[r["rung"]]
            row.update(
                {
                    DELTA: d["delta"],
                    f"{DELTA} low": d["low"],
                    f"{DELTA} high": d["high"],
                    "tier": comparison.tiers[r["rung"]],
                    "same decisions as": comparison.same_as.get(r["rung"], ""),
                }
            )
        runs = [
            x
            for x in (seeds or {}).get(r["rung"], [])
            if x.get("status") == "ok" and seed_of(x) in recipes.get(r["rung"], ())
        ]
        for header, key in SEED_KEYS:
            values = [float(v) for x in runs if (v := lookup(x.get("metrics"), key)) is not None]
            row[f"{header} seeds mean"] = float(np.mean(values)) if values else None
            row[f"{header} seeds sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        row["seeds"] = len(runs) or None
        row["timed on"] = timed_on(r) if r.get("status") == "ok" else None
        row["timed while busy"] = bool((r.get("timing") or {}).get("contended"))
        row["timed how"] = timing_method(r)
        row["under-trained"] = r.get("status") == "ok" and under_trained(r.get("fit_info"))
        row["note"] = r.get("reason") or r.get("error") or ("under-trained" if row["under-trained"] else "")
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["_done"] = frame["status"] == "ok"
    frame = frame.sort_values(["_done", "macro-F1", "rung"], ascending=[False, False, True], na_position="last")
    frame = frame.drop(columns="_done").reset_index(drop=True)
    frame.attrs["best"] = best_rows(frame, columns, comparison)
    return frame


def best_rows(frame: pd.DataFrame, columns: Sequence[Column], comparison: Comparison | None) -> dict[str, set[int]]:
    """Rows (among finished rungs) marked best in each column: a score only where it is significantly better than
    the runner-up (never a chance rung's calibration); an efficiency figure where it is 10% better than the
    runner-up. Without a comparison no score is marked."""
    done = frame[frame["status"] == "ok"]
    best: dict[str, set[int]] = {}
    for c in columns:
        if c.best is None or c.header not in frame:
            continue
        if c.scored:
            winner = comparison.best(c.key) if comparison is not None else None
            if winner is not None:
                best[c.header] = set(done.index[done["rung"] == winner])
            continue
        values = pd.to_numeric(done[c.header], errors="coerce").dropna().sort_values(ascending=c.best == "min")
        if len(values) >= 2:
            first, second = values.iloc[0], values.iloc[1]
            better = (
                first < second * (1 - EFFICIENCY_MARGIN)
                if c.best == "min"
                else first > second * (1 + EFFICIENCY_MARGIN)
            )
            if better:
                best[c.header] = {values.index[0]}
    return best


def _interval(value: Any, low: Any, high: Any, digits: int = 4, signed: bool = False) -> str:
    if value is None or pd.isna(value):
        return ""
    sign = "+" if signed else ""
    text = f"{float(value):{sign}.{digits}f}"
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return text
    return f"{text} [{float(low):{sign}.3f}, {float(high):{sign}.3f}]"


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's cells as display strings (the same in Markdown and HTML): scores as ``value [low, high]``,
    an ECE within its noise floor marked ``†``, the difference from the top with its interval, the tier."""
    shown = [
        c
        for c in [*metric_columns("single-label"), *metric_columns("multi-label"), *EFFICIENCY_COLUMNS]
        if c.header in frame
    ]
    shown = list({c.header: c for c in shown}.values())
    cells: dict[str, Any] = {"rung": frame["rung"], "status": frame["status"]}
    for c in shown:
        if c.scored and f"{c.header} low" in frame:
            cells[c.header] = [
                _interval(v, lo, hi, c.digits)
                for v, lo, hi in zip(frame[c.header], frame[f"{c.header} low"], frame[f"{c.header} high"])
            ]
        else:
            cells[c.header] = frame[c.header].map(c.format)
    if "ECE" in cells and "ECE noise floor" in frame:
        cells["ECE"] = [
            f"{cell} †" if cell and floor is not None and not pd.isna(floor) and value <= floor else cell
            for cell, value, floor in zip(cells["ECE"], frame["ECE"], frame["ECE noise floor"])
        ]
    if "seeds" in frame and (pd.to_numeric(frame["seeds"], errors="coerce").fillna(0) > 1).any():
        for header, _ in SEED_KEYS:
            cells[f"{header} over seeds"] = [
                "" if pd.isna(m) else (f"{m:.4f} (1)" if pd.isna(sd) else f"{m:.4f} ± {sd:.4f} ({int(n)})")
                for m, sd, n in zip(frame[f"{header} seeds mean"], frame[f"{header} seeds sd"], frame["seeds"])
            ]
    if DELTA in frame:
        cells[DELTA] = [
            "top" if i == 0 else _interval(v, lo, hi, 4, signed=True)
            for i, (v, lo, hi) in enumerate(zip(frame[DELTA], frame[f"{DELTA} low"], frame[f"{DELTA} high"]))
        ]
        cells["tier"] = frame["tier"].map(lambda t: "" if pd.isna(t) else str(int(t)))
        cells["same decisions as"] = frame["same decisions as"].fillna("")
    machines = machine_labels(frame)
    if "latency p50 (ms)" in cells and "timed while busy" in frame:
        cells["latency p50 (ms)"] = [
            f"{cell} *" if busy and cell else cell
            for cell, busy in zip(cells["latency p50 (ms)"], frame["timed while busy"])
        ]
    if len(machines) > 1:
        cells["timed on"] = frame["timed on"].map(lambda k: machines.get(k, "") if isinstance(k, str) else "")
    if "timed how" in frame and frame["timed how"].dropna().nunique() > 1:
        cells["timed how"] = frame["timed how"].fillna("")
    order = [
        "rung",
        "status",
        *[c.header for c in shown if c.section == "metrics"],
        *[name for name in cells if name.endswith(" over seeds")],
        *([DELTA, "tier", "same decisions as"] if DELTA in cells else []),
        *[c.header for c in shown if c.section != "metrics"],
        *(["timed on"] if "timed on" in cells else []),
        *(["timed how"] if "timed how" in cells else []),
    ]
    out = pd.DataFrame({name: cells[name] for name in order})
    out["note"] = frame["note"].map(lambda s: (s[:80] + "…") if isinstance(s, str) and len(s) > 80 else s)
    return out


def machine_labels(frame: pd.DataFrame) -> dict[str, str]:
    """A letter for each machine the rows were timed on (A for the most common)."""
    if "timed on" not in frame:
        return {}
    keys = frame["timed on"].dropna().value_counts().index.tolist()
    return {key: chr(ord("A") + i) for i, key in enumerate(keys)}


def to_markdown(frame: pd.DataFrame, title: str) -> str:
    """The leaderboard as a Markdown table; failed and not-applicable rungs show their status and note."""
    return f"# {title}\n\n" + formatted(frame).to_markdown(index=False, disable_numparse=True) + "\n"


def steps_frame(comparison: Comparison | None) -> pd.DataFrame:
    """What each step buys: one row per step (a wrapper against its base, a learned rung against the one below it
    in the ladder) with each metric's paired difference, interval and verdict."""
    if comparison is None:
        return pd.DataFrame()
    names = {m.name: (m.columns[0][0] if m.columns else m.name) for m in list_metrics()}
    rows = []
    for step in steps(comparison, list_rungs(), [k for k in STEP_KEYS if k in comparison.keys or k == SORT_KEY]):
        row: dict[str, Any] = {"step": f"{step['rung']} vs {step['versus']}", "kind": step["kind"]}
        for key in STEP_KEYS:
            if key in step:
                d = step[key]
                row[f"Δ {names.get(key, key)}"] = _interval(d["delta"], d["low"], d["high"], 4, signed=True)
                row[f"{names.get(key, key)}: verdict"] = d["verdict"]
        rows.append(row)
    return pd.DataFrame(rows)


def _efficiency_ratio(results: dict[str, dict[str, Any]], a: str, b: str, key: str) -> str:
    if key.startswith("latency") and timed_on(results[a]) != timed_on(results[b]):
        return "(other machines)"  # timings from two machines do not divide
    x, y = (lookup(results[r].get("efficiency"), key) for r in (a, b))
    if not x or not y or any(isinstance(v, float) and math.isnan(v) for v in (x, y)):
        return ""
    ratio = float(x) / float(y)
    return f"{ratio:.0f}×" if ratio >= 100 else f"{ratio:.2g}×"


def with_ratios(steps: pd.DataFrame, results: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The step table with latency and size ratios (rung over the rung it is compared with)."""
    if steps.empty:
        return steps
    by_rung = {r["rung"]: r for r in results}
    pairs = [s.split(" vs ") for s in steps["step"]]
    steps = steps.copy()
    steps["latency ×"] = [_efficiency_ratio(by_rung, a, b, "latency_ms_p50") for a, b in pairs]
    steps["size ×"] = [_efficiency_ratio(by_rung, a, b, "size_bytes") for a, b in pairs]
    return steps


def footnotes(
    results: Sequence[dict[str, Any]], comparison: Comparison | None, frame: pd.DataFrame | None = None
) -> str:
    """What the tables' figures are, and which machine timed them."""
    envs = {(r.get("environment") or {}).get("cpu") for r in results if r.get("environment")}
    labels = machine_labels(frame) if frame is not None else {}
    if len(labels) > 1:
        machines = (
            "Latency, throughput and memory timed on (column 'timed on'): "
            + "; ".join(f"{letter} = {key}" for key, letter in labels.items())
            + "."
        )
    elif labels:
        machines = f"Latency, throughput and memory timed on: {next(iter(labels))}."
    else:
        machines = ""
    busy = frame is not None and "timed while busy" in frame and bool(frame["timed while busy"].any())
    if busy:
        machines += (
            " * latency taken while the machine was busy (load above its CPUs, or the process got under 80% "
            "of a CPU): rerun on an idle machine."
        )
    methods = sorted({m for r in results if (m := timing_method(r))})
    if methods:
        how = {
            **TIMING_METHODS,
            "pending": "not timed yet: its run stopped before its timing phase (the next run "
            "times it without refitting)",
        }
        if len(methods) == 1:
            machines += f" Timed {how.get(methods[0], methods[0])}."
        else:
            machines += (
                " How each row was timed (column 'timed how'): "
                + "; ".join(f"{m} = {how.get(m, m)}" for m in methods)
                + "."
            )
    profiles = {((r.get("config") or {}).get("profile") or {}).get("name") for r in results}
    devices = {(r.get("config") or {}).get("device") for r in results}
    boot = next(((r.get("intervals") or {}) for r in results if r.get("intervals")), {})
    text = (
        f"\nTest split: {results[0].get('data', {}).get('test', '?')} examples. "
        f"Profile: {', '.join(sorted(map(str, profiles)))}; device: {', '.join(sorted(map(str, devices)))}; "
        f"fitted on: {', '.join(sorted(map(str, envs)))}. Sorted by macro-F1 (of each rung's first seed); "
        "'over seeds': mean ± sd (number of seeds) over the stored seeds that ran the first seed's configuration."
        "\n\n"
        f"Intervals: 95% bootstrap over test examples ({boot.get('resamples', '?')} resamples; percentiles shifted "
        "by the bootstrap's bias), the same resamples for every rung, so differences are paired. "
        f"{DELTA}: the rung minus the top rung, with its paired interval; tier 1 holds the rungs whose difference from "
        "the top is not significant, each next tier those not significantly below its best rung; same decisions as: "
        "a rung ranked above that decides every test example the same way (tied on every decision metric). "
        "In the HTML report a value is marked best only where it is significantly better than the runner-up (never "
        "a chance rung's calibration).\n\n"
        f"ECE: top-label, {results[0].get('metrics', {}).get('ece_bins', '?')} equal-width bins; adaptive ECE: "
        "equal-mass bins. † marks an ECE within its noise floor: a perfectly calibrated model with the same "
        "confidences would score at least this much 5% of the time on this many examples. Brier: scikit-learn's "
        "scale — binary, the squared error of the positive class's probability (0–1); more classes, the squared "
        "distance of the probability vector to the one-hot label (0–2); multi-label, the mean over labels (0–1). "
        "AURC: the area under the risk–coverage curve — abstaining on the least confident decisions first, the "
        "error rate among those kept, averaged over every threshold (lower is better). "
        f"{_set_size_footnote(results)}"
        "Latency: one text per call. Params, size and fit time of a wrapper include its bases'. "
        f"{machines}\n"
    )
    if _multilabel(results):
        text += (
            "\nMulti-label: accuracy is subset accuracy; F1, precision, recall and Hamming loss are decisions at one "
            "threshold tuned on validation to maximise micro-F1 (per-label t: each label's own threshold, tuned "
            "for its F1 where it has at least 5 validation positives); ECE is the mean over labels of the binary ECE.\n"
        )
    return text


def _conformal_of(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The conformal scores of the first result that has them (their alpha and splits are the run's)."""
    return next(
        ((r.get("metrics") or {}).get("conformal") for r in results if (r.get("metrics") or {}).get("conformal")), {}
    )


def _set_size_footnote(results: Sequence[dict[str, Any]]) -> str:
    """The footnote sentence on the conformal set-size column (empty when no result has conformal sets)."""
    scored = _conformal_of(results)
    if not scored:
        return ""
    alpha = float(scored["alpha"])
    return (
        "Set size (LAC): the mean size of split-conformal prediction sets meant to hold the true class "
        f"{1 - alpha:.0%} of the time (alpha {alpha:g}; LAC scores, each of {scored.get('splits', '?')} random "
        "halves of the test split calibrating the other; coverage and the other scores in the HTML report). "
    )


CONFORMAL_SCORES = (("LAC", "lac"), ("APS", "aps"), ("class-wise LAC", "lac_classwise"))


def conformal_frame(results: Sequence[dict[str, Any]], order: Sequence[str]) -> pd.DataFrame:
    """Per rung with conformal sets (in ``order``): each score's coverage with the range of the middle 95% of its
    calibration splits, mean set size and worst-covered class; LAC's share of empty sets."""
    by_rung = {r["rung"]: r for r in results if (r.get("metrics") or {}).get("conformal")}
    rows = []
    for rung in [r for r in order if r in by_rung]:
        result = by_rung[rung]
        sets, labels = result["metrics"]["conformal"], (result.get("data") or {}).get("labels") or []
        row: dict[str, str] = {"rung": rung}
        for title, key in CONFORMAL_SCORES:
            s = sets.get(key) or {}
            if not s:
                continue
            row[f"coverage ({title})"] = f"{s['coverage']:.3f} [{s['coverage_low']:.3f}, {s['coverage_high']:.3f}]"
            row[f"set size ({title})"] = f"{s['set_size']:.2f}"
            if key == "lac":
                row["empty sets (LAC)"] = f"{s['empty']:.1%}"
            worst = s.get("worst_class")
            name = labels[worst] if worst is not None and worst < len(labels) else str(worst)
            cov = s.get("worst_class_coverage")
            row[f"worst class ({title})"] = "" if cov is None else f"{name} {cov:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def conformal_note(results: Sequence[dict[str, Any]]) -> str:
    """What the conformal table shows."""
    scored = _conformal_of(results)
    alpha = float(scored.get("alpha", 0.1))
    return (
        f"Split-conformal prediction sets at alpha {alpha:g} (meant to hold the true class {1 - alpha:.0%} of the "
        f"time), from each rung's stored test predictions: each of {scored.get('splits', '?')} random halves of the "
        "test split calibrates the other half (the rungs fit on validation, so its scores are not exchangeable with "
        "test). Coverage: mean over the splits [the middle 95% of splits: what one calibration set of this size "
        "gives]. LAC: a class is in the set when 1 - p is under the calibrated threshold (smallest sets on average; "
        "may be empty). APS: classes in order of probability until their mass reaches the threshold (randomised; "
        "sets adapt to how unsure the rung is). Class-wise: one threshold per class, so each class is covered, not "
        "only the average; worst class: the least covered class, pooled over the splits."
    )


OOD_SCORES = (("max-prob", "msp"), ("entropy", "entropy"), ("mutual info", "mutual_information"))


def ood_frame(results: Sequence[dict[str, Any]], order: Sequence[str]) -> pd.DataFrame:
    """Per rung scored on out-of-distribution examples (in ``order``): AUROC, AUPR and FPR at 95% TPR of each
    uncertainty score."""
    by_rung = {r["rung"]: r for r in results if (r.get("metrics") or {}).get("ood")}
    rows = []
    for rung in [r for r in order if r in by_rung]:
        found = by_rung[rung]["metrics"]["ood"]
        row: dict[str, str] = {"rung": rung}
        for title, key in OOD_SCORES:
            s = found.get(key) or {}
            if s:
                interval = f" [{s['auroc_low']:.3f}, {s['auroc_high']:.3f}]" if "auroc_low" in s else ""
                row[f"AUROC ({title})"] = f"{s['auroc']:.3f}{interval}"
                row[f"AUPR ({title})"] = f"{s['aupr']:.3f}"
                row[f"FPR@95%TPR ({title})"] = f"{s['fpr_at_95_tpr']:.3f}"
        rows.append(row)
    return pd.DataFrame(rows).fillna("")  # mutual information: ensembles only


def ood_note(results: Sequence[dict[str, Any]]) -> str:
    """What the OOD table shows."""
    data = next(((r.get("data") or {}) for r in results if (r.get("metrics") or {}).get("ood")), {})
    held = ", ".join(data.get("held_out") or []) or "?"
    return (
        f"Out-of-distribution test examples: the {data.get('ood', '?')} test examples of {held}, a class no rung "
        f"was trained on (removed from train and validation), against the {data.get('test', '?')} in-distribution "
        "test examples. A rung flags an example as OOD by its uncertainty: one minus its maximum probability "
        "(max-prob), the entropy of its probabilities (for MC-Dropout and ensembles, of the mean over passes or "
        "members) or, for an ensemble, its members' mutual information (their disagreement). AUROC: the "
        "chance that an OOD example is flagged above an in-distribution one (0.5: blind), with its 95% bootstrap "
        "interval (the two groups resampled apart); AUPR: average precision "
        "with OOD as positive; FPR@95%TPR: the share of in-distribution examples flagged when 95% of the OOD ones "
        "are (lower is better)."
    )


def ensemble_frame(results: Sequence[dict[str, Any]], order: Sequence[str]) -> pd.DataFrame:
    """Per ensemble (in ``order``): its members, their disagreement and the split of its predictive entropy."""
    by_rung = {r["rung"]: r for r in results if (r.get("metrics") or {}).get("ensemble")}
    return pd.DataFrame(
        [
            {
                "rung": rung,
                "members": str(e["members"]),
                "disagreement": f"{e['disagreement']:.4f}",
                "mutual information": f"{e['mutual_information']:.4f}",
                "expected entropy": f"{e['expected_entropy']:.4f}",
                "predictive entropy": f"{e['predictive_entropy']:.4f}",
            }
            for rung in order
            if rung in by_rung
            for e in [by_rung[rung]["metrics"]["ensemble"]]
        ]
    )


def ensemble_note(results: Sequence[dict[str, Any]]) -> str:
    """What the ensemble table shows."""
    return (
        "An ensemble averages the probabilities of its members, its base rung fitted at consecutive seeds (each "
        "member is also the base's own result at that seed). Disagreement: the share of member pairs whose top class "
        "differs, averaged over the test examples. The predictive entropy of the mean (nats) is the members' "
        "expected entropy (what each is unsure of) plus their mutual information (what they disagree on: 0 for "
        "identical members). Params, size, fit time and latency in the leaderboard are the ensemble's totals."
    )


def sanity_checks(results: Sequence[dict[str, Any]], comparison: Comparison | None) -> list[str]:
    """Sentences the leaderboard must not leave to a reader's eye: each rung whose fit was still improving at its
    step limit, and each rung significantly worse (macro-F1, paired bootstrap) than a simpler rung below it
    in the ladder — most telling on the same backbone (a fine-tuned transformer below its own frozen features)."""
    out = []
    for r in results:
        if r.get("status") == "ok" and not r.get("bases") and under_trained(r.get("fit_info")):
            hint = under_trained_hint(r["rung"], r["fit_info"])
            out.append(f"{r['rung']} is under-trained: {hint} (its row understates it).")
    if comparison is not None:
        families = {r["rung"]: r.get("family") for r in results}
        for row in worse_than_below(comparison, list_rungs(), families):
            kind = (
                f"a simpler rung of the same family ({families[row['rung']]})"
                if row["same_family"]
                else ("a rung below it in the ladder")
            )
            hint = " — check its fit (under-trained? diverged?)" if row["same_family"] else ""
            out.append(
                f"{row['rung']} is significantly worse than {row['versus']}, {kind}: Δ macro-F1 "
                f"{_interval(row['delta'], row['low'], row['high'], 4, signed=True)}{hint}."
            )
    return out


@dataclass
class Leaderboard:
    """One dataset's leaderboard, built once from its stored results and read by both the Markdown/CSV files
    and the HTML report."""

    dataset: str
    results: list[dict[str, Any]]
    predictions: dict[str, tuple[np.ndarray, np.ndarray]]
    comparison: Comparison | None
    frame: pd.DataFrame
    steps: pd.DataFrame
    notes: str
    checks: list[str]
    conformal: pd.DataFrame = field(default_factory=pd.DataFrame)
    ood: pd.DataFrame = field(default_factory=pd.DataFrame)
    ensembles: pd.DataFrame = field(default_factory=pd.DataFrame)


def newest_data(
    seeds: dict[str, list[dict[str, Any]]],
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """The results computed on the newest data (the dataset fingerprint of the most recent result), and a line
    for each left out: one table never mixes versions of a dataset, or two datasets stored under one name."""
    stored = [r for runs in seeds.values() for r in runs]
    if not stored:
        return seeds, []
    newest = max(stored, key=lambda r: str(r.get("created_at") or ""))
    fingerprint = newest.get("dataset_fingerprint")
    kept = {rung: [r for r in runs if r.get("dataset_fingerprint") == fingerprint] for rung, runs in seeds.items()}
    left = [
        f"left out: {r['rung']} seed {seed_of(r)}, computed on other data (fingerprint "
        f"{r.get('dataset_fingerprint')}, {(r.get('data') or {}).get('source')}) than the newest results "
        f"({fingerprint}, {(newest.get('data') or {}).get('source')}); run it again, or keep each dataset in its own "
        "--output"
        for r in stored
        if r.get("dataset_fingerprint") != fingerprint
    ]
    return {rung: runs for rung, runs in kept.items() if runs}, left


def build(store: ResultStore, dataset: str) -> Leaderboard | None:
    """The leaderboard of ``dataset`` from its stored results (those on its newest data) and predictions; None if
    nothing is stored."""
    seeds, left_out = newest_data(store.seed_results(dataset))
    results = [runs[0] for runs in seeds.values() if runs]  # each rung's lowest seed, as store.results gives
    if not results:
        return None
    predictions = load_predictions(store, dataset, results)
    comparison = comparison_for(results, predictions)
    frame = leaderboard_frame(results, comparison, seeds)
    steps = with_ratios(steps_frame(comparison), results)
    notes = footnotes(results, comparison, frame)
    checks = [*left_out, *sanity_checks(results, comparison)]
    order = list(frame["rung"])
    return Leaderboard(
        dataset,
        results,
        predictions,
        comparison,
        frame,
        steps,
        notes,
        checks,
        conformal_frame(results, order),
        ood_frame(results, order),
        ensemble_frame(results, order),
    )


def extra_tables(board: Leaderboard) -> list[tuple[str, str, pd.DataFrame]]:
    """The tables after the leaderboard that only some results fill, as ``(title, note, table)``: conformal
    prediction sets, ensembles' diversity, and OOD detection where the data had out-of-distribution examples."""
    tables = (
        ("Conformal prediction sets", conformal_note, board.conformal),
        ("Ensembles", ensemble_note, board.ensembles),
        ("Out-of-distribution detection", ood_note, board.ood),
    )
    return [(title, note(board.results), frame) for title, note, frame in tables if not frame.empty]


def save(board: Leaderboard, folder: Path) -> tuple[Path, Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv`` (and ``steps.csv``) into ``folder``."""
    md = to_markdown(board.frame, f"{board.dataset} leaderboard") + board.notes
    if board.checks:
        md += f"\n## {CHECKS_TITLE}\n\n" + "".join(f"- {line}\n" for line in board.checks)
    if not board.steps.empty:
        md += (
            f"\n## What each step buys\n\n{STEPS_NOTE}\n\n"
            + board.steps.to_markdown(index=False, disable_numparse=True)
            + "\n"
        )
        board.steps.to_csv(folder / STEPS_FILE, index=False)
    for title, note, table in extra_tables(board):
        md += f"\n## {title}\n\n{note}\n\n" + table.to_markdown(index=False, disable_numparse=True) + "\n"
    md_path, csv_path = folder / MD_FILE, folder / CSV_FILE
    md_path.write_text(md, encoding="utf-8")
    csv = board.frame.copy()  # the CSV also holds a wrapper's own figures, apart from the totals with its bases'
    efficiency = {r["rung"]: r.get("efficiency") or {} for r in board.results}
    for header, key in OWN_COLUMNS:
        csv[header] = [efficiency.get(rung, {}).get(key) for rung in csv["rung"]]
    csv.to_csv(csv_path, index=False)
    return md_path, csv_path


def write_leaderboard(store: ResultStore, dataset: str) -> tuple[Path, Path] | None:
    """Regenerate ``leaderboard.md`` and ``leaderboard.csv`` (and ``steps.csv``) for ``dataset``; None if nothing
    is stored."""
    board = build(store, dataset)
    return None if board is None else save(board, store.root / dataset)
