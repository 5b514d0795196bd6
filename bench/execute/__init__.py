"""How the grid of cells (dataset × rung × seed) is run: in this process one after another (``local``, the default)
or on a Ray cluster (``ray``). Every executor evaluates a cell through :func:`bench.evaluate.harness.evaluate`'s
steps and stores it in the same :class:`~bench.store.results.ResultStore`; only where and when the work runs
differs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from bench.data import Dataset
from bench.errors import UnknownNameError
from bench.evaluate.harness import RunSettings, member_cells
from bench.rungs.protocol import resolve
from bench.rungs.registry import get_rung
from bench.store.results import ResultStore

Report = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, order=True)
class Cell:
    """One unit of work: a rung on a dataset with a seed."""

    dataset: str
    rung: str
    seed: int

    def __str__(self) -> str:
        return f"{self.dataset}/{self.rung} seed {self.seed}"


def plan_cells(
    datasets: Sequence[str], rungs: Sequence[str], seeds: Sequence[int], settings: RunSettings | None = None
) -> list[Cell]:
    """The grid in run order: dataset, then seed, then rung; a rung whose registration says the seed changes
    nothing runs for the first seed only. With ``settings``, a rung built on several seeds of its bases (an
    ensemble), or over one, brings the members' cells the grid lacks, just before it: each member is fitted, stored
    and scored once as its own result, and reused by every ensemble (and every later run) that includes it."""
    cells: dict[Cell, None] = {}
    for d in datasets:
        for seed in seeds:
            for r in rungs:
                if seed != seeds[0] and not get_rung(r).capabilities.seeded:
                    continue
                if settings is not None:
                    cells.update((Cell(d, b, s), None) for b, s in member_cells(r, replace(settings, seed=seed)))
                cells[Cell(d, r, seed)] = None
    return list(cells)


class Executor(Protocol):
    """Runs cells and stores their results; ``report`` is called with each cell's final result as it lands."""

    def run(
        self,
        cells: Sequence[Cell],
        data: Mapping[str, Dataset],
        settings: RunSettings,
        store: ResultStore,
        report: Report,
    ) -> list[dict[str, Any]]: ...


EXECUTORS = {
    "local": "bench.execute.local:LocalExecutor",
    "ray": "bench.execute.ray_cluster:RayExecutor",
}


def get_executor(name: str, **options: Any) -> Executor:
    """The executor registered as ``name``, built with ``options``."""
    if name not in EXECUTORS:
        raise UnknownNameError("executor", name, EXECUTORS)
    return resolve(EXECUTORS[name])(**options)
