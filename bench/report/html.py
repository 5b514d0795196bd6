"""HTML reports from stored results: ``<dataset>/report.html`` (self-contained) and a cross-dataset ``index.html``.

Everything comes from result.json, predictions.npz and mc_sweep.json; no model is rerun. The dataset itself
is read only for texts (error analysis, length distribution), and only when it is found with the fingerprint
the results were computed on; otherwise those sections say so.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.data import Dataset, load_dataset, resolve_data_dir
from bench.data.ood import hold_out
from bench.errors import BenchError
from bench.evaluate.calibration import binary_top_label, top_label
from bench.evaluate.metrics import risk_coverage_curve
from bench.evaluate.thresholds import FIXED_THRESHOLD
from bench.profiles import Profile, apply_profile
from bench.report import plots
from bench.report.leaderboard import (
    CHECKS_TITLE,
    STEPS_NOTE,
    Leaderboard,
    build,
    extra_tables,
    formatted,
    save,
)
from bench.rungs.registry import colour_for, get_rung, list_rungs
from bench.store.results import ResultStore

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
INDEX_FILE = "index.html"
PLOTS_DIR = "plots"
ERROR_EXAMPLES = 10

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #222; padding: 0 1rem; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.6rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: right; vertical-align: top; }
th { background: #f4f4f4; } td { white-space: nowrap; }
td.text, th.text { text-align: left; max-width: 38rem; white-space: normal; }
.wide { overflow-x: auto; }
td.best { font-weight: bold; background: #e7f5e7; }
tr.failed td { background: #fdecea; } tr.not_applicable td { background: #f3f3f3; color: #666; }
img { max-width: 100%; height: auto; display: block; margin: 0.5rem 0; }
.note { color: #555; font-size: 0.9rem; } details { margin: 0.4rem 0; } summary { cursor: pointer; font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


@dataclass
class Figures:
    """PNG files written next to the report, embedded inline in it."""

    folder: Path
    written: list[Path] = field(default_factory=list)

    def add(self, fig: Any, name: str, alt: str) -> str:
        path = self.folder / f"{name}.png"
        data = plots.save_png(fig, path)
        self.written.append(path)
        return (
            f'<img src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}" alt="{_esc(alt)}" '
            f'title="{_esc(path.name)}">'
        )


@dataclass
class Stored:
    """One dataset's stored results: results by rung, predictions of the finished ones, the leaderboard."""

    dataset: str
    results: dict[str, dict[str, Any]]
    predictions: dict[str, tuple[np.ndarray, np.ndarray]]
    frame: pd.DataFrame
    board: Leaderboard

    @property
    def spec(self) -> dict[str, Any]:
        return next(iter(self.results.values())).get("data", {})

    @property
    def labels(self) -> list[str]:
        return list(self.spec.get("labels", []))

    @property
    def multilabel(self) -> bool:
        return self.spec.get("task") == "multi-label"

    def threshold(self, rung: str) -> float:
        """A multi-label rung's decision threshold (tuned on validation; 0.5 in results that predate tuning)."""
        return float((self.results[rung].get("metrics") or {}).get("threshold", FIXED_THRESHOLD))

    @property
    def ece_bins(self) -> int:
        return int(next((r["config"]["ece_bins"] for r in self.results.values() if r.get("config")), 15))


def load_stored(store: ResultStore, dataset: str) -> Stored:
    """Read a dataset's results, the predictions of every finished rung and its leaderboard."""
    board = build(store, dataset)
    if board is None:
        raise BenchError(f"no readable result.json under {store.root / dataset}")
    results = {r["rung"]: r for r in board.results}
    return Stored(dataset, results, board.predictions, board.frame, board)


def _ladder_position(rung: str) -> tuple[int, str]:
    order = list_rungs()  # rungs no longer registered (a plugin not installed) come last, by name
    return (order.index(rung) if rung in order else len(order), rung)


