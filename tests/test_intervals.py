"""Bootstrap intervals, paired comparisons, tiers, identical decisions, seeds and re-timing on another machine."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest

from bench.data import TaskSpec, load_dataset
from bench.evaluate import intervals
from bench.evaluate.compare import Comparison, Entry
from bench.evaluate.harness import RunSettings
from bench.evaluate.intervals import Bootstrap, confidence_intervals, ece_noise_floor, resampled
from bench.evaluate.metrics import Predictions, compute_scores, get_metric, list_metrics
from bench.pipeline import run
from bench.profiles import get_profile
from bench.report.leaderboard import formatted, leaderboard_frame, write_leaderboard
from bench.store.results import ResultStore, to_json

QUICK = RunSettings(profile=get_profile("quick"))
BINARY = TaskSpec("toy", "single-label", ("no", "yes"))


def _predictions(correct: np.ndarray, conf: np.ndarray) -> Predictions:
    """Binary predictions whose top label has confidence ``conf`` and is right where ``correct``."""
    y = np.where(correct, 1, 0)
    p_yes = conf  # predicted class is "yes" (conf > 0.5), right when y == 1
    return Predictions(BINARY, np.column_stack([1 - p_yes, p_yes]), y)


def test_every_metric_with_statistics_reduces_to_its_own_value():
    """The bootstrap's fast path (sufficient statistics) gives exactly the registered metric on the full sample."""
    rng = np.random.default_rng(0)
    for multi in (False, True):
        n, c = 120, 4
        if multi:
            probs, y = rng.random((n, c)), (rng.random((n, c)) < 0.3).astype(int)
            spec = TaskSpec("t", "multi-label", tuple("abcd"))
        else:
            z = rng.normal(size=(n, c)) * 2
            probs, y = np.exp(z) / np.exp(z).sum(1, keepdims=True), rng.integers(0, c, n)
            spec = TaskSpec("t", "single-label", tuple("abcd"))
        p = Predictions(spec, probs, y, 10)
        for metric in list_metrics(spec.label_kind):
            if metric.stats is None:
                continue
            got, want = metric.reduce(metric.stats(p).sum(0), p), metric.compute(p)
            if isinstance(got, dict):
                for key, value in got.items():
                    rule, name = key.split(".")
                    assert value == pytest.approx(want[rule][name], abs=1e-12), (metric.name, key)
            else:
                assert got == pytest.approx(want, abs=1e-12), metric.name


def test_vectorised_adaptive_ece_equals_recomputing_each_resample():
    rng = np.random.default_rng(1)
    z = np.round(rng.normal(size=(60, 3)), 1)  # rounded: many tied confidences
    p = Predictions(
        TaskSpec("t", "single-label", tuple("abc")),
        np.exp(z) / np.exp(z).sum(1, keepdims=True),
        rng.integers(0, 3, 60),
        7,
    )
    counts = next(Bootstrap(resamples=40).counts(p.n))
    metric = get_metric("ece_adaptive")
    slow = [metric.compute(p.subset(np.repeat(np.arange(p.n), w.astype(int)))) for w in counts]
    assert np.allclose(metric.resample(p, counts), slow, atol=1e-12)


def test_accuracy_intervals_cover_the_true_accuracy_about_95_percent_of_the_time():
    """200 simulated test sets of 300 examples from a classifier whose true accuracy is 0.8."""
    rng = np.random.default_rng(2)
    accuracy = get_metric("accuracy")
    boot = Bootstrap(resamples=1000)
    covered = 0
    for _ in range(200):
        correct = rng.random(300) < 0.8
        p = _predictions(correct, np.full(300, 0.8))
        values = resampled(p, [accuracy], boot)["accuracy"]
        lo, hi = boot.bounds(values, float(correct.mean()))
        covered += lo <= 0.8 <= hi
    assert 0.91 <= covered / 200 <= 0.99


def test_stored_interval_agrees_with_an_independent_bootstrap(toy_data, tmp_path):
    ds = load_dataset("toy_topics", data_dir=toy_data)
    [result] = run([ds], ["tfidf_lr"], QUICK, tmp_path)
    probs, labels = ResultStore(tmp_path).load_predictions(ds.name, "tfidf_lr")
    rng = np.random.default_rng(12345)  # another generator, resampling by index
    correct = probs.argmax(1) == labels
    draws = correct[rng.integers(0, len(correct), (2000, len(correct)))].mean(axis=1)
    width = np.subtract(*np.percentile(draws, [97.5, 2.5]))
    lo, hi = result["intervals"]["metrics"]["accuracy"]
    assert lo <= result["metrics"]["accuracy"] <= hi
    assert (hi - lo) == pytest.approx(width, rel=0.4)


