"""The MC-Dropout sweep on a tiny BERT: table shape, nested estimates, files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.cli import main
from bench.data import load_dataset
from bench.evaluate.harness import RunSettings
from bench.evaluate.sweep import sweep_mc, write_sweep
from bench.profiles import apply_profile, get_profile
from bench.store.results import ResultStore


def test_sweep_summary_and_files(tiny_bert, toy_data, tmp_path):
    settings = RunSettings(profile=get_profile("quick"), options={"finetuned": {"model": tiny_bert, "max_length": 32}})
    ds = apply_profile(load_dataset("toy_sentiment", data_dir=toy_data), settings.profile)
    result = sweep_mc(ds, settings, ResultStore(tmp_path), [4, 1, 2], repeats=2)
    assert [row["passes"] for row in result["summary"]] == [1, 2, 4]
    assert len(result["runs"]) == 6 and {r["repeat"] for r in result["runs"]} == {0, 1}
    runs = pd.DataFrame(result["runs"])
    for row in result["summary"]:  # the summary is the mean and sd over the repeats of each pass count
        same = runs[runs["passes"] == row["passes"]]
        assert row["ece_mean"] == pytest.approx(same["ece"].mean()) and row["ece_std"] == pytest.approx(
            same["ece"].std()
        )
        assert row["accuracy_mean"] == pytest.approx(same["accuracy"].mean())
    # each repeat draws its own dropout masks: the 4-pass estimates of the two repeats differ
    four = runs[runs["passes"] == 4].set_index("repeat")["ece"]
    assert four[0] != four[1]
    assert result["rung"] == "finetuned+mc" and result["base"] == "finetuned"
    json_path, md_path = write_sweep(result, tmp_path / "toy_sentiment")
    assert json.loads(json_path.read_text())["iterations"] == [1, 2, 4]
    assert "± " in md_path.read_text() and "Deterministic" in md_path.read_text()


def test_sweep_cli_rejects_bad_iterations(toy_data, tmp_path, capsys):
    code = main(
        [
            "sweep-mc",
            "--dataset",
            "toy_sentiment",
            "--data-dir",
            str(toy_data),
            "--iterations",
            "1,x",
            "--output",
            str(tmp_path),
        ]
    )
    assert code == 2 and "--iterations must be comma-separated integers" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0,5", ""])
def test_sweep_rejects_non_positive(tiny_bert, toy_data, tmp_path, bad):
    from bench.errors import BenchError

    settings = RunSettings(profile=get_profile("quick"), options={"finetuned": {"model": tiny_bert}})
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    with pytest.raises(BenchError):
        sweep_mc(ds, settings, ResultStore(tmp_path), [int(v) for v in bad.split(",") if v], repeats=1)
