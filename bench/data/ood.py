"""Out-of-distribution test examples: classes held out of training, or a card's out-of-scope label.

:func:`hold_out` turns a single-label dataset into a closed-set task without some classes: their rows leave train
and validation, their test rows become the dataset's ``ood`` split (never scored as classes; used as the positives
of OOD detection, :mod:`bench.evaluate.ood`), and the remaining classes keep their order. A card may name an
``out_of_scope`` label (CLINC's ``oos``): loading holds it out the same way, under the dataset's own name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from bench.data.spec import Dataset, Split, fingerprint
from bench.errors import DataError


def holdout_name(name: str, classes: Sequence[str]) -> str:
    """The derived dataset's name (its results folder): ``emotion-holdout-surprise``; characters a folder name
    should not hold become ``_``."""
    slug = "+".join(re.sub(r"[^\w.+-]", "_", c) for c in classes)
    return f"{name}-holdout-{slug}"


def hold_out(dataset: Dataset, classes: Sequence[str], rename: bool = True) -> Dataset:
    """``dataset`` without ``classes``: removed from the labels, train and validation; their test rows become the
    ``ood`` split (labels: the held-out classes). ``rename``: name it :func:`holdout_name` (a card's own
    out-of-scope label keeps the dataset's name)."""
    spec = dataset.spec
    classes = list(dict.fromkeys(classes))
    if spec.multilabel:
        raise DataError(f"{dataset.name}: holding classes out needs a single-label task, not multi-label")
    unknown = [c for c in classes if c not in spec.labels]
    if unknown:
        raise DataError(f"{dataset.name}: no class {', '.join(map(repr, unknown))} to hold out; it has {spec.labels}")
    kept = tuple(label for label in spec.labels if label not in classes)
    if len(kept) < 2:
        raise DataError(f"{dataset.name}: holding out {classes} leaves {len(kept)} class(es); a task needs two")
    held = [spec.labels.index(c) for c in classes]
    new_index, ood_index = np.full(spec.n_classes, -1), np.full(spec.n_classes, -1)
    new_index[[spec.labels.index(c) for c in kept]] = np.arange(len(kept))
    ood_index[held] = np.arange(len(held))
    name = holdout_name(dataset.name, classes) if rename else dataset.name
    closed = replace(spec, name=name, labels=kept, card={**spec.card, "held_out": classes})
    ood_spec = replace(spec, name=name, labels=tuple(classes))

    def inside(split: Split) -> Split:
        rows = np.flatnonzero(~np.isin(split.y, held))
        taken = split.take(rows)
        return replace(taken, spec=closed, y=new_index[taken.y])

    test = dataset.test
    out_rows = np.flatnonzero(np.isin(test.y, held))
    if len(out_rows) == 0:
        raise DataError(f"{dataset.name}: the test split has no example of {classes}: nothing would be out of scope")
    ood = test.take(out_rows, name="ood")
    ood = replace(ood, spec=ood_spec, y=ood_index[ood.y])
    splits = {key: inside(split) for key, split in dataset.splits.items()}
    dropped = {key: len(split) - len(splits[key]) for key, split in dataset.splits.items()}
    note = (
        f"held out as out-of-distribution: {', '.join(classes)} ({dropped['train']} train and {dropped['validation']} "
        f"validation rows removed; {len(ood)} test rows are the OOD split)"
    )
    return Dataset(
        closed,
        splits,
        dataset.source,
        fingerprint({**splits, "ood": ood}),
        (*dataset.notes, note),
        ood=ood,
    )
