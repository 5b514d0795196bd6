"""The MC sweep: ECE and accuracy of a stochastic rung against its number of passes, mean ± std over repeats.

It applies to any rung whose registration declares stochastic passes (``Capabilities(stochastic=True)``): a
one-base wrapper with ``sample_probs(inputs, passes) -> [T, N, C]`` and ``reseed(seed)``, whose base is its
deterministic counterpart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.data import Dataset
from bench.errors import BenchError
from bench.evaluate.calibration import calibration_error, top_label
from bench.evaluate.harness import RunSettings, build_rung, config_for, config_hash
from bench.rungs.registry import get_rung, list_rungs
from bench.store.results import ResultStore, to_json


def stochastic_rungs() -> list[str]:
    """Registered rungs that declare stochastic passes, in ladder order."""
    return [name for name in list_rungs() if get_rung(name).capabilities.stochastic]


def sweep_mc(
    dataset: Dataset,
    settings: RunSettings,
    store: ResultStore,
    iterations: list[int],
    repeats: int,
    rung_name: str | None = None,
) -> dict[str, Any]:
    """For each repeat (its own seed) draw ``max(iterations)`` passes once; the estimate for T passes is the mean
    of the first T, so every T is measured on the same draws within a repeat. ``rung_name`` defaults to the first
    stochastic rung of the ladder."""
    if not iterations or min(iterations) < 1 or repeats < 1:
        raise BenchError("--iterations must be positive integers and --repeats at least 1")
    candidates = stochastic_rungs()
    if rung_name is None:
        if not candidates:
            raise BenchError("no registered rung declares stochastic passes")
        rung_name = candidates[0]
    info = get_rung(rung_name)
    if not info.capabilities.stochastic or info.base is None:
        raise BenchError(
            f"rung {rung_name!r} declares no stochastic passes over one base "
            f"(rungs that do: {', '.join(candidates) or 'none'})"
        )
    rung, _, _ = build_rung(rung_name, dataset, settings, store)
    rung.fit(dataset.train, dataset.validation)
    test, n_bins = dataset.test, settings.ece_bins
    det = rung.base.predict_proba(test.inputs)
    det_conf, det_correct = top_label(det, test.y)
    reference = {"ece": calibration_error(det_conf, det_correct, n_bins), "accuracy": float(det_correct.mean())}
    t_max = max(iterations)
    rows = []
    for r in range(repeats):
        rung.reseed(settings.seed + r)
        passes = rung.sample_probs(test.inputs, passes=t_max)
        for t in sorted(iterations):
            conf, correct = top_label(passes[:t].mean(axis=0, dtype=np.float64), test.y)
            rows.append(
                {
                    "passes": t,
                    "repeat": r,
                    "ece": calibration_error(conf, correct, n_bins),
                    "accuracy": float(correct.mean()),
                }
            )
    frame = pd.DataFrame(rows)
    summary = (
        frame.groupby("passes")
        .agg(
            ece_mean=("ece", "mean"),
            ece_std=("ece", "std"),
            accuracy_mean=("accuracy", "mean"),
            accuracy_std=("accuracy", "std"),
        )
        .reset_index()
    )
    return {
        "dataset": dataset.name,
        "rung": rung_name,
        "base": info.base,
        "base_config_hash": config_hash(config_for(info.base, dataset, settings)),
        "seed": settings.seed,
        "options": settings.options_for(rung_name),
        "iterations": sorted(iterations),
        "repeats": repeats,
        "ece_bins": n_bins,
        "test_examples": len(test),
        "deterministic": reference,
        "runs": rows,
        "summary": summary.fillna(0.0).to_dict(orient="records"),
    }


def write_sweep(result: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """``mc_sweep.json`` (all runs) and ``mc_sweep.md`` (the table) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mc_sweep.json").write_text(to_json(result), encoding="utf-8")
    summary = pd.DataFrame(result["summary"])
    det = result["deterministic"]
    table = pd.DataFrame(
        {
            "passes (T)": summary["passes"],
            "ECE": [f"{m:.4f} ± {s:.4f}" for m, s in zip(summary["ece_mean"], summary["ece_std"])],
            "accuracy": [f"{m:.4f} ± {s:.4f}" for m, s in zip(summary["accuracy_mean"], summary["accuracy_std"])],
        }
    )
    md = (
        f"# MC sweep of {result.get('rung', 'the stochastic rung')} — {result['dataset']}\n\n"
        f"{result['test_examples']} test examples, {result['repeats']} repeats (mean ± std; seeds "
        f"{result.get('seed', 0)} to {result.get('seed', 0) + result['repeats'] - 1}, the base fitted with seed "
        f"{result.get('seed', 0)}; sampler {result.get('options', {}).get('sampler', 'pooled')}), ECE with "
        f"{result['ece_bins']} equal-width bins. Deterministic base ({result.get('base', 'base')}): "
        f"ECE {det['ece']:.4f}, "
        f"accuracy {det['accuracy']:.4f}.\n\n" + table.to_markdown(index=False) + "\n"
    )
    (folder / "mc_sweep.md").write_text(md, encoding="utf-8")
    return folder / "mc_sweep.json", folder / "mc_sweep.md"
