"""HTML reports: content from stored results alone, plots on disk and inline, statuses, and a real browser."""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
from pathlib import Path

import pytest

from bench.cli import main
from bench.data import load_dataset
from bench.evaluate.harness import RunSettings
from bench.pipeline import run
from bench.profiles import get_profile
from bench.report.html import INDEX_FILE, PLOTS_DIR, REPORT_FILE, write_index, write_report
from bench.report.leaderboard import build, formatted
from bench.report.plots import pareto_front
from bench.store.results import ResultStore
from tests.browser import chromium, render
from tests.conftest import make_toy_data, register_exploding

QUICK = RunSettings(profile=get_profile("quick"))
RUNS = {
    "toy_sentiment": ["random", "majority", "rules", "tfidf_lr", "tfidf_lr+ts", "exploding"],
    "toy_tags": ["random", "majority", "rules", "tfidf_lr"],
    "toy_pairs": ["majority", "rules", "tfidf_lr"],
}
PNG = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> tuple[Path, Path]:
    """Stored toy results and their reports: ``(results folder, data folder)``."""
    root = tmp_path_factory.mktemp("report")
    data = make_toy_data(root / "data")
    out = root / "results"
    with pytest.MonkeyPatch.context() as mp:
        register_exploding(mp)
        for name, rungs in RUNS.items():
            run([load_dataset(name, data_dir=data)], rungs, QUICK, out)
    store = ResultStore(out)
    for name in RUNS:
        write_report(store, name, data_dir=data)
    write_index(store)
    return out, data


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)]


def test_pareto_front():
    latency = [1.0, 2.0, 3.0, 0.5, 2.5]
    f1 = [0.6, 0.8, 0.7, 0.3, 0.9]
    assert pareto_front(latency, f1) == [3, 0, 1, 4]  # 2 (slower than 1, worse) is dominated


def test_report_has_the_leaderboard_with_best_marked_and_statuses(reports):
    out, _ = reports
    page = (out / "toy_sentiment" / REPORT_FILE).read_text()
    frame = build(ResultStore(out), "toy_sentiment").frame
    shown = formatted(frame)
    for _, row in frame[frame.status == "ok"].iterrows():
        assert f"{row['macro-F1']:.4f}" in page and f"{row['ECE']:.4f}" in page
    best = frame.attrs["best"]
    assert "macro-F1" not in best  # the top two (tfidf_lr, tfidf_lr+ts) decide alike: neither is marked best
    assert best and all(
        f'<td class="best">{html.escape(shown.loc[i, column])}</td>' in page
        for column, rows in best.items()
        for i in rows
    )
    assert '<tr class="failed">' in page and "boom in fit" in page
    pairs = (out / "toy_pairs" / REPORT_FILE).read_text()
    assert '<tr class="not_applicable">' in pairs and "do not apply to sentence pairs" in pairs
    for section in ("Trade-offs", "Reliability", "Per rung", "Dataset", "Error analysis", "Run"):
        assert f"<h2>{section}" in page


def test_plots_are_inline_and_written_next_to_the_report(reports):
    out, _ = reports
    for name in RUNS:
        page = (out / name / REPORT_FILE).read_text()
        inline = _images(page)
        on_disk = sorted((out / name / PLOTS_DIR).glob("*.png"))
        assert inline and all(img.startswith(PNG) for img in inline)
        assert sorted(inline) == sorted(p.read_bytes() for p in on_disk)
        assert 'src="http' not in page and "<script" not in page  # self-contained
    sentiment = {p.stem for p in (out / "toy_sentiment" / PLOTS_DIR).glob("*.png")}
    assert {
        "pareto_f1_latency",
        "f1_ece",
        "reliability_tfidf_lr",
        "confusion_tfidf_lr+ts".replace("+", "_"),
        "class_distribution",
        "text_length",
    } <= sentiment
    assert "per_label_f1" in {p.stem for p in (out / "toy_tags" / PLOTS_DIR).glob("*.png")}


def test_reliability_groups_plain_and_calibrated_variants(reports):
    page = (reports[0] / "toy_sentiment" / REPORT_FILE).read_text()
    assert 'alt="reliability diagrams: tfidf_lr, tfidf_lr+ts"' in page


