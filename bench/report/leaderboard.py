"""Leaderboards from stored results: ``<dataset>/leaderboard.md`` and ``.csv`` (pandas + tabulate)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.evaluate.metrics import list_metrics, lookup
from bench.store.results import ResultStore

Column = tuple[str, str, str, str | None, Callable[[Any], str]]  # (header, section, key, best: max/min/None, format)


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


def metric_columns(task: str) -> list[Column]:
    """The leaderboard columns registered metrics declare for a task type, in registration order."""
    return [
        (header, "metrics", f"{m.name}.{key}" if key else m.name, m.direction, _fixed(m.digits))
        for m in list_metrics(task)
        if task in m.column_tasks
        for header, key in m.columns
    ]


EFFICIENCY_COLUMNS: list[Column] = [
    ("latency p50 (ms)", "efficiency", "latency_ms_p50", "min", _fixed(3)),
    ("throughput (/s)", "efficiency", "throughput_per_s", "max", _human),
    ("params", "efficiency", "params", None, _human),  # more parameters is neither better nor worse
    ("size", "efficiency", "size_bytes", "min", lambda v: _human(v, "B")),
    ("fit (s)", "efficiency", "fit_seconds", "min", _fixed(1)),
]


OWN_COLUMNS = (("params (own)", "params_own"), ("size (own)", "size_bytes_own"), ("fit (s, own)", "fit_seconds_own"))


def columns_for(results: list[dict[str, Any]]) -> list[Column]:
    """The leaderboard's columns: the registered metrics' for the task (multi-label: its decision scores too), then
    efficiency. ``params``, ``size`` and ``fit (s)`` of a wrapper are totals that include its bases'."""
    multi = any((r.get("data") or {}).get("task") == "multi-label" for r in results)
    return [*metric_columns("multi-label" if multi else "single-label"), *EFFICIENCY_COLUMNS]


def leaderboard_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per rung with the leaderboard's raw numbers, best macro-F1 first; unfinished rungs last."""
    columns = columns_for(results)
    rows = []
    for r in results:
        row: dict[str, Any] = {"rung": r["rung"], "status": r.get("status", "?")}
        for header, section, key, _, _ in columns:
            row[header] = lookup(r.get(section), key)
        row["note"] = r.get("reason") or r.get("error") or ""
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["rung", "status", *(c[0] for c in columns), "note"])
    frame["_done"] = frame["status"] == "ok"
    frame = frame.sort_values(["_done", "macro-F1", "rung"], ascending=[False, False, True], na_position="last")
    return frame.drop(columns="_done").reset_index(drop=True)


def _columns_of(frame: pd.DataFrame) -> list[Column]:
    every = [*metric_columns("single-label"), *metric_columns("multi-label"), *EFFICIENCY_COLUMNS]
    return list({c[0]: c for c in every if c[0] in frame.columns}.values())


def best_rows(frame: pd.DataFrame) -> dict[str, set[int]]:
    """For each column with a direction, the row positions (among finished rungs) holding its best value."""
    done = frame[frame["status"] == "ok"]
    best: dict[str, set[int]] = {}
    for column, _, _, how, _ in _columns_of(frame):
        values = pd.to_numeric(done[column], errors="coerce").dropna()
        if how and len(values):
            target = values.max() if how == "max" else values.min()
            best[column] = set(values.index[np.isclose(values, target, rtol=0, atol=1e-12)])
    return best


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's cells as display strings (the same in Markdown and HTML)."""
    cells = {"rung": frame["rung"], "status": frame["status"]}
    cells.update(
        {c[0]: frame[c[0]].map(c[4]) for c in sorted(_columns_of(frame), key=lambda c: list(frame.columns).index(c[0]))}
    )
    cells["note"] = frame["note"].map(lambda s: (s[:80] + "…") if isinstance(s, str) and len(s) > 80 else s)
    return pd.DataFrame(cells)


def to_markdown(frame: pd.DataFrame, title: str) -> str:
    """The leaderboard as a Markdown table; failed and not-applicable rungs show their status and note."""
    return f"# {title}\n\n" + formatted(frame).to_markdown(index=False, disable_numparse=True) + "\n"


def write_leaderboard(store: ResultStore, dataset: str) -> tuple[Path, Path] | None:
    """Regenerate ``leaderboard.md`` and ``leaderboard.csv`` for ``dataset``; None if nothing is stored."""
    results = store.results(dataset)
    if not results:
        return None
    frame = leaderboard_frame(results)
    folder = store.root / dataset
    envs = {r.get("environment", {}).get("cpu") for r in results if r.get("environment")}
    profiles = {(r.get("config") or {}).get("profile", {}).get("name") for r in results}
    devices = {(r.get("config") or {}).get("device") for r in results}
    title = f"{dataset} leaderboard"
    md = to_markdown(frame, title)
    md += (
        f"\nTest split: {results[0].get('data', {}).get('test', '?')} examples. "
        f"Profile: {', '.join(sorted(map(str, profiles)))}; "
        f"device: {', '.join(sorted(map(str, devices)))}; CPU: {', '.join(sorted(map(str, envs)))}. "
        f"ECE: top-label, {results[0].get('metrics', {}).get('ece_bins', '?')} equal-width bins. "
        "Latency: one text per call. Params, size and fit time of a wrapper include its bases'. Sorted by macro-F1.\n"
    )
    if any((r.get("data") or {}).get("task") == "multi-label" for r in results):
        md += (
            "\nMulti-label: accuracy is subset accuracy; F1, precision, recall and Hamming loss are decisions at one "
            "threshold tuned on validation to maximise micro-F1 (per-label t: each label's own threshold, tuned for "
            "its "
            "F1 where it has at least 5 validation positives); ECE is the mean over labels of the binary ECE.\n"
        )
    md_path, csv_path = folder / "leaderboard.md", folder / "leaderboard.csv"
    md_path.write_text(md, encoding="utf-8")
    csv = frame.copy()  # the CSV also holds a wrapper's own figures, apart from the totals with its bases'
    efficiency = {r["rung"]: r.get("efficiency") or {} for r in results}
    for header, key in OWN_COLUMNS:
        csv[header] = [efficiency.get(rung, {}).get(key) for rung in csv["rung"]]
    csv.to_csv(csv_path, index=False)
    return md_path, csv_path
