"""Rewrite the README's result tables (``<!-- DATASET-table: ... -->`` blocks) and step tables
(``<!-- DATASET-steps: ... -->``) from results/.

Usage: ``python scripts/readme_tables.py`` from the repository root; tests/test_readme.py checks the tables.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from bench.report.leaderboard import build, formatted
from bench.store.results import ResultStore

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"(<!-- (\w+)-table:[^\n]*-->\n)(\|[^\n]*\n)(?:\|[^\n]*\n)*")  # marker, header row, other rows
STEPS = re.compile(r"(<!-- (\w+)-steps:[^\n]*-->\n)(?:\|[^\n]*\n)*")


def cells(dataset: str) -> pd.DataFrame:
    """The leaderboard's display cells of the finished rungs of ``dataset``, in leaderboard order."""
    frame = build(ResultStore(ROOT / "results"), dataset).frame
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
    return build(ResultStore(ROOT / "results"), dataset).steps.to_markdown(index=False, disable_numparse=True) + "\n"


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")

    def rewrite(match: re.Match[str]) -> str:
        header = match.group(3).strip().strip("|").split("|")
        return match.group(1) + table(match.group(2), [h.strip() for h in header[1:]])

    text = MARKER.sub(rewrite, text)
    text = STEPS.sub(lambda m: m.group(1) + steps(m.group(2)), text)
    readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