def _bases(stored: Stored, rung: str) -> list[str]:
    """The rungs ``rung`` wraps: as stored with its result, else as registered."""
    result = stored.results.get(rung) or {}
    if "bases" in result:
        return list(result["bases"])
    try:
        return list(get_rung(rung).bases)
    except BenchError:
        return []


def _root(stored: Stored, rung: str) -> str:
    """The rung a chain of one-base wrappers ends at (``finetuned+mc+ts`` -> ``finetuned``)."""
    bases = _bases(stored, rung)
    return _root(stored, bases[0]) if len(bases) == 1 and bases[0] in stored.results else rung


def _family(result: dict[str, Any]) -> str:
    return str(result.get("family") or "")


def _confidence(probs: np.ndarray, labels: np.ndarray, multilabel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence and correctness; multi-label: every (example, label) decision."""
    if multilabel:
        return binary_top_label(probs.ravel(), labels.ravel())
    return top_label(probs, labels)


def dataset_texts(stored: Stored, data_dir: str | Path | None) -> tuple[Dataset | None, str]:
    """The dataset with the profile's caps, if it is found with the stored fingerprint and test labels."""
    first = next(iter(stored.results.values()))
    fingerprint = first.get("dataset_fingerprint")
    # by name in the data folder, then the stored source path (a folder or file; None: load it by path)
    candidates: list[tuple[str, str | Path | None]] = [(stored.dataset, data_dir or resolve_data_dir(None))]
    source = first.get("data", {}).get("source")
    held_out = first.get("data", {}).get("held_out")  # --holdout-classes: the source without those classes
    if source and Path(source).exists():
        candidates.insert(0 if held_out else len(candidates), (source, None))
    for name, folder in candidates:
        try:
            dataset = load_dataset(path=name) if folder is None else load_dataset(name, data_dir=folder)
            if held_out and dataset.ood is None:
                dataset = hold_out(dataset, held_out)
        except (BenchError, OSError, ValueError):
            continue
        if dataset.fingerprint != fingerprint:
            continue
        try:
            profile = Profile.from_dict((first.get("config") or {})["profile"])
        except (KeyError, TypeError):
            return None, "the stored profile is not readable by this version"
        capped = apply_profile(dataset, profile)
        if any(not np.array_equal(capped.test.y, labels) for _, labels in stored.predictions.values()):
            return None, "the dataset found does not match the stored test labels"
        return capped, ""
    return None, f"dataset {stored.dataset!r} with fingerprint {fingerprint} not found (pass --data-dir)"


def _leaderboard_html(frame: pd.DataFrame) -> str:
    shown, best = formatted(frame), frame.attrs.get("best", {})
    head = "".join(
        f'<th class="{"text" if c in ("rung", "status", "note") else ""}">{_esc(c)}</th>' for c in shown.columns
    )
    rows = []
    for i, row in shown.iterrows():
        cells = []
        for column, value in row.items():
            cls = "text" if column in ("rung", "status", "note") else ("best" if i in best.get(str(column), ()) else "")
            cells.append(f'<td class="{cls}">{_esc(value)}</td>')
        rows.append(f'<tr class="{_esc(frame.loc[i, "status"])}">{"".join(cells)}</tr>')
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _table_html(frame: pd.DataFrame) -> str:
    """A plain table of display strings; text columns left-aligned."""
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"text" if isinstance(v, str) and not v[:1].isdigit() and v[:1] not in "+-−" else ""}">'
            f"{_esc(v)}</td>"
            for v in row
        )
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _scores_table(per_class: dict[str, dict[str, float]]) -> str:
    rows = "".join(
        f'<tr><td class="text">{_esc(label)}</td>'
        + "".join(f"<td>{s.get(k, float('nan')):.3f}</td>" for k in ("precision", "recall", "f1"))
        + f"<td>{int(s.get('support', 0))}</td></tr>"
        for label, s in per_class.items()
    )
    return (
        '<table><thead><tr><th class="text">class</th><th>precision</th><th>recall</th><th>F1</th>'
        "<th>support</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _loss(probs: np.ndarray, labels: np.ndarray, multilabel: bool) -> np.ndarray:
    p = np.clip(probs, 1e-12, 1 - 1e-12)
    if multilabel:
        return -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean(axis=1)
    return -np.log(p[np.arange(len(labels)), labels])


def _example_text(dataset: Dataset | None, i: int) -> str:
    if dataset is None:
        return f"(test example #{i}; text unavailable)"
    test = dataset.test
    return test.texts[i] if test.pairs is None else f"{test.texts[i]}  |||  {test.pairs[i]}"


def _examples_table(stored: Stored, rung: str, dataset: Dataset | None, indices: np.ndarray, loss: np.ndarray) -> str:
    probs, labels = stored.predictions[rung]
    names = stored.labels
    rows = []
    for i in indices:
        if stored.multilabel:
            true = ", ".join(names[j] for j in np.flatnonzero(labels[i])) or "(none)"
            pred = ", ".join(names[j] for j in np.flatnonzero(probs[i] >= stored.threshold(rung))) or "(none)"
            conf = float(np.maximum(probs[i], 1 - probs[i]).mean())
        else:
            true, pred, conf = names[labels[i]], names[int(probs[i].argmax())], float(probs[i].max())
        rows.append(
            f'<tr><td>{i}</td><td class="text">{_esc(_example_text(dataset, int(i)))}</td>'
            f'<td class="text">{_esc(true)}</td>'
            f'<td class="text">{_esc(pred)}</td><td>{conf:.3f}</td><td>{loss[i]:.3f}</td></tr>'
        )
    return (
        '<table><thead><tr><th>#</th><th class="text">text</th><th class="text">true</th>'
        '<th class="text">predicted</th>'
        f"<th>confidence</th><th>loss</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _error_analysis(stored: Stored, dataset: Dataset | None, note: str) -> str:
    done = [r for r in stored.frame["rung"] if r in stored.predictions]
    if not done:
        return '<p class="note">No finished rung.</p>'
    best = done[0]  # the frame is sorted by macro-F1
    probs, labels = stored.predictions[best]
    loss = _loss(probs, labels, stored.multilabel)
    if stored.multilabel:
        correct = ((probs >= stored.threshold(best)) == labels.astype(bool)).all(axis=1)
    else:
        correct = probs.argmax(axis=1) == labels
    worst = np.argsort(-loss, kind="stable")[:ERROR_EXAMPLES]
    right = np.flatnonzero(correct)
    confident = right[np.argsort(loss[right], kind="stable")[:ERROR_EXAMPLES]]
    caveat = f'<p class="note">Texts unavailable: {_esc(note)}.</p>' if dataset is None else ""
    loss_name = "mean binary cross-entropy over labels" if stored.multilabel else "−log p(true class)"
    return (
        f"<p>Best rung by macro-F1: <b>{_esc(best)}</b>. Loss is {loss_name}. The highest-loss examples are the "
        "likeliest to be mislabelled or genuinely hard.</p>"
        + caveat
        + f"<h3>Highest loss</h3>{_examples_table(stored, best, dataset, worst, loss)}"
        + f"<h3>Most confident correct</h3>{_examples_table(stored, best, dataset, confident, loss)}"
    )


def _reliability_section(stored: Stored, figs: Figures) -> str:
    roots: dict[str, list[str]] = {}
    for rung in sorted(stored.predictions, key=_ladder_position):
        roots.setdefault(_root(stored, rung), []).append(rung)
    groups: dict[str, list[str]] = {}  # a rung with no variants shares a figure with its family (the chance rungs)
    for root, rungs in roots.items():
        key = root if len(rungs) > 1 else (_family(stored.results[root]) or root)
        groups.setdefault(key, []).extend(rungs)
    what = (
        "every (example, label) decision pooled, confidence of the decided side"
        if stored.multilabel
        else "top-label confidence"
    )
    parts = [
        f'<p class="note">Accuracy per equal-width confidence bin ({stored.ece_bins} bins, {what}) against the '
        "diagonal; under each, how many test predictions fall in each bin. Plain, MC-Dropout and "
        "temperature-scaled variants of a rung side by side.</p>"
    ]
    for root, rungs in sorted(groups.items(), key=lambda kv: _ladder_position(kv[1][0])):
        panels = [(r, *_confidence(*stored.predictions[r], stored.multilabel)) for r in rungs]
        what = f"{root} and its variants" if root in rungs else f"the {root} rungs"
        fig = plots.reliability_grid(panels, stored.ece_bins, f"{stored.dataset}: reliability of {what}")
        parts.append(figs.add(fig, f"reliability_{_slug(root)}", f"reliability diagrams: {', '.join(rungs)}"))
    return "".join(parts)


def _selective_section(stored: Stored, figs: Figures) -> str:
    curves = {}
    for rung in sorted(stored.predictions, key=_ladder_position):
        result = stored.results[rung]
        if result.get("chance"):  # predictions that ignore the input: nothing to select on
            continue
        curve = risk_coverage_curve(*_confidence(*stored.predictions[rung], stored.multilabel))
        aurc = (result.get("metrics") or {}).get("aurc")
        colour = colour_for(rung, _family(result))
        curves[rung] = (curve["coverage"][0], curve["risk"][0], colour, float("nan") if aurc is None else aurc)
    if not curves:
        return '<p class="note">No informative rung has stored predictions.</p>'
    what = "each (example, label) decision" if stored.multilabel else "the top-label decision"
    note = (
        f'<p class="note">A rung that may abstain accepts {what} when its confidence reaches a threshold; the curve '
        "shows the error rate among the accepted (selective risk) at every threshold. Lower is better; AURC is the "
        "area under it (also in the leaderboard, with AUGRC, risk at 80% coverage and coverage at 5% risk in "
        "result.json).</p>"
    )
    fig = plots.risk_coverage(curves, f"{stored.dataset}: risk against coverage")
    return note + figs.add(fig, "risk_coverage", "risk-coverage curves of the informative rungs")


def _slug(name: str) -> str:
    return name.replace("+", "_").replace("/", "_")


def _per_rung_section(stored: Stored, figs: Figures) -> str:
    parts = []
    for rung in sorted(stored.predictions, key=_ladder_position):
        metrics = stored.results[rung].get("metrics", {})
        per_class = metrics.get("per_class") or {}
        inner = ""
        if not stored.multilabel and metrics.get("confusion_matrix") is not None:
            fig = plots.confusion(
                np.asarray(metrics["confusion_matrix"]), stored.labels, f"{rung}: confusion (rows sum to 1)"
            )
            inner += figs.add(fig, f"confusion_{_slug(rung)}", f"normalised confusion matrix of {rung}")
        inner += _scores_table(per_class) if per_class else '<p class="note">No per-class scores stored.</p>'
        parts.append(f'<details><summary>{_esc(rung)}</summary><div class="grid">{inner}</div></details>')
    if stored.multilabel and stored.predictions:
        chosen = [r for r in stored.frame["rung"] if r in stored.predictions][:4]
        per = {r: stored.results[r]["metrics"].get("per_class", {}) for r in chosen}
        parts.insert(
            0,
            figs.add(
                plots.per_class_f1(per, f"{stored.dataset}: per-label F1 of the top rungs"),
                "per_label_f1",
                "per-label F1 of the best rungs",
            ),
        )
    return "".join(parts)


def _dataset_section(stored: Stored, dataset: Dataset | None, note: str, figs: Figures) -> str:
    names = stored.labels
    if dataset is not None:
        counts = {name: dict(zip(names, split.class_counts().tolist())) for name, split in dataset.splits.items()}
    elif stored.predictions:
        labels = next(iter(stored.predictions.values()))[1]
        test = labels.sum(axis=0) if stored.multilabel else np.bincount(labels, minlength=len(names))
        counts = {"test": dict(zip(names, test.tolist()))}
    else:
        return '<p class="note">No predictions stored, so no class distribution.</p>'
    what = "label frequency" if stored.multilabel else "class distribution"
    html_parts = [
        figs.add(plots.class_distribution(counts, f"{stored.dataset}: {what} per split"), "class_distribution", what)
    ]
    if dataset is not None:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in dataset.splits.items())
        lengths = {
            name: np.array(
                [
                    len(t.split()) + (len(p.split()) if p else 0)
                    for t, p in zip(split.texts, split.pairs or [None] * len(split))
                ]
            )
            for name, split in dataset.splits.items()
        }
        html_parts.insert(0, f'<p class="note">Splits as evaluated (after the profile\'s caps): {_esc(sizes)}.</p>')
        html_parts.append(
            figs.add(
                plots.length_distribution(lengths, f"{stored.dataset}: text length"), "text_length", "text lengths"
            )
        )
    else:
        html_parts.insert(0, f'<p class="note">Test split only; text lengths unavailable: {_esc(note)}.</p>')
    return f'<div class="grid">{"".join(html_parts)}</div>'


def _summary(stored: Stored) -> str:
    results = list(stored.results.values())
    envs = [r.get("environment") or {} for r in results]
    configs = [r.get("config") or {} for r in results]

    def values(items: list[dict[str, Any]], key: str) -> str:
        found = sorted({str(i.get(key)) for i in items if i.get(key) is not None})
        return ", ".join(found) or "—"

    created = sorted(r.get("created_at") for r in results if r.get("created_at"))
    rows = [
        ("task", stored.spec.get("task")),
        ("labels", ", ".join(stored.labels)),
        (
            "examples (train / validation / test)",
            f"{stored.spec.get('train')} / {stored.spec.get('validation')} / {stored.spec.get('test')}",
        ),
        ("profile", ", ".join(sorted({str(c.get("profile", {}).get("name")) for c in configs}))),
        ("seed", values(configs, "seed")),
        ("device", values(configs, "device")),
        ("ECE bins", values(configs, "ece_bins")),
        ("CPU", values(envs, "cpu")),
        ("CPU cores", values(envs, "cpu_count")),
        ("GPU", values(envs, "gpu")),
        (
            "threads",
            ", ".join(sorted({str((r.get("efficiency") or {}).get("threads")) for r in results if r.get("efficiency")}))
            or "—",
        ),
        ("python", values(envs, "python")),
        ("torch", values(envs, "torch")),
        ("transformers", values(envs, "transformers")),
        ("scikit-learn", values(envs, "scikit_learn")),
        ("commit", values(envs, "git_commit")),
        ("ran", f"{created[0]} … {created[-1]}" if created else "—"),
    ]
    body = "".join(f'<tr><th class="text">{_esc(k)}</th><td class="text">{_esc(v)}</td></tr>' for k, v in rows)
    return f"<table>{body}</table>"


def _status_note(stored: Stored) -> str:
    unfinished = stored.frame[stored.frame["status"] != "ok"]
    if unfinished.empty:
        return ""
    items = "".join(
        f"<li><b>{_esc(r['rung'])}</b>: {_esc(r['status'])} — {_esc(r['note'])}</li>" for _, r in unfinished.iterrows()
    )
    return f'<p class="note">Not in the plots (no predictions):</p><ul class="note">{items}</ul>'


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f"<body>{body}</body></html>\n"
    )


