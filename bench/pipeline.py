"""The whole flow for a set of datasets and rungs: evaluate each (data → rung → metrics/efficiency → store), then
write the reports from the store."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bench.data import Dataset
from bench.errors import BenchError
from bench.evaluate.harness import RunSettings
from bench.execute import Executor, plan_cells
from bench.execute.local import LocalExecutor
from bench.profiles import apply_profile
from bench.report.leaderboard import MD_FILE, write_leaderboard
from bench.rungs.protocol import under_trained, under_trained_hint
from bench.store.results import ResultStore

log = logging.getLogger("bench")


def summary_line(result: dict[str, Any]) -> str:
    """A one-line outcome for the console."""
    head = f"{result['dataset']}/{result['rung']}"
    if result["status"] != "ok":
        return f"{head}: {result['status']} ({result.get('reason') or result.get('error')})"
    m, e = result["metrics"], result["efficiency"]
    busy = "  (timed while the machine was busy)" if (result.get("timing") or {}).get("contended") else ""
    under = "  (under-trained)" if under_trained(result.get("fit_info")) else ""
    seed = (result.get("config") or {}).get("seed", 0)
    p50 = e.get("latency_ms_p50")
    latency = "not timed yet" if p50 is None else f"p50 {p50:.2f} ms"
    return (
        f"{head} seed {seed}: acc {m['accuracy']:.4f}  macro-F1 {m['f1_macro']:.4f}  ECE {m['ece']:.4f}  "
        f"{latency}  fit {e['fit_seconds']:.1f} s{busy}{under}"
    )


def write_reports(store: ResultStore, datasets: Sequence[str], html: bool) -> None:
    """Each dataset's leaderboards (and, with ``html``, its HTML report and the index), printing where they are."""
    written = [name for name in datasets if store.results(name)]
    for name in written:
        if html:  # the report writes the leaderboard it shows
            from bench.report.html import write_report

            report = write_report(store, name)
        else:
            write_leaderboard(store, name)
        tqdm.write(f"leaderboard: {store.root / name / MD_FILE}")
        if html:
            tqdm.write(f"report: {report.resolve().as_uri()}")
    if html and written:
        from bench.report.html import write_index

        tqdm.write(f"all datasets: {write_index(store).resolve().as_uri()}")


def run(
    datasets: list[Dataset],
    rungs: list[str],
    settings: RunSettings,
    output: str | Path,
    seeds: Sequence[int] | None = None,
    html: bool = False,
    executor: Executor | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every rung on every dataset once per seed (``seeds``, default: the settings' one seed; a rung whose
    registration says the seed changes nothing runs for the first only) with ``executor`` (default: one cell after
    another in this process), then write each dataset's leaderboards (and, with ``html``, its HTML report and the
    index, printing where to open them).
    The split is the same for every seed; data order, initialisation and dropout masks follow it."""
    store = ResultStore(output)
    seeds = list(seeds) if seeds else [settings.seed]
    cells = plan_cells([d.name for d in datasets], rungs, seeds, settings)
    capped = {d.name: apply_profile(d, settings.profile) for d in datasets}
    executor = executor or LocalExecutor()
    with store.locked("bench run"):
        for d in datasets:
            store.migrate(d.name)  # results of older versions into their seed's folder
            store.clean(d.name)  # what a killed run left half-written
            other = {
                str((r.get("data") or {}).get("source"))
                for runs in store.seed_results(d.name).values()
                for r in runs
                if r.get("dataset_fingerprint") != d.fingerprint
            }
            if other:
                log.warning(
                    "%s: %s holds results computed on other data (%s); the leaderboard shows only those on the "
                    "data of this run; keep each dataset in its own --output",
                    d.name,
                    store.root / d.name,
                    ", ".join(sorted(other)),
                )
        try:
            results = executor.run(cells, capped, settings, store, lambda r: tqdm.write(summary_line(r)))
        except KeyboardInterrupt:
            tqdm.write("interrupted: writing the leaderboards of what finished (the next run resumes from there)")
            write_reports(store, [d.name for d in datasets], html=False)
            raise
        except OSError as exc:  # the store could not be written (full disk, permissions): one clear line
            raise BenchError(f"cannot write results under {store.root}: {exc}") from None
        write_reports(store, [d.name for d in datasets], html=html and bool(results))
    busy = [r for r in results if (r.get("timing") or {}).get("contended")]
    if busy:
        tqdm.write(
            f"warning: {len(busy)} rung(s) were timed while the machine was busy; their latency is marked * in "
            "the leaderboard (run them again on an idle machine: they are re-timed, not refitted)"
        )
    for r in results:  # said of the rung that trained, not of the wrappers over it
        if not r.get("bases") and under_trained(r.get("fit_info")):
            tqdm.write(
                f"warning: {r['dataset']}/{r['rung']} is under-trained: {under_trained_hint(r['rung'], r['fit_info'])}"
            )
    return results
