"""Profiles cap the work of a run: ``quick`` (smoke tests, CI), ``default`` (a 2-core CPU), ``full`` (a GPU).

A profile caps data and measurement effort; what it means for one rung (a smaller step budget or train subset) is
declared with that rung's registration (``profiles=``), not here.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

from bench.data.spec import Dataset
from bench.data.splits import cap_split
from bench.errors import UnknownNameError

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Profile:
    """Caps on data and on measurement effort. ``None`` means no cap.

    The test split is only capped in ``quick``.
    """

    name: str
    max_train: int | None
    max_validation: int | None
    max_test: int | None
    latency_warmup: int = 5
    latency_min_calls: int = 50
    latency_min_seconds: float = 1.0
    latency_max_seconds: float = 10.0
    throughput_batch: int = 256
    throughput_repeats: int = 5
    throughput_max_seconds: float = 30.0
    throughput_call_seconds: float = 4.0  # slow rungs (MC-Dropout) get a batch that one call handles in about this
    seeds: tuple[int, ...] = (0,)  # each seeded rung runs once per seed (not part of a result's config: its seed is)

    def to_dict(self) -> dict[str, Any]:
        """The caps a result's configuration records (the seeds are not: each result records its own seed)."""
        return {k: v for k, v in asdict(self).items() if k != "seeds"}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Profile:
        """A profile from a stored config (keys this version does not know, e.g. older per-rung options, dropped)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in known})


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick",
        max_train=2000,
        max_validation=500,
        max_test=500,
        latency_warmup=2,
        latency_min_calls=20,
        latency_min_seconds=0.2,
        latency_max_seconds=2.0,
        throughput_batch=64,
        throughput_repeats=3,
    ),
    # default: what a 2-core CPU runs in minutes (fine-tuning: 20k examples, at most 1,000 steps)
    "default": Profile("default", max_train=30000, max_validation=3000, max_test=None, seeds=(0, 1, 2)),
    "full": Profile(
        "full",
        seeds=(0, 1, 2, 3, 4),
        max_train=None,
        max_validation=None,
        max_test=None,
        latency_min_calls=200,
        latency_min_seconds=2.0,
        latency_max_seconds=30.0,
        throughput_repeats=10,
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``."""
    if name not in PROFILES:
        raise UnknownNameError("profile", name, PROFILES)
    return PROFILES[name]


def apply_profile(dataset: Dataset, profile: Profile) -> Dataset:
    """The dataset with train/validation (and, in ``quick``, test) capped by the profile. A cap that cannot be drawn
    stratified (fewer rows on a side than classes) or leaves a class without a row is logged as a warning and kept
    in the dataset's notes."""
    caps = {"train": profile.max_train, "validation": profile.max_validation, "test": profile.max_test}
    splits, notes = {}, list(dataset.notes)
    for name, split in dataset.splits.items():
        splits[name], note, lost = cap_split(split, caps[name])
        if note:
            log.info("%s: profile %s: %s", dataset.name, profile.name, note)
            notes.append(f"profile {profile.name}: {note}")
        if lost:
            warning = (
                f"profile {profile.name}: the {name} cap ({caps[name]} rows) leaves {lost} class(es) without a row"
            )
            log.warning("%s: %s", dataset.name, warning)
            notes.append(f"warning: {warning}")
    ood = dataset.ood
    if ood is not None:  # out-of-distribution test rows: capped as test is
        ood, note, _ = cap_split(ood, profile.max_test)
        if note:
            notes.append(f"profile {profile.name}: ood {note}")
    return Dataset(dataset.spec, splits, dataset.source, dataset.fingerprint, tuple(notes), ood)