def write_report(store: ResultStore, dataset: str, data_dir: str | Path | None = None) -> Path:
    """Write ``<dataset>/report.html`` and its PNGs (``<dataset>/plots/``), and the leaderboard files it shows, from
    stored results."""
    stored = load_stored(store, dataset)
    folder = store.root / dataset
    save(stored.board, folder)
    figs = Figures(folder / PLOTS_DIR)
    data, note = dataset_texts(stored, data_dir)
    plotted = stored.frame[stored.frame["status"] == "ok"].copy()
    plotted["family"] = [_family(stored.results[r]) for r in plotted["rung"]]
    plotted["colour"] = [colour_for(r, f) for r, f in zip(plotted["rung"], plotted["family"])]
    sections = [
        f'<h1>{_esc(dataset)}</h1><p class="note">bench report, regenerated from stored results '
        '(<a href="../index.html">all datasets</a>).</p>'
    ]
    sections.append(
        "<h2>Leaderboard</h2>"
        + _leaderboard_html(stored.frame)
        + '<p class="note">In bold green: a score significantly better than the runner-up\'s (paired bootstrap; '
        "never a chance rung's calibration), an efficiency figure 10% better than the runner-up's. "
        + _esc(stored.board.notes.strip()).replace("\n\n", '</p><p class="note">')
        + "</p>"
        + _status_note(stored)
        + (
            f'<h3 id="checks">{CHECKS_TITLE}</h3><ul class="checks">'
            + "".join(f"<li>{_esc(line)}</li>" for line in stored.board.checks)
            + "</ul>"
            if stored.board.checks
            else ""
        )
    )
    if not stored.board.steps.empty:
        sections.append(
            "<h2>What each step buys</h2>" + f'<p class="note">{_esc(STEPS_NOTE)}</p>' + _table_html(stored.board.steps)
        )
    sections.append(
        "<h2>Trade-offs</h2>"
        + figs.add(plots.tradeoff_latency(plotted, dataset), "pareto_f1_latency", "macro-F1 against latency")
        + figs.add(plots.tradeoff_calibration(plotted, dataset), "f1_ece", "macro-F1 against ECE")
    )
    sections.append("<h2>Reliability</h2>" + _reliability_section(stored, figs))
    sections.append("<h2>Selective prediction</h2>" + _selective_section(stored, figs))
    for title, about, table in extra_tables(stored.board):
        sections.append(f'<h2>{_esc(title)}</h2><p class="note">{_esc(about)}</p>' + _table_html(table))
    sweep_path = folder / "mc_sweep.json"
    if sweep_path.is_file():
        sweep = json.loads(sweep_path.read_text(encoding="utf-8"))
        sections.append(
            "<h2>MC-Dropout sweep</h2>" + figs.add(plots.mc_sweep(sweep), "mc_sweep", "ECE and accuracy against passes")
        )
    sections.append("<h2>Per rung: confusion and per-class scores</h2>" + _per_rung_section(stored, figs))
    sections.append("<h2>Dataset</h2>" + _dataset_section(stored, data, note, figs))
    sections.append("<h2>Error analysis</h2>" + _error_analysis(stored, data, note))
    sections.append("<h2>Run</h2>" + _summary(stored))
    path = folder / REPORT_FILE
    path.write_text(_page(f"bench report: {dataset}", "".join(sections)), encoding="utf-8")
    return path


