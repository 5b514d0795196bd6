"""Executors: the grid on an embedded 2-CPU Ray cluster gives the local executor's results, survives a worker killed
mid-cell, stores a failing rung as failed, skips finished cells and times cells left untimed."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.data import load_dataset
from bench.errors import BenchError
from bench.evaluate.harness import RunSettings, timing_pending
from bench.execute import Cell, get_executor, plan_cells
from bench.pipeline import run
from bench.profiles import get_profile
from bench.rungs import registry
from bench.rungs.protocol import Rung
from bench.rungs.wrapper import Wrapper
from bench.store.results import ResultStore, StoreError, artifact_digest, parse_base_key

ray = pytest.importorskip("ray")

CRASH = "tfidf_lr+crash_once"
ENSEMBLE = "stratified+ens"  # its cells wait for its members': stratified at seeds s and s + 1
GRID = ["majority", "tfidf_lr", CRASH, "exploding", ENSEMBLE]  # CRASH is a wrapper: its cell waits for tfidf_lr's
SEEDS = [0, 1]


class CrashOnce(Wrapper):
    """Its base's probabilities; its first fit anywhere kills the process it runs in (a worker dying mid-cell)."""

    def __init__(self, base: Rung, marker: str = "") -> None:
        self._set_bases([base])
        self.marker = marker

    def fit_own(self, train, validation) -> None:
        if self.marker and not Path(self.marker).exists():
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)

    def predict_proba(self, inputs) -> np.ndarray:
        return self.base.predict_proba(inputs)


