"""Split-conformal prediction sets, evaluated on stored test predictions by repeated random calibration splits.

For a rung's test probabilities ``[N, C]``, each of ``splits`` random halves of the test examples calibrates a
split-conformal predictor at level ``1 - alpha`` and the other half measures it: empirical coverage (the true class
in the set), mean set size, empty sets and coverage per class. Over the splits, the spread of coverage is the
spread a user would see from one calibration set of that size (its interval); the means are what to expect.

Why test halves and not a slice of validation: the rungs use validation to fit (the temperature of ``+ts``,
``tfidf_lr``'s C, early stopping), so their validation scores are not exchangeable with test scores and the
coverage guarantee would not hold; the test split was seen by nothing, and its predictions are stored, so the
figures recompute from them (``bench rescore``) for every rung without refitting.

Scores (lower = more conforming), for every class of every example:

- ``lac`` (least ambiguous set-valued classifier, Sadinle et al. 2019): ``1 - p_c``.
- ``aps`` (adaptive prediction sets, Romano et al. 2020, randomised): the probability of the classes ranked above
  ``c`` plus ``u * p_c``, ``u`` uniform per example (a fixed function of the seed): exact marginal coverage.
- ``*_classwise`` (Mondrian by true class, Vovk 2005): each class's own threshold from the calibration examples
  of that class, so every class is covered at ``1 - alpha``, not only on average.

A set is ``{c : score_c <= q}`` with ``q`` the ``ceil((n + 1)(1 - alpha))``-th smallest calibration score (every
class when that exceeds ``n``). Hand-vectorised over the splits rather than MAPIE's ``SplitConformalClassifier``:
the sets are the same (tests compare them with MAPIE's LAC on every split), but MAPIE takes 4-21 ms per split and
has no Mondrian classifier; this takes 0.1 ms per split (measured on emotion, 2,000 examples x 6 classes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFAULT_ALPHA = 0.1
SPLITS = 100
SEED = 20_261_129
LEVEL = 0.95  # the share of splits the coverage interval spans


def lac_scores(probs: np.ndarray, seed: int = SEED) -> np.ndarray:
    """LAC non-conformity of every class: ``1 - p``."""
    return 1.0 - probs


def aps_scores(probs: np.ndarray, seed: int = SEED) -> np.ndarray:
    """Randomised APS non-conformity of every class: the mass of the classes ranked above it plus ``u`` times its
    own (``u`` uniform, one per example, from ``seed``). Ties in probability rank by class index."""
    order = np.argsort(-probs, axis=1, kind="stable")
    ranked = np.take_along_axis(probs, order, axis=1)
    above = np.cumsum(ranked, axis=1) - ranked  # mass strictly before each rank
    u = np.random.default_rng(seed).random((len(probs), 1))
    scores = np.empty_like(probs, dtype=np.float64)
    np.put_along_axis(scores, order, above + u * ranked, axis=1)
    return scores


SCORES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {"lac": lac_scores, "aps": aps_scores}


def quantile_index(n: np.ndarray | int, alpha: float) -> np.ndarray:
    """0-based rank of the conformal threshold among ``n`` calibration scores: ``ceil((n + 1)(1 - alpha)) - 1``
    (``>= n`` means no finite threshold: every class is in the set)."""
    # a hair below the ceiling's step so (n + 1)(1 - alpha) landing on a whole number in floating point (for
    # n = 9, alpha = 0.1: 9.000000000000002) is not pushed up a rank
    return np.ceil((np.asarray(n) + 1) * (1 - alpha) - 1e-9).astype(np.int64) - 1


def thresholds(cal_scores: np.ndarray, alpha: float, counts: np.ndarray | None = None) -> np.ndarray:
    """Conformal thresholds ``[R]`` from calibration scores ``[R, n]`` sorted per row with ``+inf`` padding after
    each row's ``counts`` real scores (default: all ``n`` real)."""
    n = np.full(len(cal_scores), cal_scores.shape[1]) if counts is None else counts
    k = quantile_index(n, alpha)
    padded = np.concatenate([cal_scores, np.full((len(cal_scores), 1), np.inf)], axis=1)
    return np.where(k < n, padded[np.arange(len(k)), np.minimum(k, padded.shape[1] - 1)], np.inf)


def split_indices(n: int, splits: int = SPLITS, seed: int = SEED) -> np.ndarray:
    """``[splits, n]`` random permutations of the examples: the first ``n // 2`` of each row calibrate."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(splits)])


def prediction_sets(
    scores: np.ndarray, y: np.ndarray, perms: np.ndarray, alpha: float, classwise: bool = False
) -> np.ndarray:
    """The evaluation halves' prediction sets ``[R, N - N // 2, C]`` (boolean), each split calibrated on its first
    half; ``classwise``: one threshold per class, from the calibration examples of that class."""
    n_cal = scores.shape[0] // 2
    cal, ev = perms[:, :n_cal], perms[:, n_cal:]
    true_scores = scores[cal, y[cal]]  # [R, n_cal]
    if not classwise:
        q = thresholds(np.sort(true_scores, axis=1), alpha)[:, None, None]  # [R, 1, 1]
        return scores[ev] <= q
    n_classes = scores.shape[1]
    q = np.empty((len(perms), n_classes))
    for c in range(n_classes):
        mine = y[cal] == c
        q[:, c] = thresholds(np.sort(np.where(mine, true_scores, np.inf), axis=1), alpha, mine.sum(axis=1))
    return scores[ev] <= q[:, None, :]


def evaluate(
    probs: np.ndarray,
    y: np.ndarray,
    alpha: float = DEFAULT_ALPHA,
    splits: int = SPLITS,
    seed: int = SEED,
) -> dict[str, dict[str, float | int | None]]:
    """Each score's (and its class-wise variant's) coverage, its interval over the splits, mean set size, share of
    empty sets, coverage of the worst-covered class (pooled over the splits; classes with test examples) and which
    class that is."""
    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(y, dtype=np.int64)
    perms = split_indices(len(y), splits, seed)
    ev = perms[:, len(y) // 2 :]
    truth = y[ev]  # [R, n_ev]
    tail = (1 - LEVEL) / 2
    present = np.bincount(truth.ravel(), minlength=probs.shape[1])  # evaluation examples per class, all splits
    out: dict[str, dict[str, float | int | None]] = {}
    for name, score_fn in SCORES.items():
        scores = score_fn(probs, seed)
        for classwise in (False, True):
            sets = prediction_sets(scores, y, perms, alpha, classwise)
            covered = np.take_along_axis(sets, truth[..., None], axis=2)[..., 0]  # [R, n_ev]
            coverage = covered.mean(axis=1)
            hits = np.bincount(truth.ravel(), weights=covered.ravel().astype(np.float64), minlength=probs.shape[1])
            per_class = np.where(present > 0, hits / np.maximum(present, 1), np.inf)
            worst = int(np.argmin(per_class))
            out[f"{name}_classwise" if classwise else name] = {
                "coverage": float(coverage.mean()),
                "coverage_low": float(np.quantile(coverage, tail)),
                "coverage_high": float(np.quantile(coverage, 1 - tail)),
                "set_size": float(sets.sum(axis=2).mean()),
                "empty": float((~sets.any(axis=2)).mean()),
                "worst_class_coverage": float(per_class[worst]) if np.isfinite(per_class[worst]) else None,
                "worst_class": worst if np.isfinite(per_class[worst]) else None,
            }
    return out
