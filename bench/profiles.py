"""Profiles cap the work of a run: ``quick`` (smoke tests, CI), ``default`` (a 2-core CPU), ``full`` (a GPU)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.errors import UnknownNameError


@dataclass(frozen=True)
class Profile:
    """Caps on data and on measurement effort. ``None`` means no cap.

    The test split is only capped in ``quick``. ``rung_options`` passes per-rung keyword
    arguments to factories (e.g. a smaller train subset for fine-tuning).
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
    rung_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def options_for(self, rung: str) -> dict[str, Any]:
        """Keyword arguments this profile passes to ``rung``'s factory."""
        return dict(self.rung_options.get(rung, {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", max_train=2000, max_validation=500, max_test=500, latency_warmup=2,
                     latency_min_calls=20, latency_min_seconds=0.2, latency_max_seconds=2.0,
                     throughput_batch=64, throughput_repeats=3,
                     rung_options={"finetuned": {"max_train": 2000, "epochs": 1, "min_steps": 0, "max_length": 64},
                                   "features_lr": {"max_length": 64}, "char_cnn": {"max_epochs": 3, "min_steps": 0}}),
    # default: what a 2-core CPU runs in minutes (fine-tuning: 20k examples, one epoch)
    "default": Profile("default", max_train=30000, max_validation=3000, max_test=None,
                       rung_options={"finetuned": {"max_train": 20000, "epochs": 1, "max_length": 128},
                                     "char_cnn": {"max_epochs": 6, "max_train": 20000},
                                     "features_lr": {"max_train": 20000},
                                     # T is one scalar; 500 examples pin it down, and each costs 20 MC passes here
                                     "finetuned+mc+ts": {"max_calibration": 500}}),
    "full": Profile("full", max_train=None, max_validation=None, max_test=None, latency_min_calls=200,
                    latency_min_seconds=2.0, latency_max_seconds=30.0, throughput_repeats=10,
                    rung_options={"finetuned": {"epochs": 3, "max_length": 128}, "char_cnn": {"max_epochs": 20}}),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``."""
    if name not in PROFILES:
        raise UnknownNameError("profile", name, PROFILES)
    return PROFILES[name]
