"""Multi-label decision thresholds and the mwml_tags split; sentence-pair features for every pair-capable rung."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from baselines.tfidf import TfidfLogisticRegression
from bench.data import load_dataset
from bench.evaluate.harness import RunSettings
from bench.evaluate.metrics import compute_scores, multi_label_scores
from bench.evaluate.thresholds import FIXED_THRESHOLD, MIN_POSITIVES, Thresholds, best_f1_threshold
from bench.pipeline import run
from bench.profiles import get_profile
from bench.rungs.registry import load_rung
from bench.store.results import ARTIFACT_DIR, ResultStore, to_json
from models.batching import encode
from models.char_cnn import SEP, CharCNN

# ------------------------------------------------------------------------------------------ thresholds


def test_best_f1_threshold_is_midway_below_the_best_cut():
    scores = np.array([0.05, 0.2, 0.3, 0.35, 0.6, 0.9])
    y = np.array([0, 0, 1, 1, 0, 1])
    # cuts: >=0.3 gives TP 3, FP 1 → F1 6/7, the best; midway to the next lower score 0.2
    assert best_f1_threshold(scores, y) == pytest.approx(0.25)
    t = best_f1_threshold(scores, y)
    assert f1_score(y, scores >= t) == pytest.approx(6 / 7)


def test_no_threshold_without_positives_or_when_all_scores_tie():
    assert best_f1_threshold(np.array([0.1, 0.7]), np.array([0, 0])) is None
    assert best_f1_threshold(np.zeros(5), np.array([0, 1, 0, 1, 0])) is None  # a silent rule stays silent


def test_per_label_thresholds_recover_each_labels_cut_and_rare_labels_use_the_global():
    rng = np.random.default_rng(0)
    n = 4000
    y = np.zeros((n, 3), dtype=int)
    y[:, 0] = rng.random(n) < 0.3
    y[:, 1] = rng.random(n) < 0.3
    y[:3, 2] = 1  # under MIN_POSITIVES positives
    # label 0 separates at 0.2, label 1 at 0.8: one global threshold cannot fit both
    probs = np.column_stack(
        [
            np.where(y[:, 0], rng.uniform(0.2, 0.4, n), rng.uniform(0.0, 0.2, n)),
            np.where(y[:, 1], rng.uniform(0.8, 1.0, n), rng.uniform(0.6, 0.8, n)),
            rng.random(n),
        ]
    )
    th = Thresholds.tune(probs, y)
    assert th.per_label[0] == pytest.approx(0.2, abs=0.01) and th.per_label[1] == pytest.approx(0.8, abs=0.01)
    assert 3 < MIN_POSITIVES and th.per_label[2] == th.global_
    scores = multi_label_scores(probs, y, ("a", "b", "c"), thresholds=th)
    assert scores["by_decision"]["per_label"]["f1_macro"] > scores["by_decision"]["global"]["f1_macro"]
    assert scores["threshold"] == th.global_ and scores["f1_micro"] == scores["by_decision"]["global"]["f1_micro"]
    fixed = (probs >= FIXED_THRESHOLD).astype(int)
    assert scores["by_decision"]["fixed"]["f1_weighted"] == pytest.approx(
        f1_score(y, fixed, average="weighted", zero_division=0)
    )
    per = (probs >= th.per_label).astype(int)
    assert scores["by_decision"]["per_label"]["f1_weighted"] == pytest.approx(
        f1_score(y, per, average="weighted", zero_division=0)
    )
    again = Thresholds.from_metrics(json.loads(json.dumps(scores)), ("a", "b", "c"))
    assert again.global_ == th.global_ and np.array_equal(again.per_label, th.per_label)


def test_harness_tunes_thresholds_on_validation_and_the_leaderboard_reports_both(toy_data, tmp_path):
    ds = load_dataset("toy_tags", data_dir=toy_data)
    results = {
        r["rung"]: r
        for r in run([ds], ["majority", "rules", "tfidf_lr"], RunSettings(profile=get_profile("quick")), tmp_path)
    }
    for r in results.values():
        m = r["metrics"]
        assert set(m["by_decision"]) == {"fixed", "global", "per_label"} and set(m["thresholds_per_label"]) == set(
            ds.spec.labels
        )
        assert 0 < m["threshold"] < 1
    # rules are 0/1 decisions: any tuned cut between them reproduces them
    assert results["rules"]["metrics"]["by_decision"]["global"] == results["rules"]["metrics"]["by_decision"]["fixed"]
    md = (tmp_path / "toy_tags" / "leaderboard.md").read_text()
    assert "weighted-F1 (per-label t)" in md and "Hamming" in md and "subset accuracy" in md
    tfidf = results["tfidf_lr"]["metrics"]
    assert f"{tfidf['f1_weighted']:.4f}" in md and f"{tfidf['by_decision']['per_label']['f1_weighted']:.4f}" in md
    # the thresholds came from the rung's validation predictions
    rung = load_rung(ResultStore(tmp_path).rung_dir("toy_tags", "tfidf_lr") / ARTIFACT_DIR)
    again = Thresholds.tune(rung.predict_proba(ds.validation.inputs), ds.validation.y)
    assert again.global_ == pytest.approx(tfidf["threshold"])
    assert list(again.per_label) == pytest.approx(list(tfidf["thresholds_per_label"].values()))


# ---------------------------------------------------------------------------------------- mwml split


def test_mwml_tags_split_is_70_15_15_stratified_and_deterministic(real_data_dir):
    a, b = load_dataset("mwml_tags", data_dir=real_data_dir), load_dataset("mwml_tags", data_dir=real_data_dir)
    sizes = [len(a.train), len(a.validation), len(a.test)]
    assert sum(sizes) == 2032 and all(abs(got - want) <= 3 for got, want in zip(sizes, [1422, 305, 305]))
    for name in ("train", "validation", "test"):
        assert a.splits[name].texts == b.splits[name].texts and np.array_equal(a.splits[name].y, b.splits[name].y)
    assert not set(a.train.texts) & set(a.test.texts) and not set(a.validation.texts) & set(a.test.texts)
    whole = np.concatenate([s.y for s in a.splits.values()])
    for split in a.splits.values():  # every tag's share is kept within 1.5 points, and every tag is in every split
        assert np.abs(split.y.mean(0) - whole.mean(0)).max() < 0.015
        assert (split.y.sum(0) > 0).all()


# ------------------------------------------------------------------------------------------- pairs


def test_tfidf_combined_pair_features_are_symmetric_and_see_overlap(toy_data):
    ds = load_dataset("toy_pairs", data_dir=toy_data)
    rung = TfidfLogisticRegression(c_grid=(1.0, 10.0), min_df=1).fit(ds.train, ds.validation)
    pairs = ds.test.inputs
    swapped = [(b, a) for a, b in pairs]
    assert np.allclose(rung.predict_proba(pairs), rung.predict_proba(swapped))
    same = rung._features([("other sentence 7", "other sentence 7")]).toarray()[0]
    cosines = same[-len(rung.blocks_) :]
    assert np.allclose(cosines, 1.0, atol=1e-5)  # identical texts: cosine 1 in the word and the char block
    half = (len(same) - len(cosines)) // 2
    assert not same[:half].any()  # |a - b| is zero
    assert (rung.predict_proba(ds.test.inputs).argmax(1) == ds.test.y).mean() > 0.9
    joined = TfidfLogisticRegression(c_grid=(1.0,), min_df=1, pair_features="joined").fit(ds.train, ds.validation)
    assert joined.n_features_ < rung.n_features_ and joined.fit_info()["pair_features"] == "joined"


def test_transformer_pair_encoding_keeps_both_segments_when_truncating(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    long = "word " * 100
    enc = encode(tok, [("short question?", long), (long, "short answer.")], max_length=32)
    assert enc.truncated == 2
    for ids, types in zip(enc.ids, enc.type_ids):
        assert len(ids) == 32 and ids.count(tok.sep_token_id) == 2 and ids[0] == tok.cls_token_id
        assert 0 in types and 1 in types and types == sorted(types)  # segment A then segment B
    plain = encode(tok, ["one sentence"], max_length=32)
    assert plain.ids[0].count(tok.sep_token_id) == 1


def test_char_cnn_joins_pairs_with_a_separator(toy_data):
    ds = load_dataset("toy_pairs", data_dir=toy_data)
    rung = CharCNN(min_steps=0, max_steps=5).fit(ds.train, ds.validation)
    ids = rung.encode_inputs([("ab", "ba")]).ids[0]
    assert len(ids) == 5 and ids[2] == SEP and ids[:2] == ids[3:][::-1]


def test_every_pair_rung_but_rules_runs_on_pairs(toy_data, tmp_path, tiny_bert):
    ds = load_dataset("toy_pairs", data_dir=toy_data)
    settings = RunSettings(
        profile=get_profile("quick"),
        options={
            "finetuned": {"model": tiny_bert, "max_length": 32},
            "features_lr": {"model": tiny_bert, "max_length": 32},
            "finetuned+mc": {"passes": 2},
        },
    )
    rungs = ["rules", "tfidf_lr", "char_cnn", "features_lr", "finetuned", "finetuned+mc", "finetuned+ts"]
    results = {r["rung"]: r for r in run([ds], rungs, settings, tmp_path)}
    assert results.pop("rules")["status"] == "not_applicable"
    store = ResultStore(tmp_path)
    for name, r in results.items():
        assert r["status"] == "ok", (name, r.get("error"))
        probs, labels = store.load_predictions("toy_pairs", name)
        assert probs.shape == (len(ds.test), 2) and np.array_equal(labels, ds.test.y)
        recomputed = compute_scores(ds.spec, probs, labels, thresholds=None)
        assert json.loads(to_json(r["metrics"])) == json.loads(
            to_json(recomputed)
        )  # stored scores are these predictions'
    # a pair is a paraphrase exactly when its two texts are equal: TF-IDF's pair features must see both texts
    assert results["tfidf_lr"]["metrics"]["accuracy"] >= 0.9


def test_multilabel_head_starts_at_the_label_prior(tiny_bert):
    import torch

    from models.finetune import start_at_prior
    from models.hf import load_classifier

    y = np.array([[1, 0], [1, 1], [0, 0], [1, 0]])
    module = load_classifier(tiny_bert, 2, True)
    start_at_prior(module, y)
    with torch.no_grad():
        probs = torch.sigmoid(module.classifier.bias).numpy()
    assert probs == pytest.approx([0.75, 0.25], rel=1e-5)


def test_features_lr_embeds_pairs_jointly_or_separately(tiny_bert, toy_data):
    from models.features import FeaturesLR, combine_embeddings

    ds = load_dataset("toy_pairs", data_dir=toy_data)
    joint = FeaturesLR(model=tiny_bert, max_length=32, use_cache=False).fit(ds.train, ds.validation)
    separate = FeaturesLR(model=tiny_bert, max_length=32, use_cache=False, pair_features="separate").fit(
        ds.train, ds.validation
    )
    pairs = ds.test.inputs
    hidden = joint.embed(pairs).shape[1]
    assert joint.vectors(pairs).shape == (len(pairs), hidden)  # one embedding of "[CLS] a [SEP] b [SEP]"
    assert separate.vectors(pairs).shape == (len(pairs), 2 * hidden + 1)
    swapped = [(b, a) for a, b in pairs]
    assert np.allclose(separate.predict_proba(pairs), separate.predict_proba(swapped), atol=1e-6)
    assert separate.fit_info()["pair_features"] == "separate"
    u = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert np.allclose(combine_embeddings(u, u)[:, -1], 1.0) and not combine_embeddings(u, u)[:, :2].any()
