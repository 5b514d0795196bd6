"""The latency gate: comparison logic, the slowdown hook, and the gate end to end catching a 1.5x slowdown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import perf

REPO = Path(__file__).resolve().parents[1]


def _case(rung: str, batch: int, ratio: float) -> dict:
    return {"rung": rung, "batch": batch, "ratio": ratio, "spread": 0.01, "calls": 1, "reference_calls": 1}


def test_compare_flags_only_growth_beyond_the_limit():
    baseline = {"cases": {"a@1": _case("a", 1, 1.0), "b@1": _case("b", 1, 2.0), "c@1": _case("c", 1, 1.0),
                          "d@1": _case("d", 1, 1.0)},
                "thresholds": {"c": 0.5}}
    current = {"cases": {"a@1": _case("a", 1, 1.2), "b@1": _case("b", 1, 2.6), "c@1": _case("c", 1, 1.4)}}
    rows = {r["case"]: r for r in perf.compare(current, baseline, threshold=0.25)}
    assert rows["a@1"]["verdict"] == "ok" and rows["a@1"]["change"] == pytest.approx(0.2)
    assert rows["b@1"]["verdict"] == "SLOWER"  # +30% > 25%
    assert rows["c@1"]["verdict"] == "ok"  # +40% within its own 50%
    assert rows["d@1"]["verdict"] == "missing"
    assert [r["case"] for r in perf.failed(list(rows.values()))] == ["b@1"]
    text = perf.table(list(rows.values()))
    assert "SLOWER" in text and "+30.0%" in text and "baseline ratio" in text


def test_save_picks_the_reference_part_steadiest_between_runs_and_keeps_the_median():
    def run(matmul: float, python: float) -> dict:
        return {"a@1": {"rung": "a", "batch": 1, "reference": "python", "ratio": python, "spread": 0.1,
                        "ratios": {"matmul": matmul, "python": python}, "spreads": {"matmul": 0.3, "python": 0.1}}}

    runs = [run(2.0, 10.0), run(2.1, 14.0), run(1.9, 11.0)]  # python: steadier within rounds, not between runs
    case = perf.combine_runs(runs, choose_reference=True)["a@1"]
    assert case["reference"] == "matmul" and case["ratio"] == 2.0 and case["spread"] == 0.3
    assert case["run_ratios"] == [1.9, 2.0, 2.1]
    assert perf.combine_runs(runs)["a@1"]["ratio"] == 11.0  # --check keeps the baseline's part
    rows = perf.compare({"cases": {"a@1": {**case, "ratio": 2.6}}}, {"cases": {"a@1": case}})
    assert perf.to_retry(rows) == ["a"] and rows[0]["runs"] == 3


def test_summarise_gives_median_and_relative_spread():
    s = perf.summarise([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["ratio"] == 3.0 and s["spread"] == pytest.approx((4.0 - 2.0) / 3.0) and s["rounds"] == 5


def test_slowed_does_the_work_the_given_number_of_times():
    class Counting:
        calls = 0

        def predict_proba(self, inputs):
            Counting.calls += 1
            return np.zeros((len(inputs), 2))

    slowed = perf.Slowed(Counting(), 1.5)  # type: ignore[arg-type]
    for _ in range(10):
        slowed.predict_proba(["x"])
    assert Counting.calls == 15
    assert perf.parse_slowdowns("tfidf_lr=1.5, majority=2") == {"tfidf_lr": 1.5, "majority": 2.0}


def test_workload_is_fixed():
    a, b = perf.workload(), perf.workload()
    assert a.test.texts == b.test.texts and np.array_equal(a.train.y, b.train.y)
    lengths = [len(t.split()) for t in a.test.texts]
    assert 4 <= min(lengths) and max(lengths) <= 40 and len(set(a.train.y.tolist())) == 2


def _perf(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", "perf", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)


@pytest.mark.slow
def test_gate_catches_a_1_5x_slowdown_on_that_rung_only(tmp_path):
    baseline = tmp_path / "baseline.json"
    rungs = "majority,rules,tfidf_lr"
    saved = _perf("--save", "--runs", "3", "--baseline", str(baseline), "--rungs", rungs)  # a median of 3 processes, as make perf-save
    assert saved.returncode == 0, saved.stdout + saved.stderr
    stored = json.loads(baseline.read_text())
    assert set(stored["cases"]) == {f"{r}@{b}" for r in rungs.split(",") for b in perf.BATCH_SIZES}
    assert stored["machine"]["threads"] >= 1 and all(c["ratio"] > 0 for c in stored["cases"].values())
    slowed = _perf("--check", "--baseline", str(baseline), "--rungs", rungs, env={"BENCH_PERF_SLOWDOWN": "tfidf_lr=1.5"})
    out = slowed.stdout
    assert slowed.returncode == 1, out + slowed.stderr
    verdicts = {line.split()[0] + "@" + line.split()[1]: line.split()[-1] for line in out.splitlines()
                if line.split() and line.split()[0] in rungs.split(",")}
    assert verdicts["tfidf_lr@1"] == verdicts["tfidf_lr@16"] == "SLOWER", out
    assert all(v != "SLOWER" for k, v in verdicts.items() if not k.startswith("tfidf_lr")), out
    assert "FAIL: 2 case(s)" in out


def test_perf_needs_a_mode_and_a_baseline(tmp_path):
    assert _perf().returncode == 2
    missing = _perf("--check", "--baseline", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "no baseline" in missing.stderr


def test_committed_baseline_covers_every_rung():
    from bench.registry import list_rungs

    stored = perf.read_baseline(REPO / perf.DEFAULT_BASELINE)
    assert {c["rung"] for c in stored["cases"].values()} == set(list_rungs())
    assert {"cpu", "threads", "torch"} <= set(stored["machine"])
