"""Matplotlib (Agg) figures of stored results: trade-offs, reliability, the MC sweep, confusion, distributions."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.evaluate.calibration import calibration_error, reliability_table

DPI = 110
ECE_FLOOR = 1e-4


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def save_png(fig: Figure, path: Path) -> bytes:
    """Write the figure to ``path`` as PNG and return the bytes."""
    data = png_bytes(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def pareto_front(x: Sequence[float], y: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both lower ``x`` and higher ``y``, by increasing ``x``."""
    order = sorted(range(len(x)), key=lambda i: (x[i], -y[i]))
    front, best = [], -np.inf
    for i in order:
        if y[i] > best:
            front.append(i)
            best = y[i]
    return front


def _labelled_scatter(ax: Any, frame: pd.DataFrame, x: str, y: str, sizes: np.ndarray | None = None) -> None:
    """Scatter in each rung's colour (``frame["colour"]``, declared at registration), each point labelled; labels
    that would overlap are moved down a line."""
    for (_, row), s in zip(frame.iterrows(), sizes if sizes is not None else [40] * len(frame)):
        ax.scatter(row[x], row[y], s=s, color=row["colour"], alpha=0.75, edgecolor="black", linewidth=0.5, zorder=3)
    ax.grid(True, alpha=0.3)
    ax.figure.canvas.draw()  # fixes the data-to-pixel transform (log axes, limits)
    placed: list[tuple[float, float]] = []
    for _, row in frame.sort_values([y, x], ascending=[False, True]).iterrows():
        px, py = ax.transData.transform((row[x], row[y]))
        dy = 4.0
        while any(abs(px - qx) < 70 and abs(py + dy - qy) < 9 for qx, qy in placed):
            dy -= 9
        placed.append((px, py + dy))
        leader = {"arrowprops": {"arrowstyle": "-", "lw": 0.5, "color": "grey"}} if dy < 0 else {}
        ax.annotate(
            row["rung"], (row[x], row[y]), xytext=(6, dy), textcoords="offset points", fontsize=8, zorder=4, **leader
        )


def _legend_label(families: Sequence[str]) -> str:
    """One legend entry for the families drawn in one colour: their shared ``+suffix`` ("*+calibration") or names."""
    suffixes = {f.partition("+")[2] for f in families}
    if len(families) > 1 and len(suffixes) == 1 and "" not in suffixes:
        return f"*+{suffixes.pop()}"
    return ", ".join(families)


def _legend(ax: Any, frame: pd.DataFrame, extra: Sequence[Any] = ()) -> None:
    """A legend of the colours present (families in ladder order), plus ``extra`` handles."""
    from matplotlib.lines import Line2D

    by_colour: dict[str, list[str]] = {}
    for family, colour in zip(frame["family"], frame["colour"]):
        if family not in by_colour.setdefault(colour, []):
            by_colour[colour].append(family)
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=_legend_label(f)) for c, f in by_colour.items()]
    ax.legend(handles=[*handles, *extra], loc="lower right", fontsize=8)


