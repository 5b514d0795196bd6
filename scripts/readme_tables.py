"""Rewrite the README's result tables (``<!-- DATASET-table: ... -->`` blocks), step tables
(``<!-- DATASET-steps: ... -->``), the leaderboard's extra tables (``<!-- DATASET-conformal: ... -->``,
``-ensembles``, ``-ood``) and rung-against-rung tables over every dataset (``<!-- versus A B: ... -->``) from
results/.

Usage: ``python scripts/readme_tables.py`` from the repository root; tests/test_readme.py checks the tables.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pandas as pd

from bench.report.leaderboard import Leaderboard, build, formatted
from bench.store.results import ResultStore

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"(<!-- (\w+)-table:[^\n]*-->\n)(\|[^\n]*\n)(?:\|[^\n]*\n)*")  # marker, header row, other rows
STEPS = re.compile(r"(<!-- (\w+)-steps:[^\n]*-->\n)(?:\|[^\n]*\n)*")
VERSUS = re.compile(r"(<!-- versus ([\w+]+) ([\w+]+):[^\n]*-->\n)(?:\|[^\n]*\n)*")
EXTRA_TABLES = ("conformal", "ensembles", "ood")  # Leaderboard attributes
EXTRA = re.compile(r"(<!-- ([\w.+-]+)-(" + "|".join(EXTRA_TABLES) + r"):[^\n]*-->\n)(?:\|[^\n]*\n)*")


@functools.cache
def board(dataset: str) -> Leaderboard:
    """The leaderboard of ``dataset`` from results/ (built once per process: every table of a dataset shares it)."""
    found = build(ResultStore(ROOT / "results"), dataset)
    if found is None:
        raise SystemExit(f"results/ has nothing for {dataset}")
    return found


def cells(dataset: str) -> pd.DataFrame:
    """The leaderboard's display cells of the finished rungs of ``dataset``, in leaderboard order."""
    frame = board(dataset).frame
    return formatted(frame)[frame["status"] == "ok"]


def table(dataset: str, columns: list[str]) -> str:
    """A Markdown table of the finished rungs of ``dataset`` with the leaderboard's cells of ``columns``."""
    shown = cells(dataset)
    lines = ["| " + " | ".join(["rung", *columns]) + " |", "|" + "---|" * (len(columns) + 1)]
    for _, row in shown.iterrows():
        lines.append("| " + " | ".join([row["rung"], *(str(row[c]) for c in columns)]) + " |")
    return "\n".join(lines) + "\n"


def steps(dataset: str) -> str:
    """What each step buys on ``dataset``: the leaderboard's step table as Markdown."""
    return board(dataset).steps.to_markdown(index=False, disable_numparse=True) + "\n"


def extra(dataset: str, kind: str) -> str:
    """One of the leaderboard's extra tables of ``dataset`` (``kind`` in :data:`EXTRA_TABLES`: conformal sets,
    ensembles' diversity, OOD detection) as Markdown."""
    return getattr(board(dataset), kind).to_markdown(index=False, disable_numparse=True) + "\n"


def versus(rung: str, other: str) -> str:
    """``rung`` against ``other`` on every stored dataset where both ran: their macro-F1, the paired difference
    with its interval, and how ``rung``'s fit ended (steps taken, planned (by which rule) and its limit, epochs, why
    it stopped, converged); "–" for a limit a fit from before limits were recorded did not store."""
    store = ResultStore(ROOT / "results")
    lines = [
        f"| dataset | {other} | {rung} | Δ macro-F1 [95% CI] | steps / planned (rule) / limit | epochs | stopped "
        "| converged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in store.datasets():
        built = board(dataset)
        found = {r["rung"]: r for r in built.results if r.get("status") == "ok"}
        if built.comparison is None or rung not in found or other not in found:
            continue
        d = built.comparison.difference(rung, other, "f1_macro")
        info = found[rung].get("fit_info") or {}
        lines.append(
            f"| {dataset} | {found[other]['metrics']['f1_macro']:.4f} | {found[rung]['metrics']['f1_macro']:.4f} | "
            f"{d['delta']:+.4f} [{d['low']:+.3f}, {d['high']:+.3f}] | {info.get('steps')} / "
            f"{info.get('planned_steps', info.get('budget_steps'))} ({info.get('budget_rule')}) / "
            f"{info.get('limit_steps', '–')} | {info.get('epochs')} | {info.get('stopped')} | "
            f"{'yes' if info.get('converged') else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")

    def rewrite(match: re.Match[str]) -> str:
        header = match.group(3).strip().strip("|").split("|")
        return match.group(1) + table(match.group(2), [h.strip() for h in header[1:]])

    text = MARKER.sub(rewrite, text)
    text = STEPS.sub(lambda m: m.group(1) + steps(m.group(2)), text)
    text = VERSUS.sub(lambda m: m.group(1) + versus(m.group(2), m.group(3)), text)
    text = EXTRA.sub(lambda m: m.group(1) + extra(m.group(2), m.group(3)), text)
    readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
