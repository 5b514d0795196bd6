"""The base class of every rung built over other rungs: calibration, MC-Dropout, ensembles, conformal sets, ...

Delegation is written here once: fitting the bases that are not fitted yet, the task spec, parameters and
efficiency figures, fit information, and saving / loading the bases beside the wrapper's own state. A wrapper's
own parameters are reported apart from its bases' (:meth:`Wrapper.own_parameters`); :meth:`num_parameters` is the
total.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

from bench.data.spec import Split
from bench.errors import NotApplicable
from bench.rungs.protocol import Rung
from bench.rungs.registry import load_rung, save_rung

STATE_FILE = "wrapper.json"


def base_folder(folder: Path, index: int, count: int) -> Path:
    """Where base ``index`` of ``count`` is saved inside a wrapper's folder."""
    return Path(folder) / ("base" if count == 1 else f"base_{index}")


class Wrapper(Rung):
    """A rung over one or more rungs (``bases``), fitted already or fitted here first.

    Subclasses take their base as ``base`` (one) or their bases as ``bases`` (several) in ``__init__`` and store
    them with :meth:`_set_bases`; they learn their own part in :meth:`fit_own` and keep what it learned in
    :meth:`state` / :meth:`restore` (JSON), so saving and loading need no code of their own.
    """

    #: every base must expose :meth:`~bench.rungs.protocol.Rung.predict_logits`
    requires_logits: ClassVar[bool] = False

    bases: tuple[Rung, ...]

    def _set_bases(self, bases: Sequence[Rung]) -> None:
        self.bases = tuple(bases)

    @property
    def base(self) -> Rung:
        """The base of a one-base wrapper."""
        if len(self.bases) != 1:
            raise AttributeError(f"{type(self).__name__} has {len(self.bases)} bases; use .bases")
        return self.bases[0]

    # ---------------------------------------------------------------------------------------------- fitting

    def fit(self, train: Split, validation: Split) -> Self:
        """Fit the bases not fitted yet, check what this wrapper needs of them, then :meth:`fit_own`."""
        if not self.bases:
            raise ValueError(f"{type(self).__name__} has no base")
        for base in self.bases:
            if not base.is_fitted:
                base.fit(train, validation)
        if self.requires_logits:
            missing = [type(b).__name__ for b in self.bases if not b.has_logits]
            if missing:
                raise NotApplicable(f"{', '.join(missing)} exposes no logits for {type(self).__name__}")
        specs = {b.spec.labels for b in self.bases}
        if len(specs) > 1:
            raise ValueError("the bases were fitted on different label sets")
        self.spec = self.bases[0].spec
        self.fit_own(train, validation)
        return self

    def fit_own(self, train: Split, validation: Split) -> None:
        """Learn the wrapper's own part on top of fitted bases (default: nothing to learn)."""

    # ----------------------------------------------------------------------------------------- delegation

    def own_parameters(self) -> int:
        """Numeric parameters the wrapper itself learned (not its bases')."""
        return 0

    def num_parameters(self) -> int:
        """Total parameters: the wrapper's own plus every base's."""
        return self.own_parameters() + sum(b.num_parameters() for b in self.bases)

    def efficiency_report(self, inputs: Sequence[Any]) -> dict[str, Any]:
        """The bases' extra efficiency figures (the first base's where two report the same key)."""
        report: dict[str, Any] = {}
        for base in reversed(self.bases):
            report.update(base.efficiency_report(inputs))
        return report

    @property
    def compute_dtype(self) -> str:  # type: ignore[override]
        return self.bases[0].compute_dtype if self.bases else "float32"

    def warm_up(self) -> None:
        for base in self.bases:
            base.warm_up()

    def forward_flops(self, inputs: Sequence[Any]) -> float | None:
        """Every base's forward on ``inputs`` (None when a base does not count them); a wrapper that runs its bases
        more than once, or runs a model of its own, says so by overriding this."""
        counts = [b.forward_flops(inputs) for b in self.bases]
        return None if not counts or None in counts else float(sum(counts))  # type: ignore[arg-type]

    def own_fit_info(self) -> dict[str, Any]:
        """What fitting the wrapper's own part chose."""
        return {}

    def fit_info(self) -> dict[str, Any]:
        infos = [b.fit_info() for b in self.bases]
        return {**self.own_fit_info(), **({"base": infos[0]} if len(infos) == 1 else {"bases": infos})}

    # ----------------------------------------------------------------------------------------- persistence

    def own_params(self) -> dict[str, Any]:
        """The constructor's parameters other than the bases."""
        return {k: v for k, v in self.get_params().items() if k not in ("base", "bases")}

    def state(self) -> dict[str, Any]:
        """What :meth:`fit_own` learned, as JSON-serialisable values."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state` returned (after loading)."""

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for i, base in enumerate(self.bases):
            save_rung(base, base_folder(folder, i, len(self.bases)))
        payload = {"bases": len(self.bases), "params": self.own_params(), "state": self.state()}
        (folder / STATE_FILE).write_text(json.dumps(payload))

    @classmethod
    def load(cls, folder: Path) -> Self:
        folder = Path(folder)
        payload = json.loads((folder / STATE_FILE).read_text())
        bases = [load_rung(base_folder(folder, i, payload["bases"])) for i in range(payload["bases"])]
        takes_many = "bases" in inspect.signature(cls.__init__).parameters
        rung = cls(bases=bases, **payload["params"]) if takes_many else cls(bases[0], **payload["params"])
        rung.spec = bases[0].spec
        rung.restore(payload["state"])
        return rung

    @classmethod
    def base_folders(cls, folder: Path) -> list[Path]:
        """The folders holding the bases inside a saved wrapper (to tell its own size from theirs)."""
        count = json.loads((Path(folder) / STATE_FILE).read_text())["bases"]
        return [base_folder(folder, i, count) for i in range(count)]
