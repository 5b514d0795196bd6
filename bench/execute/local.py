"""The default executor: every cell in this process, one after another, timed straight after its fit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tqdm.auto import tqdm

from bench.data import Dataset
from bench.evaluate.harness import RunSettings, evaluate
from bench.execute import Cell, Report
from bench.store.results import ResultStore


class LocalExecutor:
    """Runs the grid sequentially in this process (nothing to install, nothing else running while it times)."""

    def run(
        self,
        cells: Sequence[Cell],
        data: Mapping[str, Dataset],
        settings: RunSettings,
        store: ResultStore,
        report: Report,
    ) -> list[dict[str, Any]]:
        results = []
        with tqdm(cells, desc="bench", unit="cell", disable=None) as bar:
            for cell in bar:
                bar.set_postfix_str(str(cell))
                result = evaluate(cell.rung, data[cell.dataset], replace(settings, seed=cell.seed), store)
                report(result)
                results.append(result)
        return results
