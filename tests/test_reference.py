"""Real datasets (slow) and the committed reference results under results/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.data import load_dataset
from bench.evaluate.harness import RunSettings
from bench.evaluate.metrics import Predictions, score
from bench.evaluate.thresholds import Thresholds
from bench.pipeline import run
from bench.profiles import get_profile
from bench.store.results import ResultStore, to_json

RESULTS = Path(__file__).resolve().parent.parent / "results"
CLASSICAL = ["random", "stratified", "majority", "rules", "tfidf_lr"]


def _committed() -> list[tuple[str, str]]:
    store = ResultStore(RESULTS)
    return [(d, r["rung"]) for d in store.datasets() for r in store.results(d) if r["status"] == "ok"]


@pytest.mark.parametrize(("dataset", "rung"), _committed())
def test_committed_metrics_recompute_from_predictions(dataset, rung):
    """Every committed result.json agrees with the metrics recomputed from its predictions.npz."""
    store = ResultStore(RESULTS)
    stored = store.read(dataset, rung)
    probs, labels, ood_probs, members, ood_members = store.load_all_predictions(dataset, rung)
    assert len(labels) == stored["data"]["test"]
    assert (ood_probs is None) == ("ood" not in stored["data"])  # OOD predictions exactly where the data had some
    assert (members is None) == ("ensemble" not in stored["metrics"])  # members' predictions exactly for ensembles
    from bench.data import TaskSpec

    spec = TaskSpec(dataset, stored["data"]["task"], tuple(stored["data"]["labels"]))
    thresholds = Thresholds.from_metrics(stored["metrics"], spec.labels) if spec.multilabel else None
    alpha = (stored["metrics"].get("conformal") or {}).get("alpha", 0.1)
    bins = stored["metrics"]["ece_bins"]
    p = Predictions(spec, probs, labels, bins, thresholds, alpha, ood_probs, members, ood_members)
    recomputed = json.loads(to_json(score(p)))
    assert recomputed == stored["metrics"]


def test_committed_leaderboards_match_results():
    for dataset in ResultStore(RESULTS).datasets():
        md = (RESULTS / dataset / "leaderboard.md").read_text()
        for r in ResultStore(RESULTS).results(dataset):
            assert f"| {r['rung']} " in md
            if r["status"] == "ok":
                assert f"{r['metrics']['f1_macro']:.4f}" in md


@pytest.mark.slow
def test_sst2_classical_ladder(real_data_dir, tmp_path):
    """The spine's acceptance numbers on the 872 SST-2 test sentences (default profile)."""
    ds = load_dataset("sst2", data_dir=real_data_dir)
    results = {r["rung"]: r for r in run([ds], CLASSICAL, RunSettings(profile=get_profile("default")), tmp_path)}
    acc = {name: r["metrics"]["accuracy"] for name, r in results.items()}
    assert len(ds.test) == 872
    assert acc["majority"] == pytest.approx(444 / 872)
    assert abs(acc["random"] - 0.5) < 0.06 and abs(acc["stratified"] - 0.5) < 0.06
    assert acc["rules"] >= 0.60
    assert acc["tfidf_lr"] >= 0.78
    for name in CLASSICAL:
        assert (tmp_path / "sst2" / name / "seed-0" / "predictions.npz").is_file()
    assert (tmp_path / "sst2" / "leaderboard.md").is_file() and (tmp_path / "sst2" / "leaderboard.csv").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["emotion", "ag_news", "mrpc", "mwml_tags", "20newsgroups"])
def test_every_dataset_runs_through_its_path(real_data_dir, tmp_path, name):
    """Each real dataset (no validation split, pairs, multi-label, long texts) goes through the quick profile
    (20newsgroups without tfidf_lr: a minute of fitting on long posts, not needed to cover its path)."""
    ds = load_dataset(name, data_dir=real_data_dir)
    rungs = [r for r in CLASSICAL if not (name == "20newsgroups" and r == "tfidf_lr")]
    results = {r["rung"]: r for r in run([ds], rungs, RunSettings(profile=get_profile("quick")), tmp_path)}
    for rung in ("random", "stratified", "majority", *(["tfidf_lr"] if "tfidf_lr" in rungs else [])):
        assert results[rung]["status"] == "ok", results[rung].get("error")
    expected_rules = "not_applicable" if name in ("ag_news", "mrpc", "20newsgroups") else "ok"
    assert results["rules"]["status"] == expected_rules
    if name == "emotion":
        assert results["majority"]["metrics"]["accuracy"] == pytest.approx(0.35, abs=0.03)
    probs, labels = ResultStore(tmp_path).load_predictions(name, "tfidf_lr" if "tfidf_lr" in rungs else "random")
    assert probs.shape[0] == labels.shape[0] == min(len(ds.test), 500)
    assert np.isfinite(probs).all()


def test_no_fitted_artifact_is_committed():
    """Fitted rungs (up to 92 MB each) stay out of git: .gitignore covers every layout of results/."""
    import subprocess

    root = RESULTS.parent
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "results/sst2/finetuned/seed-0/artifact/model.safetensors"], cwd=root
    )
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=root, capture_output=True, text=True).stdout
    assert ignored.returncode == 0 and "/artifact/" not in tracked
