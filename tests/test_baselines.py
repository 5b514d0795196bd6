"""Classical rungs: chance semantics, rules on each lexicon, TF-IDF + logistic regression."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.chance import ChanceClassifier, text_uniforms
from baselines.lexicons import KeywordTagger
from baselines.rules import RuleClassifier, choose_source
from baselines.tfidf import TfidfLogisticRegression
from bench.data import Split, TaskSpec, load_dataset
from bench.errors import NotApplicable
from tests.conftest import TAGS_RULES


def _split(texts, y, spec, name="train"):
    return Split(name, spec, tuple(texts), np.asarray(y))


SPEC3 = TaskSpec("t", "single-label", ("a", "b", "c"))


def test_uniform_random_is_deterministic_per_text_and_uniform():
    texts = [f"text {i}" for i in range(6000)]
    train = _split(texts[:30], [0, 1, 2] * 10, SPEC3)
    rung = ChanceClassifier("uniform", seed=1).fit(train, train)
    probs = rung.predict_proba(texts)
    assert np.allclose(probs, 1 / 3, atol=1e-6) and np.allclose(probs.sum(1), 1)
    shares = np.bincount(probs.argmax(1), minlength=3) / len(texts)
    assert np.abs(shares - 1 / 3).max() < 0.03
    assert np.array_equal(rung.predict_proba(texts[10:20]), probs[10:20])  # batch-independent
    other = ChanceClassifier("uniform", seed=2).fit(train, train).predict_proba(texts)
    assert (other.argmax(1) != probs.argmax(1)).mean() > 0.5


def test_stratified_follows_prior_and_majority_uses_it():
    y = [0] * 60 + [1] * 30 + [2] * 10
    train = _split([f"t{i}" for i in range(100)], y, SPEC3)
    texts = [f"x{i}" for i in range(5000)]
    strat = ChanceClassifier("stratified").fit(train, train).predict_proba(texts)
    assert set(np.unique(strat)) <= {0.0, 1.0} and np.allclose(strat.sum(1), 1)
    assert np.abs(strat.mean(0) - [0.6, 0.3, 0.1]).max() < 0.03
    major = ChanceClassifier("majority").fit(train, train).predict_proba(texts[:5])
    assert np.allclose(major, [0.6, 0.3, 0.1]) and (major.argmax(1) == 0).all()


def test_chance_multilabel():
    spec = TaskSpec("m", "multi-label", ("x", "y"))
    y = np.array([[1, 0]] * 8 + [[1, 1]] * 2)
    train = Split("train", spec, tuple(f"t{i}" for i in range(10)), y)
    texts = [f"q{i}" for i in range(4000)]
    assert np.allclose(ChanceClassifier("majority").fit(train, train).predict_proba(texts[:2]), [1.0, 0.2])
    strat = ChanceClassifier("stratified").fit(train, train).predict_proba(texts)
    assert strat[:, 0].all() and abs(strat[:, 1].mean() - 0.2) < 0.03
    uni = ChanceClassifier("uniform").fit(train, train).predict_proba(texts)
    assert abs((uni >= 0.5).mean() - 0.5) < 0.03


def test_text_uniforms_range_and_independence():
    u = text_uniforms([f"a{i}" for i in range(2000)], 3, seed=0)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.1


def test_rules_vader_on_sentiment(toy_data):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    rung = RuleClassifier().fit(ds.train, ds.validation)
    assert rung.fit_info() == {"source": "vader"}
    probs = rung.predict_proba(["a wonderful, brilliant film", "an awful, boring mess", "the film is ninety minutes"])
    assert probs[0, 1] > 0.7 and probs[1, 0] > 0.7
    assert np.allclose(probs[2], ds.train.class_counts() / len(ds.train))  # no evidence → prior
    acc = (rung.predict_proba(ds.test.inputs).argmax(1) == ds.test.y).mean()
    assert acc > 0.8


def test_rules_nrc_on_emotion_labels():
    spec = TaskSpec("emo", "single-label", ("sadness", "joy", "love", "anger", "fear", "surprise"))
    assert choose_source(spec) == "nrc"
    train = _split([f"t{i}" for i in range(12)], list(range(6)) * 2, spec)
    rung = RuleClassifier().fit(train, train)
    probs = rung.predict_proba(
        [
            "i feel so furious and angry",
            "i am afraid, full of fear and panic",
            "i was surprised",
            "the table is on the floor",
        ]
    )
    assert probs.argmax(1).tolist()[:3] == [3, 4, 5]
    assert np.allclose(probs[3], 1 / 6)  # no lexicon hit: the (here uniform) prior


def test_keyword_rules_stem_aliases_and_add_parents(tmp_path):
    path = tmp_path / "rules.json"
    import json

    path.write_text(json.dumps(TAGS_RULES))
    labels = ["computer-vision", "deep-learning", "object-detection", "pytorch", "tensorflow"]
    tagger = KeywordTagger(path, labels)
    assert tagger.tags("Detecting objects with Torch") >= {
        "object-detection",
        "computer-vision",
        "pytorch",
        "deep-learning",
    }
    assert "tensorflow" not in tagger.tags("Object detection with Torch")
    assert tagger.tags("a tftp server") == set()  # whole words only: 'tf' is not in 'tftp'
    assert tagger.scores(["image recognition demos"]).tolist() == [[1, 0, 0, 0, 0]]


def test_rules_not_applicable():
    with pytest.raises(NotApplicable, match="sentence pairs"):
        choose_source(TaskSpec("p", "sentence-pair", ("a", "b"), ("text", "text_pair")))
    with pytest.raises(NotApplicable, match="no rules"):
        choose_source(TaskSpec("topics", "single-label", ("World", "Sports", "Business")))


@pytest.mark.parametrize("name", ["toy_sentiment", "toy_topics", "toy_pairs", "toy_tags"])
def test_tfidf_learns_and_exposes_consistent_logits(toy_data, name):
    ds = load_dataset(name, data_dir=toy_data)
    rung = TfidfLogisticRegression(c_grid=(1.0, 10.0), min_df=1).fit(ds.train, ds.validation)
    probs = rung.predict_proba(ds.test.inputs)
    logits = rung.predict_logits(ds.test.inputs)
    assert probs.shape == logits.shape == (len(ds.test), ds.spec.n_classes)
    if ds.spec.multilabel:
        assert np.allclose(probs, 1 / (1 + np.exp(-logits)), atol=1e-6)
        assert ((probs >= 0.5) == ds.test.y).mean() > 0.8
    else:
        soft = np.exp(logits - logits.max(1, keepdims=True))
        assert np.allclose(probs, soft / soft.sum(1, keepdims=True), atol=1e-6)
        assert (probs.argmax(1) == ds.test.y).mean() > 0.7
    info = rung.fit_info()
    assert info["C"] in (1.0, 10.0) and set(info["grid"]) == {"1", "10"}
    assert rung.num_parameters() > 0
