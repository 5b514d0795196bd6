"""Benchmark: the same grid with ``--executor local`` and ``--executor ray`` (each a fresh ``bench run`` process
into a fresh output folder, alternating which goes first), reporting

- the wall time of each run and the local/ray ratio (median over repeats),
- that every cell's metrics and predictions agree (largest absolute difference over all cells),
- per cell, the latency p50 under Ray over the local one (medians over seeds and repeats), beside how far two
  local runs of the same cell (same seed, another repeat) lie apart: the measurement's own noise floor, which a
  comparison between executors cannot beat.

Writes ``<out>/<name>.json`` and ``<out>/<name>.md``. Example (the issue's grid)::

    python scripts/executor_scaling.py --name quick-grid --models majority,stratified,tfidf_lr,tfidf_lr+ts \\
        --datasets sst2,emotion,mrpc --seeds 0,1 --profile quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.environment import cpu_count, cpu_model
from bench.store.results import ResultStore


def run_grid(executor: str, output: Path, args: argparse.Namespace) -> float:
    """Wall seconds of one ``bench run`` of the grid with ``executor``."""
    cmd = [sys.executable, "-m", "bench", "run", "--models", args.models, "--datasets", args.datasets]
    cmd += ["--seeds", args.seeds, "--profile", args.profile, "--no-html", "--output", str(output)]
    cmd += ["--executor", executor]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "TQDM_DISABLE": "1"})
    return time.perf_counter() - t0


def numbers(obj: Any, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf of a nested dict, by dotted path."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in numbers(val, f"{prefix}{key}.").items()}
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return {prefix.rstrip("."): float(obj)}
    return {}


def cells(store: ResultStore) -> dict[tuple[str, str, int], dict[str, Any]]:
    out = {}
    for dataset in store.datasets():
        for rung, runs in store.seed_results(dataset).items():
            for r in runs:
                out[(dataset, rung, int(r["config"]["seed"]))] = r
    return out


def compare(local: ResultStore, ray: ResultStore) -> dict[str, Any]:
    """Largest metric and prediction differences between the two stores, and the cells that differ in status."""
    a, b = cells(local), cells(ray)
    worst_metric, worst_probs, differ = 0.0, 0.0, []
    for key in sorted(set(a) | set(b)):
        ra, rb = a.get(key), b.get(key)
        if ra is None or rb is None or ra["status"] != rb["status"]:
            differ.append("/".join(map(str, key)))
            continue
        if ra["status"] != "ok":
            continue
        ma, mb = numbers(ra["metrics"]), numbers(rb["metrics"])
        if set(ma) != set(mb):
            differ.append("/".join(map(str, key)))
            continue
        worst_metric = max([worst_metric, *(abs(ma[k] - mb[k]) for k in ma if np.isfinite(ma[k]))])
        pa, _ = local.load_predictions(*key)
        pb, _ = ray.load_predictions(*key)
        worst_probs = max(worst_probs, float(np.max(np.abs(pa - pb))))
    return {"cells": len(a), "max_metric_diff": worst_metric, "max_prob_diff": worst_probs, "differ": differ}


def latency_row(runs: dict[str, dict[int, list[float]]]) -> dict[str, Any]:
    """One cell's p50s: each executor's runs and median, ray / local, and the local runs' own spread — for each
    seed timed in several local repeats, the largest / smallest of its p50s (1.0 when there is one repeat)."""
    flat = {executor: [v for values in seeds.values() for v in values] for executor, seeds in runs.items()}
    local, ray = statistics.median(flat["local"]), statistics.median(flat["ray"])
    spreads = [max(v) / min(v) for v in runs["local"].values() if len(v) > 1 and min(v) > 0]
    return {
        "local_runs_ms": flat["local"],
        "ray_runs_ms": flat["ray"],
        "local_ms": local,
        "ray_ms": ray,
        "ratio": ray / local if local > 0 else float("nan"),
        "local_spread": max(spreads) if spreads else 1.0,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--profile", default="quick")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", default="results/scaling")
    args = p.parse_args()

    walls: dict[str, list[float]] = {"local": [], "ray": []}
    stores: dict[str, list[ResultStore]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        for i in range(args.repeats):
            for executor in ("local", "ray") if i % 2 == 0 else ("ray", "local"):
                output = Path(tmp) / f"{executor}-{i}"
                walls[executor].append(run_grid(executor, output, args))
                stores[executor].append(ResultStore(output))
                print(f"repeat {i}: {executor} {walls[executor][-1]:.1f} s", file=sys.stderr)
        agreement = [compare(a, b) for a, b in zip(stores["local"], stores["ray"])]
        # every run's p50 of every cell: {dataset/rung: {executor: {seed: [p50 per repeat]}}}
        p50: dict[str, dict[str, dict[int, list[float]]]] = {}
        for executor, runs in stores.items():
            for store in runs:
                for (dataset, rung, seed), r in cells(store).items():
                    value = (r.get("efficiency") or {}).get("latency_ms_p50")
                    if r["status"] == "ok" and value is not None:
                        p50.setdefault(f"{dataset}/{rung}", {}).setdefault(executor, {}).setdefault(seed, []).append(
                            value
                        )
    latency = {cell: latency_row(v) for cell, v in sorted(p50.items()) if v.get("local") and v.get("ray")}
    report = {
        "grid": {k: getattr(args, k) for k in ("models", "datasets", "seeds", "profile", "repeats")},
        "machine": {"cpu": cpu_model(), "cpus": cpu_count(), "python": platform.python_version()},
        "wall_seconds": walls,
        "local_over_ray": statistics.median(walls["local"]) / statistics.median(walls["ray"]),
        "agreement": agreement,
        "latency_p50": latency,
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(not a["differ"] and a["max_metric_diff"] <= 1e-9 for a in agreement) else 1


def markdown(r: dict[str, Any]) -> str:
    g, m = r["grid"], r["machine"]
    lines = [
        f"# Executors: local vs ray — {g['models']} on {g['datasets']}, seeds {g['seeds']}, profile {g['profile']}",
        "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs (embedded Ray cluster, {m['cpus']} CPUs); {r['measured_at']}; "
        f"{g['repeats']} repeat(s), each executor a fresh `bench run` into a fresh folder, alternating order.",
        "",
        "| executor | wall time (s), each repeat | median |",
        "|---|---|---|",
    ]
    for executor, walls in r["wall_seconds"].items():
        lines.append(f"| {executor} | {', '.join(f'{w:.1f}' for w in walls)} | {statistics.median(walls):.1f} |")
    lines += ["", f"**local / ray wall-time ratio: {r['local_over_ray']:.2f}×**", ""]
    for i, a in enumerate(r["agreement"]):
        lines.append(
            f"Repeat {i}: {a['cells']} cells; largest metric difference {a['max_metric_diff']:.1e}, largest "
            f"probability difference {a['max_prob_diff']:.1e}; cells that differ in status or are missing: "
            f"{', '.join(a['differ']) or 'none'}."
        )
    lines += [
        "",
        "p50 per cell: the median over seeds and repeats of each executor; *local vs local*: for the same cell and "
        "seed in two local runs, the larger p50 over the smaller (the worst seed) — how far the measurement "
        "moves with nothing changed.",
        "",
        "| cell | p50 local (ms) | p50 ray (ms) | ray / local | local vs local |",
        "|---|---|---|---|---|",
    ]
    for cell, v in r["latency_p50"].items():
        spread = v.get("local_spread")
        lines.append(
            f"| {cell} | {v['local_ms']:.4f} | {v['ray_ms']:.4f} | {v['ratio']:.2f} | "
            f"{'' if spread is None else f'{spread:.2f}'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