def tradeoff_latency(frame: pd.DataFrame, title: str) -> Figure:
    """Macro-F1 against latency p50 (log scale), Pareto frontier drawn, marker area by size on disk."""
    data = frame.dropna(subset=["latency p50 (ms)", "macro-F1"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    size = data["size"].fillna(0).astype(float).to_numpy()
    areas = 30 + 400 * np.sqrt(size / size.max()) if len(size) and size.max() > 0 else None
    _labelled_scatter(ax, data, "latency p50 (ms)", "macro-F1", areas)
    front = pareto_front(data["latency p50 (ms)"].tolist(), data["macro-F1"].tolist())
    if front:
        pts = data.loc[front, ["latency p50 (ms)", "macro-F1"]].to_numpy()
        ax.step(
            pts[:, 0],
            pts[:, 1],
            where="post",
            color="black",
            linestyle="--",
            linewidth=1,
            label="Pareto frontier",
            zorder=2,
        )
    _legend(ax, data, ax.get_legend_handles_labels()[0])
    ax.set_xscale("log")
    ax.set_xlabel("latency p50, one text per call (ms, log scale)")
    ax.set_ylabel("macro-F1 (test)")
    ax.set_title(f"{title}: quality against speed (marker area: size on disk)")
    return fig


def tradeoff_calibration(frame: pd.DataFrame, title: str) -> Figure:
    """Macro-F1 against ECE: up and to the left is better."""
    data = frame.dropna(subset=["ECE", "macro-F1"]).reset_index(drop=True)
    data["ECE"] = data["ECE"].astype(float).clip(lower=ECE_FLOOR)  # a log axis cannot show 0
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.set_xscale("log")
    _labelled_scatter(ax, data, "ECE", "macro-F1")
    _legend(ax, data)
    ax.set_xlabel(f"ECE (log scale, lower is better; below {ECE_FLOOR:g} drawn at {ECE_FLOOR:g})")
    ax.set_ylabel("macro-F1 (test)")
    ax.set_title(f"{title}: quality against calibration")
    return fig


def reliability_grid(panels: list[tuple[str, np.ndarray, np.ndarray]], n_bins: int, title: str) -> Figure:
    """One column per rung: accuracy per confidence bin against the diagonal, the confidence histogram under it.

    ``panels`` holds (rung, confidence, correct) triples.
    """
    cols = len(panels)
    fig, axes = plt.subplots(
        2, cols, figsize=(3.2 * cols, 4.6), sharex=True, squeeze=False, gridspec_kw={"height_ratios": [3, 1]}
    )
    edges = np.linspace(0, 1, n_bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for j, (rung, conf, correct) in enumerate(panels):
        table = reliability_table(conf, correct, n_bins)
        acc = np.array([np.nan if v is None else v for v in table["accuracy"]], dtype=float)
        top, bottom = axes[0, j], axes[1, j]
        top.bar(centres, acc, width=1 / n_bins, edgecolor="black", linewidth=0.4, color="#4c72b0", label="accuracy")
        top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
        top.set_title(f"{rung}\nECE {calibration_error(conf, correct, n_bins):.4f}", fontsize=9)
        top.set_ylim(0, 1)
        top.set_xlim(0, 1)
        bottom.hist(conf, bins=edges, color="#999999", edgecolor="black", linewidth=0.4)
        bottom.set_xlabel("confidence")
        if j == 0:
            top.set_ylabel("accuracy")
            bottom.set_ylabel("count")
            top.legend(loc="upper left", fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def risk_coverage(curves: dict[str, tuple[np.ndarray, np.ndarray, str, float]], title: str) -> Figure:
    """Selective risk against coverage, one line per rung: ``curves`` maps a rung to (coverage, risk, colour, AURC)."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for rung, (coverage, risk, colour, aurc) in curves.items():
        ax.step(coverage, risk, where="post", color=colour, linewidth=1.4, label=f"{rung} (AURC {aurc:.4f})")
    ax.set_xlabel("coverage (share of test decisions accepted, most confident first)")
    ax.set_ylabel("selective risk (error rate among the accepted)")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig


def mc_sweep(sweep: dict[str, Any]) -> Figure:
    """ECE and accuracy against the number of MC passes (mean ± std over repeats), deterministic rung as a line."""
    summary = pd.DataFrame(sweep["summary"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric, label in ((axes[0], "ece", "ECE"), (axes[1], "accuracy", "accuracy")):
        ax.errorbar(
            summary["passes"],
            summary[f"{metric}_mean"],
            yerr=summary[f"{metric}_std"],
            marker="o",
            capsize=3,
            label=f"MC-Dropout (mean ± std, {sweep['repeats']} repeats)",
        )
        ax.axhline(sweep["deterministic"][metric], color="black", linestyle="--", linewidth=1, label="deterministic")
        ax.set_xscale("log")
        ax.set_xticks(summary["passes"], [str(p) for p in summary["passes"]])
        ax.set_xlabel("stochastic passes T")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{sweep['dataset']}: MC-Dropout against the number of passes ({sweep['test_examples']} test examples, "
        f"{sweep['ece_bins']}-bin ECE)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def confusion(matrix: np.ndarray, labels: Sequence[str], title: str) -> Figure:
    """Row-normalised confusion matrix (each true class sums to 1), counts in the cells."""
    matrix = np.asarray(matrix, dtype=float)
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.1 + 0.55 * n, 0.9 + 0.5 * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def class_distribution(counts: dict[str, dict[str, int]], title: str) -> Figure:
    """Examples per class for each split given (``{split: {label: count}}``), as fractions."""
    frame = pd.DataFrame(counts).fillna(0)
    frame = frame / frame.sum(axis=0)
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(frame) + 2), 3.4))
    frame.plot.bar(ax=ax, width=0.8)
    ax.set_ylabel("fraction of examples")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def length_distribution(lengths: dict[str, np.ndarray], title: str) -> Figure:
    """Histogram of text lengths in words, one series per split."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    top = max((np.percentile(v, 99.5) for v in lengths.values() if len(v)), default=1)
    bins = np.linspace(0, max(top, 1), 40)
    for name, values in lengths.items():
        ax.hist(
            np.clip(values, 0, bins[-1]),
            bins=bins,
            alpha=0.5,
            density=True,
            label=f"{name} (median {np.median(values):.0f})",
        )
    ax.set_xlabel("words per example (clipped at the 99.5th percentile)")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def per_class_f1(per_class: dict[str, dict[str, dict[str, float]]], title: str) -> Figure:
    """Per-class (per-label) F1 of several rungs side by side: ``{rung: {label: {"f1": ...}}}``."""
    frame = pd.DataFrame(
        {rung: {label: s.get("f1") for label, s in scores.items()} for rung, scores in per_class.items()}
    )
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(frame) * max(1, len(per_class)) / 2 + 3), 3.6))
    frame.plot.bar(ax=ax, width=0.85)
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
