"""Out-of-distribution detection from a rung's probabilities: how well its uncertainty on test examples of classes
it never saw (:mod:`bench.data.ood`) separates them from in-distribution test examples.

Each score is higher for "more likely out of distribution": ``msp``, one minus the maximum probability (Hendrycks
& Gimpel, 2017), and ``entropy``, the predictive entropy — of the mean probabilities for MC-Dropout and ensembles,
so their extra uncertainty counts — and, for an ensemble, ``mutual_information``, its members' disagreement
(:mod:`bench.evaluate.diversity`). OOD examples are the positives: AUROC, AUPR (average precision) and FPR at 95%
TPR (the share of in-distribution examples flagged when 95% of the OOD ones are), from scikit-learn. AUROC carries
a 95% percentile-bootstrap interval (``scipy.stats.bootstrap``, in- and out-of-distribution examples resampled
apart): OOD sets are often small (66 examples for one held-out emotion class), and the interval says so.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import bootstrap, rankdata
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from bench.evaluate.diversity import mutual_information

TPR_LEVEL = 0.95
RESAMPLES, LEVEL, SEED = 1000, 0.95, 20_261_129


def msp(probs: np.ndarray) -> np.ndarray:
    """One minus the maximum probability."""
    return 1.0 - probs.max(axis=1)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy in nats (0 log 0 = 0)."""
    return scipy_entropy(probs, axis=1)


SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"msp": msp, "entropy": entropy}


def fpr_at_tpr(is_ood: np.ndarray, score: np.ndarray, level: float = TPR_LEVEL) -> float:
    """False-positive rate at the first threshold whose true-positive rate reaches ``level``."""
    fpr, tpr, _ = roc_curve(is_ood, score)
    return float(fpr[np.searchsorted(tpr, level - 1e-12, side="left")])


def auroc(out_scores: np.ndarray, in_scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """AUROC of OOD (positives) against in-distribution scores from ranks (the Mann-Whitney U over both sizes; ties
    count a half), along ``axis``: vectorised for the bootstrap."""
    out_scores, in_scores = np.moveaxis(out_scores, axis, -1), np.moveaxis(in_scores, axis, -1)
    n_out, n_in = out_scores.shape[-1], in_scores.shape[-1]
    ranks = rankdata(np.concatenate([out_scores, in_scores], axis=-1), axis=-1)
    return (ranks[..., :n_out].sum(axis=-1) - n_out * (n_out + 1) / 2) / (n_out * n_in)


def auroc_interval(out_scores: np.ndarray, in_scores: np.ndarray) -> tuple[float, float]:
    """95% percentile-bootstrap interval of :func:`auroc`, the two groups resampled apart."""
    ci = bootstrap(
        (out_scores, in_scores),
        auroc,
        n_resamples=RESAMPLES,
        confidence_level=LEVEL,
        method="percentile",
        vectorized=True,
        paired=False,
        random_state=np.random.default_rng(SEED),
    ).confidence_interval
    return float(ci.low), float(ci.high)


def detection(
    in_probs: np.ndarray,
    ood_probs: np.ndarray,
    in_members: np.ndarray | None = None,
    ood_members: np.ndarray | None = None,
) -> dict[str, dict[str, float] | int]:
    """Each score's AUROC (with its interval), AUPR and FPR at 95% TPR for telling ``ood_probs`` rows from
    ``in_probs`` rows; with an ensemble's members' probabilities on both, their mutual information too."""
    is_ood = np.r_[np.zeros(len(in_probs)), np.ones(len(ood_probs))]
    out: dict[str, dict[str, float] | int] = {"n_in": len(in_probs), "n_out": len(ood_probs)}
    scores = {name: (fn(in_probs), fn(ood_probs)) for name, fn in SCORES.items()}
    if in_members is not None and ood_members is not None:
        scores["mutual_information"] = (mutual_information(in_members), mutual_information(ood_members))
    for name, (inside, outside) in scores.items():
        score = np.r_[inside, outside]
        low, high = auroc_interval(outside, inside)
        out[name] = {
            "auroc": float(roc_auc_score(is_ood, score)),
            "auroc_low": low,
            "auroc_high": high,
            "aupr": float(average_precision_score(is_ood, score)),
            "fpr_at_95_tpr": fpr_at_tpr(is_ood, score),
        }
    return out
