"""Out-of-distribution detection: holding classes out, the card's out-of-scope label, the metric against
scikit-learn, and the whole path from `bench run --holdout-classes` to the stored table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.cli import main
from bench.data import load_dataset
from bench.data.ood import hold_out, holdout_name
from bench.data.spec import TaskSpec
from bench.errors import DataError
from bench.evaluate import ood
from bench.evaluate.metrics import Predictions, score
from bench.store.results import ResultStore
from tests.conftest import write_dataset


def test_holding_a_class_out_removes_it_from_training_and_makes_its_test_rows_ood(toy_data):
    ds = load_dataset("toy_topics", data_dir=toy_data)
    out = hold_out(ds, ["Sports"])
    assert out.name == "toy_topics-holdout-Sports" == holdout_name("toy_topics", ["Sports"])
    assert out.spec.labels == ("World", "Business") and out.ood is not None
    for key in ("train", "validation", "test"):
        kept = [t for t in ds.splits[key].texts if "football" not in t]
        assert list(out.splits[key].texts) == kept  # order kept, the held-out rows gone
        labels = [out.spec.labels[i] for i in out.splits[key].y]
        assert labels == ["Business" if "stocks" in t else "World" for t in kept]  # re-indexed to the new labels
    assert all("football" in t for t in out.ood.texts) and len(out.ood) == sum("football" in t for t in ds.test.texts)
    assert out.ood.spec.labels == ("Sports",) and set(out.ood.y) == {0}
    assert out.fingerprint != ds.fingerprint and any("held out" in n for n in out.notes)


@pytest.mark.parametrize(
    ("dataset", "classes", "message"),
    [
        ("toy_topics", ["Weather"], "no class 'Weather'"),
        ("toy_topics", ["World", "Sports"], "leaves 1 class(es)"),
        ("toy_tags", ["pytorch"], "single-label"),
    ],
)
def test_bad_holdouts_say_why(toy_data, dataset, classes, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hold_out(load_dataset(dataset, data_dir=toy_data), classes)


def test_a_cards_out_of_scope_label_is_held_out_under_the_datasets_own_name(tmp_path):
    rows = [{"text": f"{w} {i}", "label": lab} for i in range(30) for w, lab in [("hi", "greet"), ("bye", "leave")]]
    oos = [{"text": f"weather {i}", "label": "oos"} for i in range(10)]
    card = {"task": "single-label", "labels": ["greet", "leave", "oos"], "out_of_scope": "oos"}
    write_dataset(tmp_path, "intents", card, {"train": rows[:40] + oos[:4], "test": rows[40:] + oos[4:]})
    ds = load_dataset("intents", data_dir=tmp_path)
    assert ds.name == "intents" and ds.spec.labels == ("greet", "leave") and len(ds.ood) == 6
    write_dataset(tmp_path, "broken", {**card, "out_of_scope": "nope"}, {"train": rows[:40], "test": rows[40:]})
    with pytest.raises(DataError, match="out_of_scope 'nope' is not one of its labels"):
        load_dataset("broken", data_dir=tmp_path)


def test_ood_scores_equal_sklearns_on_the_same_scores():
    rng = np.random.default_rng(0)
    inside = rng.dirichlet(np.full(4, 0.3), size=300)  # confident
    outside = rng.dirichlet(np.full(4, 2.0), size=120)  # unsure
    found = ood.detection(inside, outside)
    is_ood = np.r_[np.zeros(300), np.ones(120)]
    for name, fn in (("msp", lambda p: 1 - p.max(axis=1)), ("entropy", lambda p: -(p * np.log(p)).sum(axis=1))):
        s = np.r_[fn(inside), fn(outside)]
        assert found[name]["auroc"] == pytest.approx(roc_auc_score(is_ood, s), abs=1e-12)
        assert found[name]["aupr"] == pytest.approx(average_precision_score(is_ood, s), abs=1e-12)
        threshold = np.sort(fn(outside))[int(np.floor(0.05 * 120))]  # 95% of OOD at or above it
        assert found[name]["fpr_at_95_tpr"] == pytest.approx(np.mean(fn(inside) >= threshold), abs=1e-12)
    assert found["msp"]["auroc"] > 0.8 and (found["n_in"], found["n_out"]) == (300, 120)
    for name in ("msp", "entropy"):
        assert found[name]["auroc_low"] < found[name]["auroc"] < found[name]["auroc_high"]
    ties = rng.integers(0, 4, size=(2, 50)).astype(float)  # the bootstrap's rank form equals sklearn, ties included
    assert ood.auroc(ties[0], ties[1]) == pytest.approx(roc_auc_score(np.r_[np.ones(50), np.zeros(50)], ties.ravel()))
    wide = ood.detection(inside[:40], outside[:8])["msp"]
    assert wide["auroc_high"] - wide["auroc_low"] > found["msp"]["auroc_high"] - found["msp"]["auroc_low"]
    assert ood.fpr_at_tpr(np.r_[0, 0, 1, 1], np.r_[0.1, 0.2, 0.8, 0.9]) == 0.0  # perfectly separated
    spec = TaskSpec("t", "single-label", ("a", "b", "c", "d"))
    assert "ood" not in score(Predictions(spec, inside, inside.argmax(axis=1)))  # no OOD examples: no entry


def test_run_with_holdout_stores_ood_predictions_and_the_table(toy_data, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", "--models", "majority,tfidf_lr", "--data-dir", str(toy_data), "--datasets", "toy_topics"]
    assert main([*args, "--holdout-classes", "Sports", "--output", str(out), "--profile", "quick"]) == 0
    name = "toy_topics-holdout-Sports"
    store = ResultStore(out)
    result = store.read(name, "tfidf_lr")
    probs, labels, ood_probs, *_ = store.load_all_predictions(name, "tfidf_lr")
    assert probs.shape[1] == 2 and ood_probs is not None and ood_probs.shape == (result["data"]["ood"], 2)
    is_ood = np.r_[np.zeros(len(probs)), np.ones(len(ood_probs))]
    msp = 1 - np.r_[probs.max(axis=1), ood_probs.max(axis=1)]
    assert result["metrics"]["ood"]["msp"]["auroc"] == pytest.approx(roc_auc_score(is_ood, msp), abs=1e-12)
    assert result["data"]["held_out"] == ["Sports"]
    board = (out / name / "leaderboard.md").read_text()
    assert "## Out-of-distribution detection" in board and "AUROC (max-prob)" in board
    page = (out / name / "report.html").read_text()
    assert "Out-of-distribution detection" in page and "news story" in page  # the texts are found again
    before = json.dumps(result["metrics"]["ood"])
    assert main(["rescore", "--output", str(out)]) == 0  # recomputed from the stored OOD predictions
    assert json.dumps(store.read(name, "tfidf_lr")["metrics"]["ood"]) == before
    capsys.readouterr()
    assert main([*args, "--holdout-classes", "Weather", "--output", str(out)]) == 2
    assert "no class 'Weather'" in capsys.readouterr().err
