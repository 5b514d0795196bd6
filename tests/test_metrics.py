"""Metrics cross-checked against baal, torchmetrics and scikit-learn on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import f1_score, hamming_loss, precision_recall_fscore_support
from torchmetrics.functional.classification import binary_calibration_error, multiclass_calibration_error

from bench.data import TaskSpec
from bench.evaluate.calibration import calibration_error, equal_mass_ids, top_label
from bench.evaluate.metrics import compute_scores, multi_label_scores, single_label_scores

TOL = 1e-9


@st.composite
def predictions(draw, max_n: int = 200, max_c: int = 6):
    """Random probabilities (softmax of random logits) and labels."""
    n = draw(st.integers(2, max_n))
    c = draw(st.integers(2, max_c))
    logits = draw(arrays(np.float64, (n, c), elements=st.floats(-8, 8, allow_nan=False)))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    y = draw(arrays(np.int64, n, elements=st.integers(0, c - 1)))
    bins = draw(st.integers(1, 25))
    return probs, y, bins


def _off_edges(conf: np.ndarray, bins: int) -> bool:
    """Confidences not within 1e-9 of a bin edge, where float rounding decides the bin differently per library."""
    scaled = conf * bins
    return bool(np.all(np.abs(scaled - np.round(scaled)) > 1e-9 * bins))


@settings(max_examples=150, deadline=None)
@given(predictions())
def test_ece_and_mce_match_torchmetrics(pred):
    probs, y, bins = pred
    conf, correct = top_label(probs, y)
    assume(_off_edges(conf, bins))
    c, k = torch.from_numpy(conf), torch.from_numpy(correct.astype(np.int64))
    ece_tm = binary_calibration_error(c, k, n_bins=bins, norm="l1").item()
    mce_tm = binary_calibration_error(c, k, n_bins=bins, norm="max").item()
    assert calibration_error(conf, correct, bins) == pytest.approx(ece_tm, abs=TOL)
    assert calibration_error(conf, correct, bins, norm="max") == pytest.approx(mce_tm, abs=TOL)
    # torchmetrics' multiclass path computes in float32: agreement to float32 precision
    ece_mc = multiclass_calibration_error(
        torch.from_numpy(probs), torch.from_numpy(y), num_classes=probs.shape[1], n_bins=bins
    ).item()
    assert single_label_scores(probs, y, tuple(map(str, range(probs.shape[1]))), bins)["ece"] == pytest.approx(
        ece_mc, abs=1e-5
    )


@settings(max_examples=150, deadline=None)
@given(predictions())
def test_ece_matches_baal(pred):
    from baal.utils.metrics import ECE

    probs, y, bins = pred
    conf, correct = top_label(probs, y)
    assume(conf.max() < 0.9999 and _off_edges(conf, bins))  # baal clips confidences at 0.9999
    metric = ECE(n_bins=bins)
    metric.update(torch.from_numpy(probs), torch.from_numpy(y))
    assert calibration_error(conf, correct, bins) == pytest.approx(metric.value, abs=TOL)


def _adaptive_reference(conf: np.ndarray, correct: np.ndarray, bins: int) -> float:
    order = np.argsort(conf, kind="stable")
    edges = [len(conf) * b // bins for b in range(bins + 1)]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi > lo:
            idx = order[lo:hi]
            total += (hi - lo) * abs(correct[idx].mean() - conf[idx].mean())
    return total / len(conf)


@settings(max_examples=100, deadline=None)
@given(predictions())
def test_adaptive_ece_equal_mass(pred):
    probs, y, bins = pred
    conf, correct = top_label(probs, y)
    assert calibration_error(conf, correct, bins, binning="mass") == pytest.approx(
        _adaptive_reference(conf, correct, bins), abs=TOL
    )
    counts = np.bincount(equal_mass_ids(conf, bins), minlength=bins)
    assert counts.max() - counts[counts > 0].min() <= 1


@settings(max_examples=100, deadline=None)
@given(predictions())
def test_single_label_scores_match_sklearn_and_definitions(pred):
    probs, y, bins = pred
    c = probs.shape[1]
    scores = single_label_scores(probs, y, tuple(f"c{i}" for i in range(c)), bins)
    pred_cls = probs.argmax(1)
    assert scores["accuracy"] == pytest.approx(np.mean(pred_cls == y), abs=TOL)
    for avg, labels in (("macro", np.unique(y).tolist()), ("weighted", list(range(c)))):
        ref = f1_score(y, pred_cls, labels=labels, average=avg, zero_division=0)  # macro: the classes in y
        assert scores[f"f1_{avg}"] == pytest.approx(ref, abs=TOL)
    onehot = np.eye(c)[y]
    brier_ref = np.mean(np.sum((probs - onehot) ** 2, axis=1)) / (2 if c == 2 else 1)
    assert scores["brier"] == pytest.approx(brier_ref, abs=TOL)
    eps = np.finfo(np.float64).eps
    nll_ref = -np.mean(np.log(np.clip(probs[np.arange(len(y)), y], eps, 1)))
    assert scores["nll"] == pytest.approx(nll_ref, abs=1e-9)
    p, r, f, s = precision_recall_fscore_support(y, pred_cls, labels=list(range(c)), zero_division=0)
    assert [scores["per_class"][f"c{i}"]["f1"] for i in range(c)] == pytest.approx(list(f), abs=TOL)
    assert sum(map(sum, scores["confusion_matrix"])) == len(y)
    assert sum(scores["reliability"]["count"]) == len(y)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 80), st.integers(1, 7), st.data())
def test_multi_label_scores_match_sklearn(n, labels, data):
    probs = data.draw(arrays(np.float64, (n, labels), elements=st.floats(0, 1)))
    y = data.draw(arrays(np.int64, (n, labels), elements=st.integers(0, 1)))
    scores = multi_label_scores(probs, y, tuple(f"l{j}" for j in range(labels)))
    pred = (probs >= 0.5).astype(int)
    assert scores["accuracy"] == pytest.approx(np.mean(np.all(pred == y, axis=1)), abs=TOL)
    assert scores["hamming_loss"] == pytest.approx(hamming_loss(y, pred), abs=TOL)
    present = np.flatnonzero(y.sum(0)).tolist() or list(range(labels))  # macro: the labels with a positive
    for avg in ("micro", "macro", "weighted"):
        ref = f1_score(y, pred, labels=present if avg == "macro" else None, average=avg, zero_division=0)
        assert scores[f"f1_{avg}"] == pytest.approx(ref, abs=TOL)
    assert scores["brier"] == pytest.approx(np.mean((probs - y) ** 2), abs=TOL)
    per_label_ece = []
    for j in range(labels):
        conf = np.where(probs[:, j] >= 0.5, probs[:, j], 1 - probs[:, j])
        correct = ((probs[:, j] >= 0.5) == (y[:, j] == 1)).astype(float)
        per_label_ece.append(calibration_error(conf, correct, 15))
    assert scores["ece"] == pytest.approx(np.mean(per_label_ece), abs=TOL)


def test_known_values():
    # two bins' worth of hand-computed ECE: conf 0.9 right, 0.9 wrong, 0.6 right → |0.5-0.9|*2/3 + |1-0.6|/3
    conf = np.array([0.9, 0.9, 0.6])
    correct = np.array([1.0, 0.0, 1.0])
    assert calibration_error(conf, correct, 10) == pytest.approx(0.4 * 2 / 3 + 0.4 / 3)
    assert calibration_error(conf, correct, 10, norm="max") == pytest.approx(0.4)
    spec = TaskSpec("t", "single-label", ("a", "b"))
    perfect = compute_scores(spec, np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1]))
    assert perfect["accuracy"] == 1.0 and perfect["ece"] == 0.0 and perfect["brier"] == 0.0


def test_macro_f1_averages_over_the_classes_present_in_test():
    # a perfect classifier on a card that lists a label the test split never uses
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    scores = single_label_scores(probs, np.array([0, 1, 1]), ("a", "b", "unused"))
    assert scores["accuracy"] == 1.0 and scores["f1_macro"] == 1.0  # not 2/3
    assert scores["per_class"]["unused"]["support"] == 0
    tags = multi_label_scores(np.array([[0.9, 0.1], [0.8, 0.2]]), np.array([[1, 0], [1, 0]]), ("x", "never"))
    assert tags["f1_macro"] == 1.0 and tags["per_class"]["never"]["support"] == 0


def _brute_force_selective(conf: np.ndarray, err: np.ndarray) -> dict[str, float]:
    """Risk-coverage metrics straight from their definitions: for each example, accept every example at least as
    confident (O(N²))."""
    n = len(conf)
    accepted = conf[None, :] >= conf[:, None]  # row i: what threshold conf[i] accepts
    risk = (accepted * err).sum(1) / accepted.sum(1)
    coverage = accepted.sum(1) / n
    at_80 = risk[coverage >= 0.8][np.argmin(coverage[coverage >= 0.8])]
    return {
        "aurc": float(risk.mean()),
        "augrc": float(((accepted * err).sum(1) / n).mean()),
        "risk_at_80_coverage": float(at_80),
        "coverage_at_5_risk": float(max([c for c, r in zip(coverage, risk) if r <= 0.05], default=0.0)),
    }


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(2, 4), ties=st.booleans(), seed=st.integers(0, 10_000))
def test_selective_metrics_equal_a_brute_force_computation(n, k, ties, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k) * 0.7, size=n)
    if ties:  # coarse probabilities: many examples share a confidence
        probs = np.round(probs, 1) + 1e-3
        probs /= probs.sum(1, keepdims=True)
    y = rng.integers(0, k, n)
    spec = TaskSpec("t", "single-label", tuple(f"c{i}" for i in range(k)))
    scores = compute_scores(spec, probs, y)
    conf, correct = top_label(probs, y)
    expected = _brute_force_selective(conf, 1 - correct)
    for key, value in expected.items():
        assert scores[key] == pytest.approx(value, abs=1e-12), key


def test_selective_metrics_on_resamples_equal_the_metric_on_the_resampled_set():
    from bench.evaluate.intervals import Bootstrap
    from bench.evaluate.metrics import Predictions, get_metric

    rng = np.random.default_rng(1)
    single = Predictions(
        TaskSpec("t", "single-label", ("a", "b", "c")), rng.dirichlet(np.ones(3), 40), rng.integers(0, 3, 40)
    )
    tags = rng.random((40, 4))
    multi = Predictions(
        TaskSpec("m", "multi-label", ("w", "x", "y", "z")), tags, (rng.random((40, 4)) < tags).astype(int)
    )
    for p in (single, multi):
        counts = next(iter(Bootstrap(resamples=5).counts(p.n)))
        for name in ("aurc", "augrc", "risk_at_80_coverage", "coverage_at_5_risk"):
            m = get_metric(name)
            fast = m.resample(p, counts)
            slow = [m.compute(p.subset(np.repeat(np.arange(p.n), w.astype(int)))) for w in counts]
            np.testing.assert_allclose(fast, slow, atol=1e-12, err_msg=name)


def test_selective_metrics_known_values():
    # confidences 0.9 (right), 0.8 (wrong), 0.7 (right), 0.6 (wrong): risks 0, 1/2, 1/3, 1/2
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    scores = compute_scores(TaskSpec("t", "single-label", ("a", "b")), probs, np.array([0, 0, 0, 0]))
    assert scores["aurc"] == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    assert scores["augrc"] == pytest.approx((0 + 1 / 4 + 1 / 4 + 2 / 4) / 4)
    assert scores["risk_at_80_coverage"] == pytest.approx(1 / 2)  # 80% needs all four
    assert scores["coverage_at_5_risk"] == pytest.approx(1 / 4)
