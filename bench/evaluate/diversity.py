"""What an ensemble's members say beyond their mean: the uncertainty decomposition and disagreement that
torch-uncertainty reports for ensembles (Depeweg et al. 2018; Lakshminarayanan et al. 2017).

From the members' probabilities ``[K, N, C]`` (single-label rows; a multi-label task's labels are scored as K × N × C
yes/no decisions): the predictive entropy of the mean (total uncertainty) splits into the members' mean entropy
(aleatoric: what each member is unsure of) and the mutual information between prediction and member (epistemic:
what they disagree on; 0 for identical members). Disagreement is the share of member pairs whose argmax differs.
Entropies are in nats (``scipy.stats.entropy``).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import entropy


def as_distributions(members: np.ndarray, multilabel: bool = False) -> np.ndarray:
    """``[K, N, C]`` class distributions; multi-label sigmoids become ``[K, N·C, 2]`` yes/no distributions."""
    members = np.asarray(members, dtype=np.float64)
    if not multilabel:
        return members
    p = members.reshape(len(members), -1)
    return np.stack([p, 1.0 - p], axis=-1)


def _entropies(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The entropy of the members' mean per example ``[N]`` and each member's entropy ``[K, N]``."""
    return entropy(dist.mean(axis=0), axis=-1), entropy(dist, axis=-1)


def mutual_information(members: np.ndarray, multilabel: bool = False) -> np.ndarray:
    """Per example (multi-label: per decision): entropy of the mean less the mean entropy (≥ 0)."""
    predictive, each = _entropies(as_distributions(members, multilabel))
    return np.maximum(predictive - each.mean(axis=0), 0.0)


def disagreement(members: np.ndarray, multilabel: bool = False) -> np.ndarray:
    """Per example (multi-label: per decision): the share of member pairs whose argmax differs (0 for one member)."""
    dist = as_distributions(members, multilabel)
    k = len(dist)
    if k < 2:
        return np.zeros(dist.shape[1])
    votes = dist.argmax(axis=-1)  # [K, N]
    counts = np.stack([(votes == c).sum(axis=0) for c in range(dist.shape[-1])], axis=-1)  # [N, C]
    return 1.0 - (counts * (counts - 1)).sum(axis=-1) / (k * (k - 1))


def summary(members: np.ndarray, multilabel: bool = False) -> dict[str, float | int]:
    """Means over the test examples: members, disagreement, mutual information, expected and predictive entropy."""
    dist = as_distributions(members, multilabel)
    predictive, each = _entropies(dist)
    return {
        "members": len(dist),
        "disagreement": float(disagreement(members, multilabel).mean()),
        "mutual_information": float(np.maximum(predictive - each.mean(axis=0), 0.0).mean()),
        "expected_entropy": float(each.mean()),
        "predictive_entropy": float(predictive.mean()),
    }
