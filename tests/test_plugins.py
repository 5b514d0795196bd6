"""A rung, a stochastic wrapper and a two-base ensemble from a package outside the project, found through the
``bench.rungs`` entry point, go through run, report, rescore, the latency suite and the MC sweep with no edit to
``bench/``; a metric added through the registry is filled into stored results by ``bench rescore``."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.evaluate import metrics
from bench.rungs import registry
from bench.store.results import ResultStore

PLUGIN = '''
"""A third-party package's rungs: nearest centroid, a noisy stochastic wrapper over it, a two-rung average."""

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

from bench import Capabilities, PlotStyle, Rung, Wrapper, register_rung


class Centroid(Rung):
    has_logits = True

    def __init__(self, scale: float = 8.0, seed: int = 0) -> None:
        self.scale = scale
        self.seed = seed

    def fit(self, train, validation):
        self.spec = train.spec
        self.vectorizer_ = HashingVectorizer(n_features=2**10, alternate_sign=False)
        x = self.vectorizer_.transform(train.texts).toarray()
        self.centroids_ = np.stack([x[train.y == c].mean(axis=0) for c in range(self.spec.n_classes)])
        return self

    def predict_logits(self, inputs):
        return self.scale * self.vectorizer_.transform(list(inputs)).toarray() @ self.centroids_.T

    def predict_proba(self, inputs):
        z = self.predict_logits(inputs)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def num_parameters(self):
        return int(self.centroids_.size)


class Jitter(Wrapper):
    """The mean softmax of ``passes`` copies of the base's logits with Gaussian noise: stochastic passes."""

    requires_logits = True

    def __init__(self, base, passes: int = 8, noise: float = 1.0, seed: int = 0) -> None:
        self._set_bases([base])
        self.passes, self.noise, self.seed = passes, noise, seed

    def fit_own(self, train, validation):
        self.offset_ = 0.0  # something learned, to show state() / restore()

    def reseed(self, seed):
        self.seed = seed

    def sample_probs(self, inputs, passes=None):
        z = self.base.predict_logits(inputs)
        rng = np.random.default_rng(self.seed)
        out = []
        for _ in range(passes or self.passes):
            noisy = z + self.offset_ + self.noise * rng.standard_normal(z.shape)
            e = np.exp(noisy - noisy.max(axis=1, keepdims=True))
            out.append(e / e.sum(axis=1, keepdims=True))
        return np.stack(out)

    def predict_proba(self, inputs):
        return self.sample_probs(inputs).mean(axis=0)

    def own_parameters(self):
        return 1

    def state(self):
        return {"offset": self.offset_}

    def restore(self, state):
        self.offset_ = state["offset"]


class Average(Wrapper):
    """The mean of several bases' probabilities (an ensemble)."""

    def __init__(self, bases) -> None:
        self._set_bases(bases)

    def predict_proba(self, inputs):
        return np.mean([b.predict_proba(inputs) for b in self.bases], axis=0)


register_rung("demo_centroid", Centroid, family="demo", description="Nearest centroid of hashed words.",
              capabilities=Capabilities(tasks=frozenset({"single-label"}), pairs=False),
              profiles={"quick": {"scale": 6.0}}, perf={"scale": 5.0}, style=PlotStyle("#123456"))
register_rung("demo_centroid+jitter", Jitter, bases=["demo_centroid"], family="demo+noise",
              description="Noisy passes over demo_centroid.",
              capabilities=Capabilities(tasks=frozenset({"single-label"}), pairs=False, stochastic=True,
                                        needs=frozenset({"logits"})),
              profiles={"quick": {"passes": 4}}, perf={"passes": 2})
register_rung("demo_vote", Average, bases=["demo_centroid", "tfidf_lr"], family="demo+ensemble",
              description="Mean of demo_centroid and tfidf_lr.",
              capabilities=Capabilities(tasks=frozenset({"single-label"}), pairs=False))
