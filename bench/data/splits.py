"""Seeded, stratified splitting and subsampling; iterative stratification for multi-label data."""

from __future__ import annotations

import numpy as np

from bench.data.spec import Split
from bench.errors import DataError

SPLIT_SEED = 0  # fixed, so every rung and every --seed sees the same splits
VALIDATION_FRACTION = 0.1
ALL_FRACTIONS = (0.70, 0.15, 0.15)


def _stratified_two_way(
    split: Split, second_size: float | int, seed: int, proportional: bool = False
) -> tuple[np.ndarray, np.ndarray, str]:
    """Indices of (first, second) parts and how they were drawn (``stratified``, or what was done instead);
    ``second_size`` is a fraction or a count.

    scikit-learn stratifies a cut only with 2+ rows per class and a row of every class on both sides. Where the
    second part is too small for that, it is drawn at random, or with ``proportional`` as a proportional stratified
    sample (``sklearn.utils.resample``: as many classes as it has rows for); where only the first part is too
    small, the second is always that sample (every class keeps a row in it)."""
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
        return np.sort(first.ravel()), np.sort(second.ravel()), "stratified"
    from sklearn.model_selection import train_test_split
    from sklearn.utils import resample

    counts = np.bincount(split.y)
    present = int((counts > 0).sum())
    single = counts[counts > 0].min() < 2
    if single or n_second < present:
        why = "a class has a single row" if single else f"{n_second} rows for {present} classes"
        if proportional:
            second = resample(idx, replace=False, n_samples=n_second, stratify=split.y, random_state=seed)
            return np.setdiff1d(idx, second), np.sort(second), f"a proportional sample: {why}"
        first, second = train_test_split(idx, test_size=n_second, random_state=seed)
        return np.sort(first), np.sort(second), f"not stratified: {why}"
    if n - n_second < present:
        second = resample(idx, replace=False, n_samples=n_second, stratify=split.y, random_state=seed)
        return np.setdiff1d(idx, second), np.sort(second), f"a proportional sample: {n - n_second} rows left over"
    first, second = train_test_split(idx, test_size=n_second, random_state=seed, stratify=split.y)
    return np.sort(first), np.sort(second), "stratified"


def cap_split(split: Split, cap: int | None, seed: int = SPLIT_SEED) -> tuple[Split, str | None, int]:
    """At most ``cap`` rows of ``split``, stratified and seeded (all rows if ``cap`` is None; where a stratified cut
    is impossible, a proportional stratified sample); a note when they could not be drawn by a stratified cut; and
    how many classes present in ``split`` keep no row."""
    if cap is None or len(split) <= cap:
        return split, None, 0
    _, keep, how = _stratified_two_way(split, cap, seed, proportional=True)
    capped = split.take(keep)
    lost = int(np.count_nonzero(split.class_counts())) - int(np.count_nonzero(capped.class_counts()))
    note = None if how == "stratified" else f"{split.name} capped at {cap} of {len(split)} rows ({how})"
    return capped, note, lost


def subsample(split: Split, cap: int | None, seed: int = SPLIT_SEED) -> Split:
    """At most ``cap`` rows of ``split``, stratified and seeded (all rows if ``cap`` is None); see :func:`cap_split`."""
    return cap_split(split, cap, seed)[0]


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
        elif len(train) < 2:
            raise DataError(f"train split of {train.spec.name!r} has 1 row: too few to carve a validation split")
        else:
            keep, val, how = _stratified_two_way(train, VALIDATION_FRACTION, seed)
            train, validation = train.take(keep, "train"), train.take(val, "validation")
            notes.append(f"validation carved from train ({VALIDATION_FRACTION:.0%}, {how}, seed {seed})")
    elif len(raw) == 1:
        whole = next(iter(raw.values()))
        if len(whole) < 3:
            raise DataError(f"dataset {whole.spec.name!r} has {len(whole)} rows; at least 3 are needed to split")
        rest, test_idx, how = _stratified_two_way(whole, ALL_FRACTIONS[2], seed)
        rest_split = whole.take(rest)
        share = ALL_FRACTIONS[1] / (ALL_FRACTIONS[0] + ALL_FRACTIONS[1])
        tr, va, how_val = _stratified_two_way(rest_split, share, seed)
        train, validation, test = (
            rest_split.take(tr, "train"),
            rest_split.take(va, "validation"),
            whole.take(test_idx, "test"),
        )
        how = how if how == how_val else f"test {how}, validation {how_val}"
        notes.append(f"split {whole.name!r} divided 70/15/15 ({how}, seed {seed})")
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


def _names(labels: list[str], most: int = 5) -> str:
    shown = ", ".join(repr(x) for x in labels[:most])
    return shown + (f" and {len(labels) - most} more" if len(labels) > most else "")


def split_warnings(splits: dict[str, Split]) -> list[str]:
    """What is legal but suspicious about final train/validation/test splits: classes a split has no example of
    (multi-label: labels never positive), labels found only in test, test rows repeating train rows."""
    labels = splits["train"].spec.labels
    counts = {name: s.class_counts() for name, s in splits.items()}
    out = []
    what = "label(s) never positive" if splits["train"].spec.multilabel else "class(es) without an example"
    for name, c in counts.items():
        absent = [labels[i] for i in np.flatnonzero(c == 0)]
        if absent:
            metric = "; macro averages use the classes present in test" if name == "test" else ""
            out.append(f"{name} split: {len(absent)} of {len(labels)} {what}: {_names(absent)}{metric}")
    only_test = [
        labels[i] for i in np.flatnonzero((counts["test"] > 0) & (counts["train"] == 0) & (counts["validation"] == 0))
    ]
    if only_test:
        out.append(
            f"{len(only_test)} label(s) occur only in the test split, so no rung can learn them: {_names(only_test)}"
        )
    train, test = splits["train"], splits["test"]
    seen = set(zip(train.texts, train.pairs or [None] * len(train)))
    repeated = sum(row in seen for row in zip(test.texts, test.pairs or [None] * len(test)))
    if repeated:
        out.append(f"{repeated} of {len(test)} test row(s) repeat a train row's text: their scores measure memory")
    return out
