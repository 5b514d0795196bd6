"""What every stage shares about data: a task spec, its splits and the dataset holding them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

TaskType = Literal["single-label", "multi-label", "sentence-pair"]
Input = str | tuple[str, str]
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TaskSpec:
    """What a dataset asks of a classifier: task type, ordered labels and text fields."""

    name: str
    task_type: TaskType
    labels: tuple[str, ...]
    text_fields: tuple[str, ...] = ("text",)
    resources: Path | None = None  # folder holding extra files such as rules.json
    card: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def multilabel(self) -> bool:
        return self.task_type == "multi-label"

    @property
    def label_kind(self) -> str:
        """``multi-label`` or ``single-label`` (sentence pairs are single-label): what metrics and rungs key on."""
        return "multi-label" if self.multilabel else "single-label"

    @property
    def pair(self) -> bool:
        return len(self.text_fields) == 2

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def resource(self, filename: str) -> Path | None:
        """Path of an extra file shipped with the dataset, or None."""
        if self.resources is None:
            return None
        path = self.resources / filename
        return path if path.is_file() else None


@dataclass(frozen=True)
class Split:
    """One split: texts (and second texts for pairs) with targets in the spec's label order.

    ``y`` is ``[N]`` class indices (single-label) or ``[N, C]`` 0/1 (multi-label).
    """

    name: str
    spec: TaskSpec
    texts: tuple[str, ...]
    y: np.ndarray
    pairs: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def inputs(self) -> list[Input]:
        """Model inputs: strings, or ``(text, text_pair)`` tuples for sentence pairs."""
        if self.pairs is None:
            return list(self.texts)
        return list(zip(self.texts, self.pairs))

    def take(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> Split:
        """A new split holding the rows at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=int)
        return replace(
            self,
            name=name or self.name,
            texts=tuple(self.texts[i] for i in idx),
            pairs=None if self.pairs is None else tuple(self.pairs[i] for i in idx),
            y=self.y[idx],
        )

    def class_counts(self) -> np.ndarray:
        """Examples per class (multi-label: positives per label)."""
        if self.spec.multilabel:
            return self.y.sum(axis=0).astype(int)
        return np.bincount(self.y, minlength=self.spec.n_classes)


@dataclass(frozen=True)
class Dataset:
    """A task spec with its train, validation and test splits, and optionally ``ood``: test examples of classes the
    task does not have (held out, or the card's out-of-scope label), for OOD detection (:mod:`bench.data.ood`)."""

    spec: TaskSpec
    splits: dict[str, Split]
    source: str
    fingerprint: str
    notes: tuple[str, ...] = ()
    ood: Split | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def validation(self) -> Split:
        return self.splits["validation"]

    @property
    def test(self) -> Split:
        return self.splits["test"]


def fingerprint(splits: dict[str, Split]) -> str:
    """A short content hash of the splits (texts, pairs, targets) and the labels: what a result was computed on."""
    h = hashlib.sha256()
    for name in sorted(splits):
        s = splits[name]
        h.update(f"<{name}:{len(s)}>".encode())
        for i, text in enumerate(s.texts):
            h.update(text.encode())
            h.update(b"\x1f")
            if s.pairs is not None:
                h.update(s.pairs[i].encode())
            h.update(b"\x1e")
        h.update(np.ascontiguousarray(s.y).tobytes())
    for label in next(iter(splits.values())).spec.labels:
        h.update(label.encode() + b"\x1d")
    return h.hexdigest()[:16]
