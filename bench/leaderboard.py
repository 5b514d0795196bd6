"""Leaderboards from stored results: ``<dataset>/leaderboard.md`` and ``.csv`` (pandas + tabulate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.store import ResultStore

COLUMNS: list[tuple[str, str, str]] = [  # (header, section, key)
    ("accuracy", "metrics", "accuracy"),
    ("macro-F1", "metrics", "f1_macro"),
    ("ECE", "metrics", "ece"),
    ("Brier", "metrics", "brier"),
    ("NLL", "metrics", "nll"),
    ("latency p50 (ms)", "efficiency", "latency_ms_p50"),
    ("throughput (/s)", "efficiency", "throughput_per_s"),
    ("params", "efficiency", "params"),
    ("size", "efficiency", "size_bytes"),
    ("fit (s)", "efficiency", "fit_seconds"),
]


def leaderboard_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per rung with the leaderboard's raw numbers, best macro-F1 first; unfinished rungs last."""
    rows = []
    for r in results:
        row: dict[str, Any] = {"rung": r["rung"], "status": r.get("status", "?")}
        for header, section, key in COLUMNS:
            row[header] = (r.get(section) or {}).get(key)
        row["note"] = r.get("reason") or r.get("error") or ""
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["rung", "status", *(c[0] for c in COLUMNS), "note"])
    frame["_done"] = frame["status"] == "ok"
    frame = frame.sort_values(["_done", "macro-F1", "rung"], ascending=[False, False, True], na_position="last")
    return frame.drop(columns="_done").reset_index(drop=True)


def _human(n: Any, unit: str = "") -> str:
    if n is None or pd.isna(n):
        return ""
    n = float(n)
    for suffix in ("", "k", "M", "G", "T"):
        if abs(n) < 1000 or suffix == "T":
            return f"{n:.0f}{suffix}{unit}" if suffix == "" else f"{n:.1f}{suffix}{unit}"
        n /= 1000
    return str(n)


def _fmt(value: Any, digits: int) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.{digits}f}"


# which value of a column is best: max or min (params: neither, more is not better or worse)
BEST: dict[str, str] = {"accuracy": "max", "macro-F1": "max", "ECE": "min", "Brier": "min", "NLL": "min",
                        "latency p50 (ms)": "min", "throughput (/s)": "max", "size": "min", "fit (s)": "min"}


def best_rows(frame: pd.DataFrame) -> dict[str, set[int]]:
    """For each column with a direction, the row positions (among finished rungs) holding its best value."""
    done = frame[frame["status"] == "ok"]
    best: dict[str, set[int]] = {}
    for column, how in BEST.items():
        values = pd.to_numeric(done[column], errors="coerce").dropna()
        if len(values):
            target = values.max() if how == "max" else values.min()
            best[column] = set(values.index[np.isclose(values, target, rtol=0, atol=1e-12)])
    return best


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's cells as display strings (the same in Markdown and HTML)."""
    return pd.DataFrame({
        "rung": frame["rung"],
        "status": frame["status"],
        "accuracy": frame["accuracy"].map(lambda v: _fmt(v, 4)),
        "macro-F1": frame["macro-F1"].map(lambda v: _fmt(v, 4)),
        "ECE": frame["ECE"].map(lambda v: _fmt(v, 4)),
        "Brier": frame["Brier"].map(lambda v: _fmt(v, 4)),
        "NLL": frame["NLL"].map(lambda v: _fmt(v, 3)),
        "latency p50 (ms)": frame["latency p50 (ms)"].map(lambda v: _fmt(v, 3)),
        "throughput (/s)": frame["throughput (/s)"].map(_human),
        "params": frame["params"].map(_human),
        "size": frame["size"].map(lambda v: _human(v, "B")),
        "fit (s)": frame["fit (s)"].map(lambda v: _fmt(v, 1)),
        "note": frame["note"].map(lambda s: (s[:80] + "…") if isinstance(s, str) and len(s) > 80 else s),
    })


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
    md += (f"\nTest split: {results[0].get('data', {}).get('test', '?')} examples. Profile: {', '.join(sorted(map(str, profiles)))}; "
           f"device: {', '.join(sorted(map(str, devices)))}; CPU: {', '.join(sorted(map(str, envs)))}. "
           f"ECE: top-label, {results[0].get('metrics', {}).get('ece_bins', '?')} equal-width bins. "
           "Latency: one text per call. Sorted by macro-F1.\n")
    md_path, csv_path = folder / "leaderboard.md", folder / "leaderboard.csv"
    md_path.write_text(md, encoding="utf-8")
    frame.to_csv(csv_path, index=False)
    return md_path, csv_path
