"""Deep ensembles: members at consecutive seeds, reused from the store; an ensemble of identical members equals its
member; the diversity metrics against brute force; members stored and rescored."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.cli import main
from bench.data import load_dataset
from bench.evaluate import diversity, ood
from bench.evaluate.harness import RunSettings, base_cells, config_for
from bench.execute import Cell, plan_cells
from bench.profiles import get_profile
from bench.rungs import registry
from bench.store.results import ResultStore, base_key, parse_base_key
from models.ensemble import DeepEnsemble


@pytest.fixture
def stratified_ensemble():
    """``stratified+ens``: three seeds of the stratified baseline (one-hot draws: members that disagree)."""
    registry.register_rung(
        "stratified+ens",
        "models.ensemble:DeepEnsemble",
        family="chance+ensemble",
        description="test ensemble",
        bases=["stratified"],
        members="members",
        profiles={"quick": {"members": 3}},
    )
    registry.register_rung(
        "stratified+ens+x",
        "models.temperature:TemperatureScaled",
        family="chance+ensemble",
        description="a wrapper over the test ensemble",
        bases=["stratified+ens"],
    )
    yield "stratified+ens"
    registry.unregister_rung("stratified+ens+x")
    registry.unregister_rung("stratified+ens")


def _random_members(rng: np.random.Generator, k: int, n: int, c: int) -> np.ndarray:
    return rng.dirichlet(np.full(c, 0.3), size=(k, n))


def test_diversity_against_brute_force():
    rng = np.random.default_rng(0)
    members = _random_members(rng, 4, 50, 3)
    mean = members.mean(axis=0)

    def h(p: np.ndarray) -> float:
        return -sum(x * np.log(x) for x in p if x > 0)

    mi = [h(mean[i]) - np.mean([h(m[i]) for m in members]) for i in range(50)]
    np.testing.assert_allclose(diversity.mutual_information(members), mi, atol=1e-12)
    votes = members.argmax(axis=-1)
    pairs = [np.mean([votes[a, i] != votes[b, i] for a, b in itertools.combinations(range(4), 2)]) for i in range(50)]
    np.testing.assert_allclose(diversity.disagreement(members), pairs, atol=1e-12)
    summary = diversity.summary(members)
    assert summary["predictive_entropy"] == pytest.approx(summary["expected_entropy"] + summary["mutual_information"])
    # multi-label: each label a yes/no decision
    sig = rng.uniform(size=(3, 20, 4))
    binary = np.stack([sig, 1 - sig], axis=-1).reshape(3, 80, 2)
    np.testing.assert_allclose(diversity.mutual_information(sig, True), diversity.mutual_information(binary))
    assert diversity.disagreement(members[:1]).max() == 0.0  # one member agrees with itself


def test_ood_mutual_information_equals_sklearn():
    rng = np.random.default_rng(1)
    inside, outside = _random_members(rng, 3, 60, 4), _random_members(rng, 3, 15, 4)
    found = ood.detection(inside.mean(axis=0), outside.mean(axis=0), inside, outside)
    scores = np.r_[diversity.mutual_information(inside), diversity.mutual_information(outside)]
    expected = roc_auc_score(np.r_[np.zeros(60), np.ones(15)], scores)
    assert found["mutual_information"]["auroc"] == pytest.approx(expected, abs=1e-12)
    assert "mutual_information" not in ood.detection(inside.mean(axis=0), outside.mean(axis=0))


def test_an_ensemble_of_identical_members_equals_its_member(toy_data):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    member = registry.create_rung("tfidf_lr", context={"seed": 0}).fit(ds.train, ds.validation)
    ensemble = DeepEnsemble([member, member, member], members=3).fit(ds.train, ds.validation)
    inputs = ds.test.inputs
    np.testing.assert_allclose(ensemble.predict_proba(inputs), member.predict_proba(inputs), atol=1e-12)
    np.testing.assert_array_equal(ensemble.predict_proba(inputs).argmax(1), member.predict_proba(inputs).argmax(1))
    found = diversity.summary(ensemble.predict_members(inputs))
    assert found["members"] == 3 and found["disagreement"] == 0.0 and found["mutual_information"] < 1e-12
    with pytest.raises(ValueError, match="3 members got 2"):
        DeepEnsemble([member, member], members=3).fit(ds.train, ds.validation)


def test_whole_split_memo_is_off_while_timed(toy_data):
    """The members' probabilities of a whole split are memoised (the harness asks for members, then their mean),
    but not while timing (caches off): a repeated throughput batch must run every member again."""
    from bench import cache

    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    member = registry.create_rung("tfidf_lr", context={"seed": 0}).fit(ds.train, ds.validation)
    calls = []
    original = member.predict_proba
    member.predict_proba = lambda xs: (calls.append(len(xs)), original(xs))[1]
    ensemble = DeepEnsemble([member, member], members=2).fit(ds.train, ds.validation)
    batch = [ds.test.inputs[i % len(ds.test.inputs)] for i in range(300)]
    first = ensemble.predict_proba(batch)
    np.testing.assert_array_equal(ensemble.predict_proba(batch), first)
    assert calls == [300, 300]  # the second call read the memo
    with cache.disabled():
        np.testing.assert_array_equal(ensemble.predict_proba(batch), first)
        ensemble.predict_proba(batch)
    assert calls == [300] * 6


def test_members_are_the_base_at_consecutive_seeds(stratified_ensemble, toy_data):
    settings = RunSettings(get_profile("quick"), seed=4)
    assert base_cells(stratified_ensemble, settings) == [("stratified", 4), ("stratified", 5), ("stratified", 6)]
    settings = RunSettings(get_profile("quick"), seed=4, options={stratified_ensemble: {"members": 2}})
    assert base_cells(stratified_ensemble, settings) == [("stratified", 4), ("stratified", 5)]
    assert base_cells("stratified", settings) == [] and base_cells("tfidf_lr+ts", settings) == [("tfidf_lr", 4)]
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    config = config_for(stratified_ensemble, ds, settings)
    assert len(config["bases"]) == 2 and config["bases"][0] != config["bases"][1]  # one hash per member seed
    cells = plan_cells(["d"], ["majority", stratified_ensemble], [0, 1], RunSettings(get_profile("quick")))
    assert cells == [
        Cell("d", "majority", 0),
        *(Cell("d", "stratified", s) for s in (0, 1, 2)),
        Cell("d", stratified_ensemble, 0),
        Cell("d", "stratified", 3),
        Cell("d", stratified_ensemble, 1),
    ]  # each member once, before the first ensemble that needs it
    wrapped = plan_cells(["d"], ["tfidf_lr+ts", f"{stratified_ensemble}+x"], [0], RunSettings(get_profile("quick")))
    assert wrapped == [
        Cell("d", "tfidf_lr+ts", 0),
        *(Cell("d", "stratified", s) for s in (0, 1, 2)),
        Cell("d", f"{stratified_ensemble}+x", 0),
    ]  # a wrapper over an ensemble brings the ensemble's members; a plain wrapper brings nothing
    assert parse_base_key(base_key("a+b", 3, 1), 1) == ("a+b", 3) and parse_base_key("a+b", 1) == ("a+b", 1)


def test_ensemble_run_stores_members_reuses_them_and_rescores(stratified_ensemble, toy_data, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", "--models", stratified_ensemble, "--data-dir", str(toy_data), "--datasets", "toy_sentiment"]
    assert main([*args, "--output", str(out), "--profile", "quick", "--seeds", "0"]) == 0
    store = ResultStore(out)
    seeds = sorted(r["config"]["seed"] for r in store.seed_results("toy_sentiment")["stratified"])
    assert seeds == [0, 1, 2]  # every member stored as the base's own result
    result = store.read("toy_sentiment", stratified_ensemble)
    assert result["status"] == "ok"
    assert set(result["base_artifacts"]) == {"stratified", "stratified seed 1", "stratified seed 2"}
    assert all(result["base_artifacts"].values())  # built on the stored members, none fitted again
    stored = store.load_all_predictions("toy_sentiment", stratified_ensemble)
    members = [store.load_predictions("toy_sentiment", "stratified", s)[0] for s in (0, 1, 2)]
    np.testing.assert_allclose(stored.members, np.stack(members))
    np.testing.assert_allclose(stored.probs, np.mean(members, axis=0))
    found = result["metrics"]["ensemble"]
    assert found["members"] == 3 and 0 < found["disagreement"] <= 1 and found["mutual_information"] > 0
    assert found == pytest.approx(diversity.summary(np.stack(members)))
    board = (out / "toy_sentiment" / "leaderboard.md").read_text()
    assert "## Ensembles" in board and stratified_ensemble in board
    capsys.readouterr()
    assert main([*args, "--output", str(out), "--profile", "quick", "--seeds", "0"]) == 0
    assert store.read("toy_sentiment", stratified_ensemble)["created_at"] == result["created_at"]  # current: reused
    assert main(["rescore", "--output", str(out)]) == 0
    assert store.read("toy_sentiment", stratified_ensemble)["metrics"] == result["metrics"]
