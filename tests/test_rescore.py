"""bench rescore: results stored by the older layout are re-keyed to the current one; missing predictions keep
their metrics; an unreadable stored base is fitted again rather than failing its wrapper."""

from __future__ import annotations

import json

from bench.cli import main
from bench.data import load_dataset
from bench.evaluate.harness import RunSettings, config_for, config_hash
from bench.pipeline import run
from bench.profiles import apply_profile, get_profile
from bench.store.results import ResultStore, to_json

QUICK = RunSettings(profile=get_profile("quick"))


def _old_layout(result: dict, base_hash: str | None) -> dict:
    """A result as the previous bench stored it: one ``base`` hash, per-rung options inside the profile."""
    config = {k: v for k, v in result["config"].items() if k != "bases"}
    config["base"] = base_hash
    config["profile"] = {**config["profile"], "rung_options": {"some_rung": {"epochs": 1}}}
    old = {k: v for k, v in result.items() if k not in ("bases", "metrics_version")}
    return {**old, "config": config, "config_hash": config_hash(config)}


def test_rescore_rekeys_old_layout_results_so_a_run_reuses_them(toy_data, tmp_path, capsys):
    ds = apply_profile(load_dataset("toy_sentiment", data_dir=toy_data), QUICK.profile)
    results = {r["rung"]: r for r in run([ds], ["tfidf_lr", "tfidf_lr+ts"], QUICK, tmp_path)}
    store = ResultStore(tmp_path)
    base_old = _old_layout(results["tfidf_lr"], None)
    store.rewrite(base_old)
    store.rewrite(_old_layout(results["tfidf_lr+ts"], base_old["config_hash"]))
    assert not store.is_current(ds.name, "tfidf_lr", config_hash(config_for("tfidf_lr", ds, QUICK)))

    assert main(["rescore", "--output", str(tmp_path)]) == 0
    for rung in ("tfidf_lr", "tfidf_lr+ts"):
        assert store.is_current(ds.name, rung, config_hash(config_for(rung, ds, QUICK)))
        migrated = store.read(ds.name, rung)
        assert migrated["metrics"] == json.loads(to_json(results[rung]["metrics"]))
    assert store.read(ds.name, "tfidf_lr+ts")["bases"] == ["tfidf_lr"]
    capsys.readouterr()
    again = run([ds], ["tfidf_lr", "tfidf_lr+ts"], QUICK, tmp_path)  # nothing refitted: both are current
    assert [r["created_at"] for r in again] == [results[r]["created_at"] for r in ("tfidf_lr", "tfidf_lr+ts")]


def test_rescore_keeps_metrics_where_predictions_are_missing(toy_data, tmp_path, capsys):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    [result] = run([ds], ["majority"], QUICK, tmp_path)
    (tmp_path / ds.name / "majority" / "seed-0" / "predictions.npz").unlink()
    assert main(["rescore", "--output", str(tmp_path)]) == 0
    assert "no predictions.npz" in capsys.readouterr().out
    assert ResultStore(tmp_path).read(ds.name, "majority")["metrics"] == json.loads(to_json(result["metrics"]))


def test_a_changed_stored_base_is_fitted_again(toy_data, tmp_path, caplog):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    run([ds], ["tfidf_lr"], QUICK, tmp_path)
    for f in (tmp_path / ds.name / "tfidf_lr" / "seed-0" / "artifact").iterdir():
        f.write_bytes(b"not an artifact")
    [wrapped] = run([ds], ["tfidf_lr+ts"], QUICK, tmp_path)
    assert wrapped["status"] == "ok" and wrapped["fit_info"]["reused_fit_seconds"] == 0
    assert "not the one its result names" in caplog.text and wrapped["base_artifacts"] == {"tfidf_lr": None}


def test_alpha_is_a_scoring_setting_rescore_changes_it_and_a_run_keeps_the_fit(toy_data, tmp_path, capsys):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    [first] = run([ds], ["tfidf_lr"], RunSettings(profile=get_profile("quick"), conformal_alpha=0.2), tmp_path)
    assert first["metrics"]["conformal"]["alpha"] == 0.2
    assert main(["rescore", "--output", str(tmp_path)]) == 0  # the stored alpha is kept
    assert ResultStore(tmp_path).read(ds.name, "tfidf_lr")["metrics"]["conformal"]["alpha"] == 0.2
    assert main(["rescore", "--output", str(tmp_path), "--alpha", "0.05"]) == 0
    rescored = ResultStore(tmp_path).read(ds.name, "tfidf_lr")
    assert rescored["metrics"]["conformal"]["alpha"] == 0.05
    assert rescored["metrics"]["conformal"]["lac"]["coverage"] >= first["metrics"]["conformal"]["lac"]["coverage"]
    assert rescored["metrics"]["f1_macro"] == first["metrics"]["f1_macro"]
    assert "conformal" in (tmp_path / ds.name / "leaderboard.md").read_text()
    capsys.readouterr()
    assert main(["rescore", "--output", str(tmp_path), "--alpha", "0"]) == 2
    assert "a miscoverage between 0 and 1" in capsys.readouterr().err
