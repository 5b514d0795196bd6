"""The evaluation path end to end on toy data: results, predictions, skipping, failures, leaderboards."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bench.data import load_dataset
from bench.evaluate.harness import RunSettings, evaluate
from bench.evaluate.metrics import compute_scores
from bench.pipeline import run
from bench.profiles import apply_profile, get_profile
from bench.rungs.registry import load_rung
from bench.store.results import ResultStore, to_json

QUICK = RunSettings(profile=get_profile("quick"))


def test_result_files_and_recomputed_metrics(toy_data, tmp_path):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    store = ResultStore(tmp_path / "out")
    result = evaluate("tfidf_lr", apply_profile(ds, QUICK.profile), QUICK, store)
    assert result["status"] == "ok"
    folder = tmp_path / "out" / "toy_sentiment" / "tfidf_lr" / "seed-0"
    stored = json.loads((folder / "result.json").read_text())
    for key in (
        "accuracy",
        "f1_macro",
        "f1_weighted",
        "ece",
        "ece_bins",
        "ece_adaptive",
        "mce",
        "brier",
        "nll",
        "per_class",
    ):
        assert key in stored["metrics"]
    for key in (
        "latency_ms_p50",
        "latency_ms_p95",
        "latency_ms_p99",
        "throughput_per_s",
        "fit_seconds",
        "params",
        "size_bytes",
        "peak_memory_bytes",
        "threads",
        "device",
    ):
        assert key in stored["efficiency"]
    assert stored["efficiency"]["latency_ms_p50"] <= stored["efficiency"]["latency_ms_p99"]
    assert (
        stored["efficiency"]["size_bytes"] > 0
        and stored["efficiency"]["latency_calls"] >= QUICK.profile.latency_min_calls
    )
    for key in ("python", "torch", "transformers", "cpu", "git_commit"):
        assert key in stored["environment"]
    assert stored["config_hash"] and stored["dataset_fingerprint"] == ds.fingerprint
    probs, labels = store.load_predictions("toy_sentiment", "tfidf_lr")
    assert probs.shape == (30, 2) and labels.tolist() == ds.test.y.tolist()
    recomputed = json.loads(to_json(compute_scores(ds.spec, probs, labels, stored["metrics"]["ece_bins"])))
    assert recomputed == stored["metrics"]
    assert not list(folder.glob(".*tmp")) and (folder / "artifact").is_dir()
    reloaded = load_rung(folder / "artifact")
    assert np.allclose(reloaded.predict_proba(ds.test.inputs), probs)


def test_unchanged_config_is_skipped_unless_forced(toy_data, tmp_path):
    ds = apply_profile(load_dataset("toy_sentiment", data_dir=toy_data), QUICK.profile)
    store = ResultStore(tmp_path)
    first = evaluate("majority", ds, QUICK, store)
    again = evaluate("majority", ds, QUICK, store)
    assert again["created_at"] == first["created_at"]
    forced = evaluate("majority", ds, RunSettings(profile=QUICK.profile, force=True), store)
    assert forced["config_hash"] == first["config_hash"] and forced is not again
    reseeded = evaluate("majority", ds, RunSettings(profile=QUICK.profile, seed=3), store)
    assert reseeded["config_hash"] != first["config_hash"]
    retimed = evaluate("tfidf_lr", ds, QUICK, store)
    again = evaluate("tfidf_lr", ds, RunSettings(profile=QUICK.profile, retime=True), store)
    assert again["timing"]["method"] == "retimed" and "retimed_from" in again
    assert (
        to_json(again["metrics"]) == to_json(retimed["metrics"])
        and again["artifact_sha256"] == retimed["artifact_sha256"]
    )
    assert again["efficiency"]["fit_seconds"] == retimed["efficiency"]["fit_seconds"]  # timed again, not refitted


def test_failed_and_not_applicable_are_stored_and_the_run_goes_on(toy_data, tmp_path, exploding_rung):
    ds = load_dataset("toy_pairs", data_dir=toy_data)
    results = run([ds], ["exploding", "rules", "majority"], QUICK, tmp_path)
    status = {r["rung"]: r["status"] for r in results}
    assert status == {"exploding": "failed", "rules": "not_applicable", "majority": "ok"}
    failed = ResultStore(tmp_path).read("toy_pairs", "exploding")
    assert failed["error"] == "RuntimeError: boom in fit" and "Traceback" in failed["traceback"]
    assert not (tmp_path / "toy_pairs" / "exploding" / "predictions.npz").exists()
    # failed rungs are retried on the next run, finished ones are not
    again = {r["rung"]: r["created_at"] for r in run([ds], ["exploding", "majority"], QUICK, tmp_path)}
    assert again["majority"] == next(r["created_at"] for r in results if r["rung"] == "majority")


def test_leaderboard_sorted_with_statuses(toy_data, tmp_path, exploding_rung):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    run([ds], ["random", "majority", "tfidf_lr", "exploding"], QUICK, tmp_path)
    frame = pd.read_csv(tmp_path / "toy_sentiment" / "leaderboard.csv")
    assert frame["rung"].tolist()[0] == "tfidf_lr" and frame["rung"].tolist()[-1] == "exploding"
    assert frame.loc[frame.rung == "exploding", "status"].item() == "failed"
    ok = frame[frame.status == "ok"]
    assert ok["macro-F1"].is_monotonic_decreasing
    md = (tmp_path / "toy_sentiment" / "leaderboard.md").read_text()
    assert "| tfidf_lr" in md and "failed" in md and "boom in fit" in md and "latency p50 (ms)" in md


def test_multilabel_path(toy_data, tmp_path):
    ds = load_dataset("toy_tags", data_dir=toy_data)
    results = {
        r["rung"]: r for r in run([ds], ["random", "stratified", "majority", "rules", "tfidf_lr"], QUICK, tmp_path)
    }
    assert all(r["status"] == "ok" for r in results.values())
    assert results["rules"]["metrics"]["f1_micro"] > results["random"]["metrics"]["f1_micro"]
    probs, labels = ResultStore(tmp_path).load_predictions("toy_tags", "rules")
    assert labels.shape == probs.shape and set(np.unique(labels)) <= {0, 1}
