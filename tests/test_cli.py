"""The CLI: list, run, report, and one clear error line (exit 2) for each kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("random", "stratified", "majority", "rules", "tfidf_lr"):
        assert name in out
    assert main(["list", "tfidf*"]) == 0 and "majority" not in capsys.readouterr().out


def test_run_and_report(toy_data, tmp_path, capsys):
    out = tmp_path / "res"
    code = main(
        (
            f"run --models majority,tfidf* --datasets toy_sentiment,toy_tags "
            f"--data-dir {toy_data} --profile quick --output {out}"
        ).split()
    )
    assert code == 0
    for ds in ("toy_sentiment", "toy_tags"):
        assert (out / ds / "leaderboard.md").is_file()
        for rung in ("majority", "tfidf_lr"):
            assert json.loads((out / ds / rung / "seed-0" / "result.json").read_text())["status"] == "ok"
    (out / "toy_sentiment" / "leaderboard.md").unlink()
    assert main(["report", "--output", str(out)]) == 0
    assert (out / "toy_sentiment" / "leaderboard.md").is_file()


def test_data_folder_keeps_its_card_fields(toy_data, tmp_path):
    code = main((f"run --models majority --data {toy_data / 'toy_pairs'} --profile quick --output {tmp_path}").split())
    assert code == 0
    stored = json.loads((tmp_path / "toy_pairs" / "majority" / "seed-0" / "result.json").read_text())
    assert stored["data"]["task"] == "sentence-pair"


def test_wrappers_run_after_their_base(capsys):
    from bench.cli import _expand_rungs

    assert _expand_rungs(["finetuned+ts", "finetuned", "tfidf*"]) == [
        "tfidf_lr",
        "finetuned",
        "tfidf_lr+ts",
        "finetuned+ts",
    ]


def test_byo_data_file(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        "".join(json.dumps({"body": f"{w} {i}", "y": w}) + "\n" for i in range(40) for w in ("good", "bad"))
    )
    code = main(
        (
            f"run --models majority --data {path} --text-column body --label-column "
            f"y --profile quick --output {tmp_path / 'o'}"
        ).split()
    )
    assert code == 0 and (tmp_path / "o" / "mine" / "majority" / "seed-0" / "result.json").is_file()


@pytest.fixture
def stored(toy_data, tmp_path):
    """A results folder with one stored result, to prove bad input loses nothing."""
    out = tmp_path / "keep"
    assert (
        main(
            (
                f"run --models majority --datasets toy_sentiment --data-dir {toy_data} --profile quick --output {out}"
            ).split()
        )
        == 0
    )
    path = out / "toy_sentiment" / "majority" / "seed-0" / "result.json"
    return out, path, path.read_bytes()


def _write(tmp_path, name, text: bytes):
    p = tmp_path / name
    p.write_bytes(text)
    return str(p)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "majorty"], "unknown rung 'majorty'; did you mean 'majority'"),
        (
            ["--models", "majority", "--datasets", "toy_sentimnet"],
            "unknown dataset 'toy_sentimnet'; did you mean 'toy_sentiment'",
        ),
        (["--models", "majority", "--data-dir", "/nonexistent/data", "--datasets", "sst2"], "does not exist"),
        (["--models", "majority", "--profile", "fast"], "unknown profile 'fast'"),
        (["--models", "majority", "--device", "tpu"], "unknown device"),
        (["--models", "nothing*"], "no rung matches"),
        (["--models", "finetuned", "--option", "finetuned.model=./no/such/checkpoint"], "does not exist"),
        (["--models", "finetuned", "--option", "finetuned.nonsense=1"], "has no option 'nonsense'"),
        (["--models", "finetuned", "--option", "finetuned"], "expected RUNG.KEY=VALUE"),
        (["--models", "tfidf_lr", "--option", "tfidf_lr.seed=3"], "use --seed instead"),
        (["--models", "majority", "--alpha", "1.5"], "a miscoverage between 0 and 1"),
        ([], "choose the rungs"),
    ],
)
def test_bad_arguments(stored, toy_data, capsys, args, message):
    out, path, before = stored
    full = ["run", *args, "--output", str(out)]
    if "--data-dir" not in args:
        full += ["--data-dir", str(toy_data)]
    if "--datasets" not in args:
        full += ["--datasets", "toy_sentiment"]
    assert main(full) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and message in err and "\n" not in err
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (b'{"text": "", "label": "a"}\n{"text": "x", "label": "b"}\n', [], "is empty"),
        (b'{"text": ["x"], "label": "a"}\n', [], "not a string"),
        (b'{"label": "a"}\n', [], "missing text field"),
        (b'{"text": "caf\xe9", "label": "a"}\n', [], "not valid UTF-8"),
        (
            b'{"text": "a", "label": "a"}\n{"text": "b", "label": "a"}\n{"text": "c", "label": "a"}\n',
            [],
            "single class",
        ),
        (b"", [], "no rows"),
    ],
)
def test_bad_data_files(stored, tmp_path, capsys, content, extra, message):
    out, path, before = stored
    data = _write(tmp_path, "in.jsonl", content)
    assert main(["run", "--models", "majority", "--data", data, "--output", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and message in err and "\n" not in err
    assert path.read_bytes() == before


def test_bad_csv_and_card_label(stored, tmp_path, toy_data, capsys):
    out, path, before = stored
    csv = _write(tmp_path, "in.csv", b"body,label\nhello,a\nbye,b\n")
    assert main(["run", "--models", "majority", "--data", csv, "--output", str(out)]) == 2
    assert "no column 'text'" in capsys.readouterr().err
    folder = toy_data / "toy_sentiment"
    with (folder / "test.jsonl").open("a") as fh:
        fh.write(json.dumps({"text": "meh", "label": "neutral"}) + "\n")
    assert main((f"run --models majority --datasets toy_sentiment --data-dir {toy_data} --output {out}").split()) == 2
    assert "label 'neutral' is not one of the labels" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_module_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--help"], capture_output=True, text=True, check=True)
    for flag in (
        "--all",
        "--models",
        "--datasets",
        "--profile",
        "--seed",
        "--device",
        "--output",
        "--force",
        "--data-dir",
        "--data",
    ):
        assert flag in proc.stdout


def test_data_is_repeatable(tmp_path):
    paths = []
    for name, offset in (("first", 0), ("second", 100)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(
            "".join(json.dumps({"text": f"t {i + offset}", "label": "ab"[i % 2]}) + "\n" for i in range(30))
        )
        paths += ["--data", str(path)]
    assert main(["run", "--models", "majority", *paths, "--profile", "quick", "--output", str(tmp_path / "o")]) == 0
    for name in ("first", "second"):
        assert (tmp_path / "o" / name / "majority" / "seed-0" / "result.json").is_file()
