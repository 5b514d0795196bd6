"""The README stays true: its SST-2 table matches results/, and its 'Adding a rung' example runs."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from bench import registry
from bench.data import load_dataset
from bench.harness import RunSettings, run
from bench.profiles import get_profile
from bench.store import ResultStore

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_sst2_table_matches_committed_results():
    block = README.split("<!-- sst2-table")[1].split("\n\n")[0]
    rows = re.findall(r"^\| ([\w+]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", block, flags=re.M)
    store = ResultStore(ROOT / "results")
    stored = {r["rung"]: r for r in store.results("sst2")}
    assert rows and {name for name, *_ in rows} == {n for n, r in stored.items() if r["status"] == "ok"}
    for name, acc, f1, ece in rows:
        m = stored[name]["metrics"]
        assert (acc, f1, ece) == (f"{m['accuracy']:.4f}", f"{m['f1_macro']:.4f}", f"{m['ece']:.4f}")


def test_adding_a_rung_example_runs(toy_data, tmp_path, monkeypatch):
    code = README.split("## Adding a rung")[1].split("```python")[1].split("```")[0]
    registry.list_rungs()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # keep the example's registration local
    (tmp_path / "readme_rung.py").write_text(code)  # as a user would: the rung lives in an importable module
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("readme_rung")
    assert {"naive_bayes", "naive_bayes+ts"} <= set(registry.list_rungs())
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    results = run([ds], ["naive_bayes", "naive_bayes+ts"], RunSettings(profile=get_profile("quick")), tmp_path)
    assert [r["status"] for r in results] == ["ok", "ok"] and results[0]["metrics"]["accuracy"] > 0.7
    assert results[1]["fit_info"]["temperature"] > 0 and results[1]["fit_info"]["reused_fit_seconds"] > 0  # base reused
    [pairs] = run([load_dataset("toy_pairs", data_dir=toy_data)], ["naive_bayes"], RunSettings(profile=get_profile("quick")), tmp_path)
    assert pairs["status"] == "not_applicable"
