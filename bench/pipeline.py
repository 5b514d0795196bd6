"""The whole flow for a set of datasets and rungs: evaluate each (data → rung → metrics/efficiency → store), then
write the reports from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data import Dataset
from bench.evaluate.harness import RunSettings, evaluate
from bench.profiles import apply_profile
from bench.report.leaderboard import write_leaderboard
from bench.store.results import ResultStore


def summary_line(result: dict[str, Any]) -> str:
    """A one-line outcome for the console."""
    head = f"{result['dataset']}/{result['rung']}"
    if result["status"] != "ok":
        return f"{head}: {result['status']} ({result.get('reason') or result.get('error')})"
    m, e = result["metrics"], result["efficiency"]
    return (
        f"{head}: acc {m['accuracy']:.4f}  macro-F1 {m['f1_macro']:.4f}  ECE {m['ece']:.4f}  "
        f"p50 {e['latency_ms_p50']:.2f} ms  fit {e['fit_seconds']:.1f} s"
    )


def run(datasets: list[Dataset], rungs: list[str], settings: RunSettings, output: str | Path) -> list[dict[str, Any]]:
    """Evaluate every rung on every dataset, then write each dataset's leaderboards."""
    from tqdm.auto import tqdm

    store = ResultStore(output)
    results = []
    jobs = [(d, r) for d in datasets for r in rungs]
    capped = {d.name: apply_profile(d, settings.profile) for d in datasets}
    with tqdm(jobs, desc="bench", unit="rung", disable=None) as bar:
        for dataset, rung in bar:
            bar.set_postfix_str(f"{dataset.name}/{rung}")
            result = evaluate(rung, capped[dataset.name], settings, store)
            tqdm.write(summary_line(result))
            results.append(result)
    for d in datasets:
        paths = write_leaderboard(store, d.name)
        if paths:
            tqdm.write(f"leaderboard: {paths[0]}")
    return results
