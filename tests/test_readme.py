"""The README stays true: its result tables match results/, and its 'Adding a rung' example runs."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

from bench.data import load_dataset
from bench.evaluate.harness import RunSettings
from bench.pipeline import run
from bench.profiles import get_profile
from bench.rungs import registry

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_result_tables_match_committed_results():
    """Each ``<!-- DATASET-table -->`` block (written by scripts/readme_tables.py) holds every finished rung,
    and each cell equals the leaderboard's cell of its column (value and interval)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from readme_tables import cells

    blocks = re.findall(r"<!-- (\w+)-table:[^\n]*-->\n((?:\|[^\n]*\n)+)", README)
    assert {name for name, _ in blocks} >= {"sst2", "mwml_tags", "mrpc"}
    for dataset, block in blocks:
        header, _, *rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.splitlines()]
        shown = cells(dataset).set_index("rung")
        assert [row[0] for row in rows] == list(shown.index), dataset
        assert any("[" in cell for row in rows for cell in row[1:]), "the tables show intervals"
        for rung, *values in rows:
            assert values == [str(shown.loc[rung, column]) for column in header[1:]], (dataset, rung)


def test_step_tables_match_committed_results():
    sys.path.insert(0, str(ROOT / "scripts"))
    from readme_tables import steps

    blocks = re.findall(r"<!-- (\w+)-steps:[^\n]*-->\n((?:\|[^\n]*\n)+)", README)
    assert {name for name, _ in blocks} >= {"sst2", "emotion"}
    for dataset, block in blocks:
        assert block == steps(dataset), dataset
        assert "finetuned+ts vs finetuned" in block


def test_versus_tables_match_committed_results():
    """The fine-tuned rung against frozen features of the same backbone on every dataset (issue 20's table)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from readme_tables import versus

    blocks = re.findall(r"<!-- versus ([\w+]+) ([\w+]+):[^\n]*-->\n((?:\|[^\n]*\n)+)", README)
    assert ("finetuned", "features_lr") in {(a, b) for a, b, _ in blocks}
    for rung, other, block in blocks:
        assert block == versus(rung, other), (rung, other)
        assert block.count("\n") >= 2 + 6  # header, rule and one row per dataset


EXTRA_EXPECTED = {  # issue 19's tables: what each must show, and the dataset one of them must be on
    "conformal": (("coverage (LAC)", "set size (class-wise LAC)"), "emotion"),
    "ensembles": (("disagreement", "mutual information"), "emotion"),
    "ood": (("AUROC (max-prob)", "AUROC (mutual info)"), "emotion-holdout-surprise"),
}


@pytest.mark.parametrize("kind", sorted(EXTRA_EXPECTED))
def test_extra_tables_match_committed_results(kind):
    """Conformal sets, ensembles and OOD detection (emotion with one class held out) as the leaderboard shows them."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from readme_tables import extra

    blocks = re.findall(rf"<!-- ([\w.+-]+)-{kind}:[^\n]*-->\n((?:\|[^\n]*\n)+)", README)
    columns, dataset = EXTRA_EXPECTED[kind]
    assert dataset in {name for name, _ in blocks}
    for name, block in blocks:
        assert block == extra(name, kind), name
        assert all(c in block for c in columns) and block.count("\n") >= 3


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
    [pairs] = run(
        [load_dataset("toy_pairs", data_dir=toy_data)],
        ["naive_bayes"],
        RunSettings(profile=get_profile("quick")),
        tmp_path,
    )
    assert pairs["status"] == "not_applicable"