def write_index(store: ResultStore, datasets: list[str] | None = None) -> Path:
    """Write ``index.html``: rung x dataset macro-F1 and ECE, linking each dataset's report."""
    names = datasets or store.datasets()
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names:
        for r in store.results(name):
            cells.setdefault(r["rung"], {})[name] = r
    head = "".join(f'<th><a href="{_esc(n)}/{REPORT_FILE}">{_esc(n)}</a></th>' for n in names)
    rows = []
    for rung in sorted(cells, key=_ladder_position):
        tds = []
        for name in names:
            r = cells[rung].get(name)
            if r is None:
                tds.append("<td>—</td>")
            elif r.get("status") != "ok":
                tds.append(f'<td class="text">{_esc(r.get("status"))}</td>')
            else:
                m = r.get("metrics", {})
                tds.append(f"<td>{m.get('f1_macro', float('nan')):.4f} / {m.get('ece', float('nan')):.4f}</td>")
        rows.append(f'<tr><td class="text">{_esc(rung)}</td>{"".join(tds)}</tr>')
    body = (
        '<h1>bench: the baseline ladder</h1><p class="note">Each cell: macro-F1 / ECE on the dataset\'s test split '
        "(multi-label: macro-F1 at the threshold tuned on validation / mean per-label ECE). Click a dataset for its "
        "report.</p>"
        f'<table><thead><tr><th class="text">rung</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )
    path = store.root / INDEX_FILE
    path.write_text(_page("bench: all datasets", body), encoding="utf-8")
    return path
