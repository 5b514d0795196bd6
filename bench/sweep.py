"""The MC-Dropout sweep: ECE and accuracy against the number of stochastic passes, mean ± std over repeats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.calibration import calibration_error, top_label
from bench.data import Dataset
from bench.errors import BenchError
from bench.harness import RunSettings, build_rung, config_hash, config_for
from bench.store import ResultStore, to_json

MC_RUNG = "finetuned+mc"


def sweep_mc(dataset: Dataset, settings: RunSettings, store: ResultStore, iterations: list[int], repeats: int) -> dict[str, Any]:
    """For each repeat (its own dropout seed) draw ``max(iterations)`` passes once; the estimate for T
    passes is the mean of the first T, so every T is measured on the same draws within a repeat."""
    if not iterations or min(iterations) < 1 or repeats < 1:
        raise BenchError("--iterations must be positive integers and --repeats at least 1")
    rung, _ = build_rung(MC_RUNG, dataset, settings, store)
    rung.fit(dataset.train, dataset.validation)
    test, n_bins = dataset.test, settings.ece_bins
    det = rung.base.predict_proba(test.inputs)
    det_conf, det_correct = top_label(det, test.y)
    reference = {"ece": calibration_error(det_conf, det_correct, n_bins), "accuracy": float(det_correct.mean())}
    t_max = max(iterations)
    rows = []
    for r in range(repeats):
        rung.seed = settings.seed + r
        rung._prepare()
        passes = rung.sample_probs(test.inputs, passes=t_max)
        for t in sorted(iterations):
            conf, correct = top_label(passes[:t].mean(axis=0, dtype=np.float64), test.y)
            rows.append({"passes": t, "repeat": r, "ece": calibration_error(conf, correct, n_bins), "accuracy": float(correct.mean())})
    frame = pd.DataFrame(rows)
    summary = frame.groupby("passes").agg(ece_mean=("ece", "mean"), ece_std=("ece", "std"),
                                          accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std")).reset_index()
    return {
        "dataset": dataset.name, "rung": MC_RUNG, "base_config_hash": config_hash(config_for("finetuned", dataset, settings)),
        "iterations": sorted(iterations), "repeats": repeats, "ece_bins": n_bins, "test_examples": len(test),
        "deterministic": reference, "runs": rows, "summary": summary.fillna(0.0).to_dict(orient="records"),
    }


def write_sweep(result: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """``mc_sweep.json`` (all runs) and ``mc_sweep.md`` (the table) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mc_sweep.json").write_text(to_json(result), encoding="utf-8")
    summary = pd.DataFrame(result["summary"])
    det = result["deterministic"]
    table = pd.DataFrame({
        "passes (T)": summary["passes"],
        "ECE": [f"{m:.4f} ± {s:.4f}" for m, s in zip(summary["ece_mean"], summary["ece_std"])],
        "accuracy": [f"{m:.4f} ± {s:.4f}" for m, s in zip(summary["accuracy_mean"], summary["accuracy_std"])],
    })
    md = (f"# MC-Dropout sweep — {result['dataset']}\n\n"
          f"{result['test_examples']} test examples, {result['repeats']} repeats (mean ± std), ECE with "
          f"{result['ece_bins']} equal-width bins. Deterministic fine-tuned model: ECE {det['ece']:.4f}, "
          f"accuracy {det['accuracy']:.4f}.\n\n" + table.to_markdown(index=False) + "\n")
    (folder / "mc_sweep.md").write_text(md, encoding="utf-8")
    return folder / "mc_sweep.json", folder / "mc_sweep.md"
