"""Conformal prediction sets: the sets equal MAPIE's, coverage holds on exchangeable data, the metric's plumbing."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.spec import TaskSpec
from bench.evaluate import conformal
from bench.evaluate.metrics import Predictions, compute_scores, score


def _draw(rng: np.random.Generator, n: int, c: int, sharp: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Exchangeable (probabilities, label) pairs: Dirichlet probabilities, the label drawn from a perturbed copy
    (so the model is miscalibrated, as a real one is)."""
    probs = rng.dirichlet(np.full(c, sharp), size=n)
    noisy = 0.7 * probs + 0.3 * rng.dirichlet(np.ones(c), size=n)
    y = (noisy.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return probs, y


def test_quantile_rank_and_the_set_of_every_class_when_calibration_is_too_small():
    assert conformal.quantile_index(9, 0.1) == 8  # ceil(10 * 0.9) = 9th smallest, despite 9.000000000000002
    assert conformal.quantile_index(99, 0.1) == 89
    assert conformal.quantile_index(8, 0.1) == 8  # 9th of 8: no finite threshold
    q = conformal.thresholds(np.array([[0.1, 0.2, 0.3, np.inf], [0.1, 0.2, 0.3, 0.4]]), 0.5, np.array([3, 4]))
    assert q.tolist() == [0.2, 0.3]  # ceil(4 * .5) = 2nd of 3; ceil(5 * .5) = 3rd of 4
    assert conformal.thresholds(np.array([[0.5, np.inf]]), 0.1, np.array([1]))[0] == np.inf


def test_lac_sets_equal_mapies_on_every_split():
    mapie = pytest.importorskip("mapie.classification")
    from sklearn.base import BaseEstimator, ClassifierMixin

    rng = np.random.default_rng(0)
    probs, y = _draw(rng, 301, 5)

    class Precomputed(ClassifierMixin, BaseEstimator):  # the features are the probabilities
        def fit(self, x, y=None):
            self.classes_, self.n_features_in_ = np.arange(5), 5
            return self

        def predict_proba(self, x):
            return np.asarray(x)

        def predict(self, x):
            return np.asarray(x).argmax(axis=1)

    perms = conformal.split_indices(len(y), splits=8, seed=3)
    ours = conformal.prediction_sets(conformal.lac_scores(probs), y, perms, alpha=0.1)
    for perm, sets in zip(perms, ours, strict=True):
        cal, ev = perm[: len(y) // 2], perm[len(y) // 2 :]
        model = mapie.SplitConformalClassifier(Precomputed().fit(probs), confidence_level=0.9, prefit=True)
        model.conformalize(probs[cal], y[cal])
        _, theirs = model.predict_set(probs[ev])
        np.testing.assert_array_equal(sets, theirs[:, :, 0])


def test_aps_scores_rank_classes_and_randomise_within_the_own_mass():
    probs = np.array([[0.5, 0.2, 0.3], [0.1, 0.1, 0.8]])
    s = conformal.aps_scores(probs, seed=0)
    u = np.random.default_rng(0).random((2, 1))[:, 0]
    np.testing.assert_allclose(s[0], [u[0] * 0.5, 0.8 + u[0] * 0.2, 0.5 + u[0] * 0.3])
    np.testing.assert_allclose(s[1], [0.8 + u[1] * 0.1, 0.9 + u[1] * 0.1, u[1] * 0.8])  # tie: lower index first
    assert (np.argsort(s, axis=1) == np.argsort(-probs, axis=1, kind="stable")).all()  # sets grow by rank


@pytest.mark.parametrize("alpha", [0.1, 0.2])
def test_coverage_holds_on_exchangeable_data_over_many_draws(alpha):
    rng = np.random.default_rng(1)
    n, draws = 400, 60
    cov = {k: [] for k in ("lac", "aps", "lac_classwise", "aps_classwise")}
    worst = []
    for _ in range(draws):
        probs, y = _draw(rng, n, 4, sharp=0.6)
        out = conformal.evaluate(probs, y, alpha, splits=20, seed=int(rng.integers(1 << 30)))
        for key in cov:
            cov[key].append(out[key]["coverage"])
        worst.append(out["lac_classwise"]["worst_class_coverage"])
    n_cal = n // 2
    for key, values in cov.items():  # 1 - alpha <= E[coverage] <= 1 - alpha + 1 / (n_cal + 1), up to noise
        mean = float(np.mean(values))
        assert 1 - alpha - 0.01 <= mean <= 1 - alpha + 1 / (n_cal + 1) + 0.01, (key, mean)
    assert np.mean(worst) >= 1 - alpha - 0.04  # class-wise: the worst class is covered too (its own ~50 examples)


def test_classwise_covers_a_class_the_marginal_sets_neglect():
    rng = np.random.default_rng(2)
    n = 2000
    y = rng.choice(3, size=n, p=[0.47, 0.47, 0.06])
    probs = np.full((n, 3), 0.05)
    probs[np.arange(n), np.where(y == 2, rng.integers(0, 2, n), y)] = 0.9  # class 2 is never the top class
    out = conformal.evaluate(probs, y, 0.1, splits=20)
    assert out["lac"]["worst_class"] == 2 and out["lac"]["worst_class_coverage"] < 0.5
    assert out["lac_classwise"]["worst_class_coverage"] >= 0.85
    assert out["lac_classwise"]["set_size"] > out["lac"]["set_size"]


def test_metric_is_registered_for_single_label_with_its_alpha_and_absent_for_multi_label():
    rng = np.random.default_rng(3)
    probs, y = _draw(rng, 500, 3)
    spec = TaskSpec("toy", "single-label", ("a", "b", "c"))
    at10 = compute_scores(spec, probs, y)["conformal"]
    at30 = score(Predictions(spec, probs, y, alpha=0.3))["conformal"]
    assert at10["alpha"] == 0.1 and at30["alpha"] == 0.3 and at10["splits"] == conformal.SPLITS
    assert at30["lac"]["coverage"] < at10["lac"]["coverage"] and at30["lac"]["set_size"] < at10["lac"]["set_size"]
    lac = at10["lac"]
    assert lac["coverage_low"] <= lac["coverage"] <= lac["coverage_high"] and 0 <= lac["empty"] <= 1
    multi = TaskSpec("toy", "multi-label", ("a", "b", "c"))
    assert "conformal" not in compute_scores(multi, probs, (probs > 0.5).astype(int))