@pytest.fixture(scope="module")
def cluster():
    """One embedded 2-CPU cluster for the module (the executor leaves a cluster it did not start running)."""
    from bench.execute.ray_cluster import start_cluster

    start_cluster(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture
def rungs(monkeypatch, exploding_rung):
    registry.list_rungs()
    info = registry.RungInfo(CRASH, "test", "dies once", f"{__name__}:CrashOnce", 10_001, bases=("tfidf_lr",))
    monkeypatch.setitem(registry._REGISTRY, CRASH, info)
    ensemble = registry.RungInfo(
        ENSEMBLE, "test", "two seeds", "models.ensemble:DeepEnsemble", 10_002, bases=("stratified",), members="members"
    )
    monkeypatch.setitem(registry._REGISTRY, ENSEMBLE, ensemble)
    return GRID


def settings(marker: Path) -> RunSettings:
    return RunSettings(profile=get_profile("quick"), options={CRASH: {"marker": str(marker)}, ENSEMBLE: {"members": 2}})


def flat(obj, prefix: str = "") -> dict:
    """Every leaf of nested dicts and lists, by path."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in flat(val, f"{prefix}{key}.").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in flat(val, f"{prefix}{i}.").items()}
    return {prefix: float("nan") if obj is None else obj}


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".artifact.")]


def test_ray_grid_equals_local_and_survives_a_killed_worker(toy_data, tmp_path, rungs, cluster):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    marker = tmp_path / "crashed"
    marker.touch()  # the local run must not kill pytest
    local = {(r["rung"], r["config"]["seed"]): r for r in run([ds], rungs, settings(marker), tmp_path / "local", SEEDS)}
    marker.unlink()
    results = run([ds], rungs, settings(marker), tmp_path / "ray", SEEDS, executor=get_executor("ray"))
    assert marker.exists()  # the crashing cell's first try killed its worker; Ray ran it again
    remote = {(r["rung"], r["config"]["seed"]): r for r in results}
    assert remote.keys() == local.keys() and len(remote) == len(plan_cells([ds.name], rungs, SEEDS, settings(marker)))
    assert ("stratified", 2) in remote  # the seed-1 ensemble's second member, planned as its own cell
    store_l, store_r = ResultStore(tmp_path / "local"), ResultStore(tmp_path / "ray")
    for (rung, seed), r in remote.items():
        assert r["status"] == local[(rung, seed)]["status"], (rung, seed)
        stored = store_r.read(ds.name, rung, seed)
        assert r == {k: v for k, v in stored.items() if k in r}  # what the run returned is what it stored
        if r["status"] == "failed":
            assert r["error"] == "RuntimeError: boom in fit"
            continue
        assert flat(r["metrics"]) == pytest.approx(flat(local[(rung, seed)]["metrics"]), abs=1e-9, nan_ok=True)
        assert r["fit_info"].keys() == local[(rung, seed)]["fit_info"].keys()
        assert r["config_hash"] == local[(rung, seed)]["config_hash"]
        probs = [s.load_predictions(ds.name, rung, seed)[0] for s in (store_r, store_l)]
        np.testing.assert_allclose(*probs, atol=1e-9)
        # complete: timed, from the stored artifact, with a node to itself; the artifact is the one it names
        assert not timing_pending(r) and r["timing"]["method"] == "exclusive" and "nice" in r["timing"]
        assert r["efficiency"]["latency_ms_p50"] > 0 and r["efficiency"]["throughput_per_s"] > 0
        folder = store_r.rung_dir(ds.name, rung, seed) / "artifact"
        assert artifact_digest(folder) == r["artifact_sha256"]
        for key, digest in (r.get("base_artifacts") or {}).items():
            assert digest == store_r.read(ds.name, *parse_base_key(key, seed))["artifact_sha256"]
    assert leftovers(tmp_path / "ray") == []
    scratch = Path(tempfile.gettempdir()) / "bench-ray"
    dead = [p for p in scratch.iterdir() if not Path(f"/proc/{p.name.partition('-')[0]}").exists()]
    assert dead == []  # the killed worker's scratch folder was swept

    # A rerun skips every finished cell (a failed one runs again, as with the local executor); a cell left
    # untimed (a run stopped before its timing phase) is timed, not refitted — by either executor.
    store = store_r
    again = run([ds], rungs, settings(marker), tmp_path / "ray", SEEDS, executor=get_executor("ray"))
    assert {(r["rung"], r["config"]["seed"]): r["created_at"] for r in again if r["status"] == "ok"} == {
        k: r["created_at"] for k, r in remote.items() if r["status"] == "ok"
    }
    untimed = store.read(ds.name, CRASH, 1)
    kept = {k: v for k, v in untimed["efficiency"].items() if not k.startswith(("latency_", "throughput_"))}
    store.rewrite({**untimed, "efficiency": kept, "timing": {"pending": True}, "machine": None})
    timed = {(r["rung"], r["config"]["seed"]): r for r in run([ds], rungs, settings(marker), tmp_path / "ray", SEEDS)}
    fresh = timed[(CRASH, 1)]
    assert not timing_pending(fresh) and fresh["timing"]["method"] == "retimed"
    assert fresh["created_at"] == untimed["created_at"] and fresh["metrics"] == untimed["metrics"]


def test_ctrl_c_cancels_the_cluster_work_and_keeps_what_finished(toy_data, tmp_path, rungs, cluster, monkeypatch):
    from bench.execute import ray_cluster

    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    wait, calls = ray_cluster._Grid._wait, []

    def interrupted(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return wait(self)

    monkeypatch.setattr(ray_cluster._Grid, "_wait", interrupted)
    grid = ["majority", "stratified", "tfidf_lr"]
    with pytest.raises(KeyboardInterrupt):
        run([ds], grid, settings(tmp_path / "m"), tmp_path / "out", [0], executor=get_executor("ray"))
    store = ResultStore(tmp_path / "out")
    finished = [r for r in (store.read(ds.name, rung, 0) for rung in grid) if r is not None]
    assert len(finished) == 1 and timing_pending(finished[0])  # stored whole, timing left for the next run
    assert leftovers(tmp_path / "out") == [] and (tmp_path / "out" / ds.name / "leaderboard.md").is_file()
    monkeypatch.setattr(ray_cluster._Grid, "_wait", wait)
    results = run([ds], grid, settings(tmp_path / "m"), tmp_path / "out", [0], executor=get_executor("ray"))
    assert [r["status"] for r in results] == ["ok"] * 3 and not any(timing_pending(r) for r in results)
    assert store.read(ds.name, finished[0]["rung"], 0)["created_at"] == finished[0]["created_at"]


def test_bundles_round_trip_and_refuse_garbage(toy_data, tmp_path):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    run([ds], ["tfidf_lr"], RunSettings(profile=get_profile("quick")), tmp_path / "a")
    a, b = ResultStore(tmp_path / "a"), ResultStore(tmp_path / "b")
    assert a.export_bundle(ds.name, "majority", 0) is None
    result = b.import_bundle(a.export_bundle(ds.name, "tfidf_lr", 0))
    assert result == a.read(ds.name, "tfidf_lr", 0) == b.read(ds.name, "tfidf_lr", 0)
    assert b.is_current(ds.name, "tfidf_lr", result["config_hash"], 0)  # predictions and artifact hash as named
    with pytest.raises(StoreError):
        b.import_bundle(a.export_bundle(ds.name, "tfidf_lr", 0)[:512])


def test_cells_and_declared_resources():
    cells = plan_cells(["d"], ["majority", "tfidf_lr", "finetuned+mc+ts"], [0, 1])
    assert Cell("d", "majority", 1) not in cells and Cell("d", "tfidf_lr", 1) in cells  # majority ignores seeds
    assert registry.get_rung("tfidf_lr").resources.cpus == 1
    assert registry.get_rung("finetuned").resources.cpus is None  # the whole machine
    assert registry.get_rung("finetuned+mc+ts").resources == registry.get_rung("finetuned").resources  # as its base


def test_cli_executor_errors(tmp_path, capsys, monkeypatch):
    args = ["run", "--models", "majority", "--output", str(tmp_path / "o")]
    assert main([*args, "--address", "ray://x:1"]) == 2
    assert "--address names a Ray cluster" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    with pytest.raises(BenchError, match=r"bench\[ray\]"):
        get_executor("ray").run([], {}, RunSettings(profile=get_profile("quick")), ResultStore(tmp_path), print)