'''
DEMO = ["demo_centroid", "demo_centroid+jitter", "demo_vote"]


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The plugin as an installed distribution would leave it: a module plus a dist-info with the entry point,
    on sys.path (and PYTHONPATH, for the latency suite's fresh processes)."""
    registry.list_rungs()  # the built-ins first, before the plugin is importable
    site = tmp_path / "site"
    site.mkdir()
    (site / "bench_demo_plugin.py").write_text(PLUGIN)
    info = site / "bench_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bench.rungs]\ndemo = bench_demo_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    # a fresh copy of the registry, loaded again: it finds the entry point
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.delitem(sys.modules, "bench_demo_plugin", raising=False)
    assert set(DEMO) <= set(registry.list_rungs())
    yield site
    sys.modules.pop("bench_demo_plugin", None)


def _digest(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()


def test_plugin_rungs_go_through_run_report_rescore_and_sweep(plugin, toy_data, tmp_path, capsys):
    out = str(tmp_path / "results")
    common = ["--data-dir", str(toy_data), "--profile", "quick", "--output", out]
    assert main(["run", "--models", "demo*,tfidf_lr", "--datasets", "toy_sentiment,toy_pairs", *common]) == 0
    store = ResultStore(out)
    done = {r["rung"]: r for r in store.results("toy_sentiment")}
    assert {k: r["status"] for k, r in done.items()} == {**dict.fromkeys(DEMO, "ok"), "tfidf_lr": "ok"}
    assert done["demo_centroid"]["metrics"]["accuracy"] > 0.8
    assert done["demo_centroid"]["config"]["options"] == {"scale": 6.0}  # the declared quick-profile option
    jitter, vote = done["demo_centroid+jitter"], done["demo_vote"]
    assert jitter["bases"] == ["demo_centroid"] and jitter["config"]["bases"] == [done["demo_centroid"]["config_hash"]]
    assert vote["config"]["bases"] == [done["demo_centroid"]["config_hash"], done["tfidf_lr"]["config_hash"]]
    # own figures apart from the bases': the wrapper learned one number, the ensemble none
    eff = jitter["efficiency"]
    assert eff["params_own"] == 1 and eff["params"] == 1 + done["demo_centroid"]["efficiency"]["params"]
    assert 0 < eff["size_bytes_own"] < eff["size_bytes"]
    assert vote["efficiency"]["params_own"] == 0
    assert (
        vote["efficiency"]["params"]
        == done["demo_centroid"]["efficiency"]["params"] + done["tfidf_lr"]["efficiency"]["params"]
    )
    assert vote["fit_info"]["reused_fit_seconds"] > 0  # both bases came from the store, fitted once
    # the ensemble's stored artifact loads back with both bases and predicts what was stored
    from bench.rungs.registry import load_rung

    loaded = load_rung(store.rung_dir("toy_sentiment", "demo_vote") / "artifact")
    probs, _ = store.load_predictions("toy_sentiment", "demo_vote")
    from bench.data import load_dataset

    texts = load_dataset("toy_sentiment", data_dir=toy_data).test.inputs
    assert len(loaded.bases) == 2 and np.allclose(loaded.predict_proba(texts), probs)
    # declared capabilities: not applicable to sentence pairs, without fitting
    pairs = {r["rung"]: r for r in store.results("toy_pairs")}
    assert {pairs[r]["status"] for r in DEMO} == {"not_applicable"}

    assert main(["report", "--output", out, "--data-dir", str(toy_data)]) == 0
    page = (Path(out) / "toy_sentiment" / "report.html").read_text()
    assert all(name in page for name in DEMO)
    assert "demo_centroid+jitter" in (Path(out) / "toy_sentiment" / "leaderboard.md").read_text()

    assert (
        main(
            [
                "sweep-mc",
                "--rung",
                "demo_centroid+jitter",
                "--dataset",
                "toy_sentiment",
                "--iterations",
                "1,3",
                "--repeats",
                "2",
                *common,
            ]
        )
        == 0
    )
    sweep = json.loads((Path(out) / "toy_sentiment" / "mc_sweep.json").read_text())
    assert sweep["rung"] == "demo_centroid+jitter" and sweep["base"] == "demo_centroid"
    assert [row["passes"] for row in sweep["summary"]] == [1, 3]
    assert main(["sweep-mc", "--rung", "demo_vote", "--dataset", "toy_sentiment", *common]) == 2
    assert "declares no stochastic passes" in capsys.readouterr().err


def test_a_registered_metric_is_filled_in_by_rescore_without_refitting(plugin, toy_data, tmp_path, monkeypatch):
    out = tmp_path / "results"
    assert (
        main(
            (
                f"run --models tfidf_lr,tfidf_lr+ts,demo_vote --datasets toy_sentiment "
                f"--data-dir {toy_data} --profile quick --output {out}"
            ).split()
        )
        == 0
    )
    store = ResultStore(out)
    before = {r["rung"]: r for r in store.results("toy_sentiment")}
    artifacts = {name: _digest(store.rung_dir("toy_sentiment", name) / "artifact") for name in before}

    monkeypatch.setattr(metrics, "_METRICS", dict(metrics._METRICS))  # the new metric stays local to this test

    @metrics.register_metric("error_rate", direction="min", header="error rate", tasks={"single-label"})
    def error_rate(p: metrics.Predictions) -> float:
        return float((p.pred != p.y).mean())

    def refuse(*args, **kwargs):
        raise AssertionError("rescore must not build, load or fit a rung")

    monkeypatch.setattr(registry.RungInfo, "create", refuse)
    monkeypatch.setattr("bench.rungs.registry.load_rung", refuse)
    monkeypatch.setattr("bench.evaluate.harness.load_rung", refuse)

    assert main(["rescore", "--output", str(out)]) == 0
    after = {r["rung"]: r for r in store.results("toy_sentiment")}
    for name, old in before.items():
        new = after[name]
        assert new["metrics"]["error_rate"] == pytest.approx(1 - old["metrics"]["accuracy"])
        assert new["metrics_version"] == metrics.METRICS_VERSION
        assert {k: v for k, v in new["metrics"].items() if k != "error_rate"} == old["metrics"]
        assert new["created_at"] == old["created_at"] and new["efficiency"] == old["efficiency"]
        assert new["config_hash"] == old["config_hash"]
        assert _digest(store.rung_dir("toy_sentiment", name) / "artifact") == artifacts[name]
    csv = (out / "toy_sentiment" / "leaderboard.csv").read_text().splitlines()[0]
    assert "error rate" in csv


def test_plugin_rungs_are_timed_by_the_latency_suite(plugin, tmp_path, capsys):
    """The suite runs in fresh processes: they find the plugin through its entry point, and fit each rung with the
    options its registration declares for the suite."""
    baseline = tmp_path / "baseline.json"
    assert main(["perf", "--save", "--rungs", "demo*", "--runs", "1", "--baseline", str(baseline)]) == 0
    [entry] = json.loads(baseline.read_text())["machines"].values()
    assert set(entry["cases"]) == {f"{r}@{b}" for r in DEMO for b in (1, 16)}
    assert all(c["ratio"] > 0 for c in entry["cases"].values())
