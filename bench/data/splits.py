"""Seeded, stratified splitting and subsampling; iterative stratification for multi-label data."""

from __future__ import annotations

import numpy as np

from bench.data.spec import Split
from bench.errors import DataError

SPLIT_SEED = 0  # fixed, so every rung and every --seed sees the same splits
VALIDATION_FRACTION = 0.1
ALL_FRACTIONS = (0.70, 0.15, 0.15)


def _stratified_two_way(split: Split, second_size: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (first, second) parts; ``second_size`` is a fraction or a count."""
    n = len(split)
    n_second = int(round(second_size * n)) if isinstance(second_size, float) else int(second_size)
    n_second = min(max(n_second, 1), n - 1)
    idx = np.arange(n)
    if split.spec.multilabel:
        from skmultilearn.model_selection import iterative_train_test_split

        state = np.random.get_state()
        np.random.seed(seed)  # skmultilearn's own random_state breaks under current sklearn
        try:
            first, _, second, _ = iterative_train_test_split(idx.reshape(-1, 1), split.y, test_size=n_second / n)
        finally:
            np.random.set_state(state)
        return np.sort(first.ravel()), np.sort(second.ravel())
    from sklearn.model_selection import train_test_split

    counts = np.bincount(split.y)
    stratify = split.y if counts[counts > 0].min() >= 2 and n_second >= (counts > 0).sum() else None
    first, second = train_test_split(idx, test_size=n_second, random_state=seed, stratify=stratify)
    return np.sort(first), np.sort(second)


def subsample(split: Split, cap: int | None, seed: int = SPLIT_SEED) -> Split:
    """At most ``cap`` rows of ``split``, stratified and seeded (all rows if ``cap`` is None)."""
    if cap is None or len(split) <= cap:
        return split
    _, keep = _stratified_two_way(split, cap, seed)
    return split.take(keep)


def _check(split: Split) -> None:
    if len(split) == 0:
        raise DataError(f"split {split.name!r} of {split.spec.name!r} is empty")


def finalize_splits(raw: dict[str, Split], seed: int = SPLIT_SEED) -> tuple[dict[str, Split], list[str]]:
    """Turn loaded splits into train/validation/test, carving what is missing; validate them."""
    for s in raw.values():
        _check(s)
    notes: list[str] = []
    if "train" in raw:
        if "test" not in raw:
            raise DataError(f"dataset {next(iter(raw.values())).spec.name!r} has a train split but no test split")
        train, test = raw["train"], raw["test"]
        if "validation" in raw:
            validation = raw["validation"]
        else:
            keep, val = _stratified_two_way(train, VALIDATION_FRACTION, seed)
            train, validation = train.take(keep, "train"), train.take(val, "validation")
            notes.append(f"validation carved from train ({VALIDATION_FRACTION:.0%}, stratified, seed {seed})")
    elif len(raw) == 1:
        whole = next(iter(raw.values()))
        if len(whole) < 3:
            raise DataError(f"dataset {whole.spec.name!r} has {len(whole)} rows; at least 3 are needed to split")
        rest, test_idx = _stratified_two_way(whole, ALL_FRACTIONS[2], seed)
        rest_split = whole.take(rest)
        share = ALL_FRACTIONS[1] / (ALL_FRACTIONS[0] + ALL_FRACTIONS[1])
        tr, va = _stratified_two_way(rest_split, share, seed)
        train, validation, test = (
            rest_split.take(tr, "train"),
            rest_split.take(va, "validation"),
            whole.take(test_idx, "test"),
        )
        notes.append(f"split {whole.name!r} divided 70/15/15 (stratified, seed {seed})")
    else:
        raise DataError(
            f"dataset {next(iter(raw.values())).spec.name!r} needs train and test splits, or one 'all' split"
        )
    for s in (train, validation, test):
        _check(s)
    if not train.spec.multilabel and np.count_nonzero(train.class_counts()) < 2:
        only = train.spec.labels[int(np.argmax(train.class_counts()))]
        raise DataError(f"train split of {train.spec.name!r} has a single class ({only!r}); nothing to learn")
    if train.spec.multilabel and train.y.sum() == 0:
        raise DataError(f"train split of {train.spec.name!r} has no positive label at all")
    return {"train": train, "validation": validation, "test": test}, notes