def test_error_analysis_shows_texts_from_the_matching_dataset(reports, tmp_path):
    out, data = reports
    page = (out / "toy_sentiment" / REPORT_FILE).read_text()
    ds = load_dataset("toy_sentiment", data_dir=data)
    section = page.split("<h2>Error analysis")[1].split("<h2>")[0]
    assert sum(t in section for t in ds.test.texts) >= 10 and "text unavailable" not in section
    # without the data the report still renders, saying where texts are missing
    copy = tmp_path / "results"
    shutil.copytree(out / "toy_sentiment", copy / "toy_sentiment")
    moved = tmp_path / "elsewhere"
    shutil.move(str(data), moved)
    try:
        bare = write_report(ResultStore(copy), "toy_sentiment", data_dir=tmp_path / "nowhere").read_text()
    finally:
        shutil.move(str(moved), data)
    assert "text unavailable" in bare and "not found" in bare and "<h2>Reliability" in bare


def test_report_needs_no_model(reports, tmp_path, monkeypatch):
    out, data = reports
    copy = tmp_path / "results"
    shutil.copytree(out / "toy_tags", copy / "toy_tags")
    for artifact in copy.rglob("artifact"):
        shutil.rmtree(artifact)

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded or built")

    monkeypatch.setattr("bench.rungs.registry.load_rung", refuse)
    monkeypatch.setattr("bench.evaluate.harness.load_rung", refuse)
    monkeypatch.setattr("bench.rungs.registry.create_rung", refuse)
    page = write_report(ResultStore(copy), "toy_tags", data_dir=data).read_text()
    assert page == (out / "toy_tags" / REPORT_FILE).read_text()


def test_index_links_every_report(reports):
    out, _ = reports
    index = (out / INDEX_FILE).read_text()
    for name in RUNS:
        assert f'href="{name}/{REPORT_FILE}"' in index
    tfidf = ResultStore(out).read("toy_sentiment", "tfidf_lr")["metrics"]
    assert f"{tfidf['f1_macro']:.4f} / {tfidf['ece']:.4f}" in index
    assert ">failed<" in index and ">not_applicable<" in index


def test_cli_report_writes_html(reports, tmp_path, capsys):
    out, data = reports
    copy = tmp_path / "r"
    shutil.copytree(out, copy)
    (copy / INDEX_FILE).unlink()
    assert main(["report", "--output", str(copy), "--datasets", "toy_pairs", "--data-dir", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "report.html" in printed and (copy / INDEX_FILE).is_file()


# ---------------------------------------------------------------- in a real browser


def _browser() -> str:
    exe = chromium()
    if exe is None:
        if os.environ.get("BENCH_REQUIRE_BROWSER"):
            pytest.fail("BENCH_REQUIRE_BROWSER is set but no Chromium was found (apt-get install chromium)")
        pytest.skip("Chromium not found: install Debian's `chromium` (or set BENCH_CHROMIUM) to run the browser tests")
    return exe


def _assert_renders(page: Path, exe: str) -> None:
    shown = render(page, exe)
    assert not shown.console, f"{page}: console messages {shown.console}"
    assert shown.images == page.read_text().count("<img ") and shown.broken_images == 0, page
    assert shown.ink > 0.002, f"{page}: blank screenshot"  # a blank page: 0; the toy index: ~0.008


def test_the_browser_check_catches_broken_pages(tmp_path):
    exe = _browser()
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><p>x</p><img src="missing.png">'
        '<script>console.error("probe failure")</script></body></html>'
    )
    shown = render(bad, exe)
    assert any("probe failure" in m for m in shown.console) and shown.broken_images == 1 and shown.images == 1
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    assert render(blank, exe).ink < 0.001


def test_toy_reports_render_in_chromium(reports):
    exe = _browser()
    out, _ = reports
    for page in [out / INDEX_FILE, *(out / name / REPORT_FILE for name in RUNS)]:
        _assert_renders(page, exe)


@pytest.mark.parametrize("page", ["index.html", "sst2/report.html", "emotion/report.html"])
def test_committed_reports_render_in_chromium(page):
    exe = _browser()
    path = REPO / "results" / page
    assert path.is_file(), f"{path} is not committed; run `python -m bench report`"
    _assert_renders(path, exe)
    if page != "index.html":
        expected = ["pareto_f1_latency", "reliability_finetuned"] + (["mc_sweep"] if page.startswith("sst2") else [])
        assert all((path.parent / PLOTS_DIR / f"{n}.png").is_file() for n in expected)