def test_ece_noise_floor_bounds_a_perfectly_calibrated_model():
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.55, 0.99, 400)
    floor = ece_noise_floor(_predictions(rng.random(400) < conf, conf))
    assert 0 < floor["mean"] < floor["q95"] < 0.1
    eces = [compute_scores(BINARY, *_arrays(rng.random(400) < conf, conf))["ece"] for _ in range(100)]
    assert 0.9 <= np.mean(np.array(eces) <= floor["q95"]) <= 1.0


def _arrays(correct: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = _predictions(correct, conf)
    return p.probs, p.y


def _entry(name: str, correct: np.ndarray, conf: np.ndarray, chance: bool = False) -> Entry:
    p = _predictions(correct, conf)
    return Entry(name, p, compute_scores(BINARY, p.probs, p.y), chance)


def test_ties_tiers_identical_decisions_and_significant_bests():
    rng = np.random.default_rng(4)
    n = 600
    strong = rng.random(n) < 0.9
    near = strong.copy()  # 6 right answers lost, 4 wrong ones fixed: a statistical tie (McNemar 6 vs 4)
    near[rng.choice(np.flatnonzero(strong), 6, replace=False)] = False
    near[rng.choice(np.flatnonzero(~strong), 4, replace=False)] = True
    weak = rng.random(n) < 0.6
    entries = {
        "strong": _entry("strong", strong, np.full(n, 0.9)),
        "strong_twin": _entry("strong_twin", strong, np.full(n, 0.7)),  # same decisions, other confidence
        "near": _entry("near", near, np.full(n, 0.9)),
        "weak": _entry("weak", weak, np.full(n, 0.6)),
        "chance": _entry("chance", rng.random(n) < 0.5, np.full(n, 0.5 + 1e-6), chance=True),
    }
    cmp = Comparison(entries, ["accuracy", "f1_macro", "ece"])
    assert cmp.ranked()[0] in ("strong", "strong_twin")
    assert cmp.tiers["strong"] == cmp.tiers["strong_twin"] == cmp.tiers["near"] == 1
    assert cmp.tiers["weak"] == 2 and cmp.tiers["chance"] == 3
    assert cmp.same_as.get("strong_twin") == "strong" or cmp.same_as.get("strong") == "strong_twin"
    twin = cmp.difference("strong_twin", "strong", "accuracy")
    assert twin["delta"] == 0 and twin["low"] == twin["high"] == 0 and not twin["significant"]
    assert not cmp.difference("near", "strong", "f1_macro")["significant"]
    assert cmp.difference("weak", "strong", "f1_macro")["significant"]
    assert cmp.best("accuracy") is None  # the top two make the same decisions: no best
    assert cmp.best("ece") != "chance"  # a chance rung's calibration is never the best


def test_leaderboard_shows_intervals_tiers_seeds_and_the_steps(toy_data, tmp_path):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    run([ds], ["majority", "random", "tfidf_lr", "tfidf_lr+ts"], QUICK, tmp_path, seeds=[0, 1])
    store = ResultStore(tmp_path)
    assert store.seeds(ds.name, "random") == [0, 1] and store.seeds(ds.name, "majority") == [0]  # not seeded
    write_leaderboard(store, ds.name)
    md = (tmp_path / ds.name / "leaderboard.md").read_text()
    csv = (tmp_path / ds.name / "leaderboard.csv").read_text().splitlines()[0]
    for column in ("accuracy low", "accuracy high", "Δ macro-F1 vs top", "tier", "same decisions as"):
        assert column in csv
    assert "| tfidf_lr+ts " in md and "What each step buys" in md and "tfidf_lr+ts vs tfidf_lr" in md
    seeds = store.seed_results(ds.name)
    frame = leaderboard_frame(store.results(ds.name), None, seeds)
    shown = formatted(frame).set_index("rung")
    random_f1 = [r["metrics"]["f1_macro"] for r in seeds["random"]]
    assert shown.loc["random", "macro-F1 over seeds"] == (
        f"{np.mean(random_f1):.4f} ± {np.std(random_f1, ddof=1):.4f} (2)"
    )
    assert shown.loc["majority", "macro-F1 over seeds"].endswith("(1)")
    assert "[" in shown.loc["tfidf_lr", "accuracy"]


def _digest(folder) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()


def test_another_machine_retimes_without_refitting(toy_data, tmp_path, monkeypatch):
    monkeypatch.setattr("bench.evaluate.harness.CONTENDED_CPU_SHARE", 0.0)  # an idle machine, even under a busy CI
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    [first] = run([ds], ["tfidf_lr"], QUICK, tmp_path)
    store = ResultStore(tmp_path)
    folder = store.rung_dir(ds.name, "tfidf_lr")
    artifact = _digest(folder / "artifact")
    stored = json.loads((folder / "result.json").read_text())
    stored["machine"] = {**stored["machine"], "cpu": "Some Other CPU", "key": "Some Other CPU, 64 cpus"}
    (folder / "result.json").write_text(json.dumps(stored))

    def refuse(*args, **kwargs):
        raise AssertionError("re-timing must not fit")

    monkeypatch.setattr("baselines.tfidf.TfidfLogisticRegression.fit", refuse)
    [again] = run([ds], ["tfidf_lr"], QUICK, tmp_path)
    assert again["retimed_from"] == "Some Other CPU, 64 cpus"
    assert again["machine"]["key"] == first["machine"]["key"]
    assert again["timing"]["measured_at"] >= first["timing"]["measured_at"]
    assert again["efficiency"]["latency_calls"] > 0 and again["efficiency"] != first["efficiency"]
    assert again["efficiency"]["fit_seconds"] == first["efficiency"]["fit_seconds"]
    assert again["metrics"] == json.loads(to_json(first["metrics"]))
    assert again["created_at"] == first["created_at"] and _digest(folder / "artifact") == artifact
    [third] = run([ds], ["tfidf_lr"], QUICK, tmp_path)  # same machine now: nothing to do
    assert third["timing"] == again["timing"]


def test_a_busy_machine_marks_the_latency(toy_data, tmp_path, monkeypatch):
    monkeypatch.setattr("os.getloadavg", lambda: (64.0, 64.0, 64.0))
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    [result] = run([ds], ["majority"], QUICK, tmp_path)
    assert result["timing"]["contended"]
    md = (tmp_path / ds.name / "leaderboard.md").read_text()
    assert re.search(r"\| \d+\.\d+ \*\s+\|", md) and "busy" in md
    # the next run re-times it (the fit and the scores are kept), here on the same machine
    [again] = run([ds], ["majority"], QUICK, tmp_path)
    assert again["created_at"] == result["created_at"] and again["metrics"]["f1_macro"] == result["metrics"]["f1_macro"]
    assert again["retimed_from"] == result["machine"]["key"] and again["timing"] != result["timing"]


def test_intervals_are_seeded_and_paired():
    rng = np.random.default_rng(5)
    correct = rng.random(200) < 0.7
    p = _predictions(correct, np.full(200, 0.7))
    assert confidence_intervals(p) == confidence_intervals(p)  # the same resamples every time
    counts_a = np.vstack(list(Bootstrap(resamples=10).counts(200)))
    counts_b = np.vstack(list(Bootstrap(resamples=10).counts(200)))
    assert np.array_equal(counts_a, counts_b) and (counts_a.sum(axis=1) == 200).all()
    assert intervals.RESAMPLES >= 1000


def test_a_perfect_rung_keeps_a_perfect_macro_f1_interval_when_resamples_miss_a_class():
    """Macro averages run over the classes each resample drew, as over those the test split has: a rare class
    missing from a resample is not scored 0 there, so an error-free rung's interval is [1, 1], not above or below."""
    spec = TaskSpec("rare", "single-label", ("a", "b", "c"))
    y = np.array([0] * 12 + [1] * 12 + [2])  # about a third of resamples draw no 'c'
    probs = np.full((len(y), 3), 0.05) + 0.85 * np.eye(3)[y]
    p = Predictions(spec, probs, y, 15)
    scores = compute_scores(spec, probs, y, 15)
    assert scores["f1_macro"] == 1.0
    low, high = confidence_intervals(p, scores)["f1_macro"]
    assert low == pytest.approx(1.0) and high == pytest.approx(1.0)
