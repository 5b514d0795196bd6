"""The store survives interrupted runs, concurrent runs, corrupt files and hostile model files.

Interrupted runs are real processes killed with SIGINT or SIGKILL at each stage of a rung (fit, save, timing,
store); the next run must give exactly the results of an uninterrupted one, and no wrapper may build on a base
artifact other than the one its base's stored result names.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.rungs import registry
from bench.rungs.protocol import Rung
from bench.rungs.wrapper import Wrapper
from bench.store.results import ResultStore, artifact_digest

RUNGS = ("tfidf_lr", "tfidf_lr+sharpen")
DATASET = "toy_sentiment"
STAGES = ("fit", "save", "timing", "store")


class Sharpen(Wrapper):
    """A numpy-only calibration wrapper (a power of the base's probabilities, chosen on validation), so killed
    child processes need not import torch: the harness treats it as any wrapper."""

    def __init__(self, base: Rung, grid: tuple[float, ...] = (0.5, 1.0, 2.0)) -> None:
        self._set_bases([base])
        self.grid = grid

    def fit_own(self, train, validation) -> None:
        p = np.clip(self.base.predict_proba(validation.inputs), 1e-9, 1)
        nll = [-np.log(self._power(p, a)[np.arange(len(p)), validation.y]).mean() for a in self.grid]
        self.power_ = float(self.grid[int(np.argmin(nll))])

    @staticmethod
    def _power(p: np.ndarray, a: float) -> np.ndarray:
        q = p**a
        return q / q.sum(axis=1, keepdims=True)

    def predict_proba(self, inputs) -> np.ndarray:
        return self._power(np.clip(self.base.predict_proba(inputs), 1e-9, 1), self.power_)

    def state(self) -> dict:
        return {"power": self.power_}

    def restore(self, state: dict) -> None:
        self.power_ = state["power"]


def register() -> None:
    registry.register_rung(
        RUNGS[1], f"{__name__}:Sharpen", family="test", description="power calibration", bases=(RUNGS[0],)
    )


def install_faults(stage: str, sig: int, victim: str, perturb: bool) -> list[tuple[object, str, object]]:
    """Make this process send itself ``sig`` at ``stage`` of rung ``victim``; with ``perturb`` the tfidf fit changes
    (its coefficients scaled), as a refit that is not bit-for-bit repeatable (a GPU, another library) would.
    Returns what was replaced, for :func:`remove_faults`."""
    import bench.evaluate.harness as harness
    import bench.execute.local as local
    import bench.store.results as results
    from baselines.tfidf import TfidfLogisticRegression

    current = {"rung": None}

    def die(at: str) -> None:
        if at == stage and current["rung"] == victim:
            os.kill(os.getpid(), sig)

    evaluate, fit, fit_own = harness.evaluate, TfidfLogisticRegression.fit, Sharpen.fit_own
    save, efficiency, write = harness.save_rung, harness.time_rung, results._atomic_write_bytes

    def tracked(rung_name, *args, **kwargs):
        current["rung"] = rung_name
        return evaluate(rung_name, *args, **kwargs)

    def fit_then(self, train, validation):
        fit(self, train, validation)
        if perturb:
            self.clf_.coef_ = self.clf_.coef_ * 1.5
        die("fit")
        return self

    def fit_own_then(self, train, validation):
        fit_own(self, train, validation)
        die("fit")

    def save_then(rung, folder):  # written into the temporary folder, not yet in place
        save(rung, folder)
        die("save")

    def timing(*args, **kwargs):  # the new artifact is in place, its result not yet written
        die("timing")
        return efficiency(*args, **kwargs)

    def store(path, fn):  # the predictions are written, result.json not yet
        if path.name == "result.json":
            die("store")
        return write(path, fn)

    patches = [
        (local, "evaluate", tracked),
        (TfidfLogisticRegression, "fit", fit_then),
        (Sharpen, "fit_own", fit_own_then),
        (harness, "save_rung", save_then),
        (harness, "time_rung", timing),
        (results, "_atomic_write_bytes", store),
    ]
    undo = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, new in patches:
        setattr(obj, name, new)
    return undo


def remove_faults(undo: list[tuple[object, str, object]]) -> None:
    for obj, name, old in undo:
        setattr(obj, name, old)


# A child process that kills itself (SIGKILL cannot be caught, so it needs its own process).
CHILD = """
import signal, sys
sys.path.insert(0, sys.argv[1])
import test_store_safety as t
from bench.cli import main
t.register()
t.install_faults(sys.argv[2], getattr(signal, sys.argv[3]), sys.argv[4], sys.argv[5] == "1")
sys.exit(main(sys.argv[6:]))
"""


def _argv(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--models",
        ",".join(RUNGS),
        "--datasets",
        DATASET,
        "--data-dir",
        str(data),
        "--profile",
        "quick",
        "--seed",
        "0",
        "--output",
        str(out),
        "--no-html",
        *extra,
    ]


def _killed(stage: str, sig: str, victim: str, perturb: bool, argv: list[str], capsys) -> tuple[int, str]:
    """Run ``argv`` interrupted by ``sig`` at ``stage`` of ``victim``: SIGINT in this process (as Ctrl-C is),
    SIGKILL in a child. Returns the exit code (negative: killed by that signal) and stderr."""
    if sig == "SIGINT":
        undo = install_faults(stage, signal.SIGINT, victim, perturb)
        try:
            code = main(argv)
        finally:
            remove_faults(undo)
        return code, capsys.readouterr().err
    tests = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, tests, stage, sig, victim, "1" if perturb else "0", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stderr


def _outcome(out: Path) -> dict[str, tuple]:
    """What must not depend on interruptions: each rung's metrics, fit choices, config and predictions."""
    store = ResultStore(out)
    found = {}
    for rung in RUNGS:
        r = store.read(DATASET, rung)
        assert r is not None and r["status"] == "ok", r
        probs, labels = store.load_predictions(DATASET, rung)
        fit_info = {k: v for k, v in r["fit_info"].items() if not k.endswith("fit_seconds")}
        found[rung] = (r["config_hash"], r["metrics"], fit_info, probs.tolist(), labels.tolist())
    return found


def _check_consistent(out: Path) -> None:
    """Every stored artifact is the one its result names, and the wrapper was built on its base's stored one."""
    store = ResultStore(out)
    for rung in RUNGS:
        r = store.read(DATASET, rung)
        folder = store.rung_dir(DATASET, rung)
        assert artifact_digest(folder / "artifact") == r["artifact_sha256"]
        assert not list(folder.glob(".artifact.*")) and not list(folder.glob(".*.tmp"))  # no leftovers
    wrapper, base = store.read(DATASET, RUNGS[1]), store.read(DATASET, RUNGS[0])
    assert wrapper["base_artifacts"][RUNGS[0]] in (None, base["artifact_sha256"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The toy data and one uninterrupted run of the base and its wrapper (the wrapper registered meanwhile)."""
    from conftest import make_toy_data

    register()
    root = tmp_path_factory.mktemp("interrupt")
    data = make_toy_data(root / "data")
    out = root / "reference"
    assert main(_argv(data, out)) == 0
    yield data, out, _outcome(out)
    registry.unregister_rung(RUNGS[1])


@pytest.mark.parametrize("sig", ["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("stage", STAGES)
def test_a_rerun_killed_at_any_stage_resumes_to_the_uninterrupted_results(reference, tmp_path, capsys, stage, sig):
    """A forced refit whose new fit differs, killed at ``stage`` of the base: the old result must never be paired
    with the new artifact or predictions; the next run gives exactly the uninterrupted results."""
    data, ref, expected = reference
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    code, err = _killed(stage, sig, RUNGS[0], True, _argv(data, out, "--force"), capsys)
    assert code == (130 if sig == "SIGINT" else -signal.SIGKILL), err[-2000:]
    assert "Traceback" not in err
    if sig == "SIGINT":
        assert err.strip().splitlines()[-1] == "bench: interrupted"
    assert main(_argv(data, out)) == 0
    assert _outcome(out) == expected
    _check_consistent(out)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("stage", STAGES)
def test_a_first_run_killed_in_the_wrapper_resumes_to_the_uninterrupted_results(
    reference, tmp_path, capsys, stage, sig
):
    """Killed at ``stage`` of the wrapper, after its base finished: the base is kept (and, after SIGINT, its
    leaderboard written), the next run fits only the wrapper and ends as an uninterrupted run."""
    data, _, expected = reference
    out = tmp_path / "out"
    code, err = _killed(stage, sig, RUNGS[1], False, _argv(data, out), capsys)
    assert code == (130 if sig == "SIGINT" else -signal.SIGKILL), err[-2000:]
    store = ResultStore(out)
    assert store.read(DATASET, RUNGS[1]) is None and store.read(DATASET, RUNGS[0])["status"] == "ok"
    if sig == "SIGINT":
        assert RUNGS[0] in (out / DATASET / "leaderboard.md").read_text()
    base_before = store.read(DATASET, RUNGS[0])["created_at"]
    assert main(_argv(data, out)) == 0
    assert store.read(DATASET, RUNGS[0])["created_at"] == base_before  # not refitted
    assert _outcome(out) == expected
    _check_consistent(out)


# ------------------------------------------------------------------------------------------- hostile model files


class _Evil:
    """Unpickling this creates ``marker`` (what a real attack would do instead is worse)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _forge(out: Path, rung: str, name: str, payload: bytes, fix_hash: bool) -> None:
    """Replace a stored model file; with ``fix_hash`` also the hash in result.json (an attacker who edits both)."""
    folder = out / DATASET / rung / "seed-0"
    (folder / "artifact" / name).write_bytes(payload)
    if fix_hash:
        result = json.loads((folder / "result.json").read_text())
        result["artifact_sha256"] = artifact_digest(folder / "artifact")
        (folder / "result.json").write_text(json.dumps(result))


@pytest.mark.parametrize("fix_hash", [False, True], ids=["file-only", "file-and-hash"])
@pytest.mark.parametrize("name", ["rung.skops", "rung.pkl"])
def test_a_stored_model_replaced_by_a_malicious_pickle_never_runs(reference, tmp_path, capsys, name, fix_hash):
    data, ref, expected = reference
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    marker = tmp_path / "pwned"
    _forge(out, RUNGS[0], name, pickle.dumps(_Evil(marker)), fix_hash)
    # retiming the base, and the wrapper building on it, both would load the file
    shutil.rmtree(out / DATASET / RUNGS[1])
    code = main(_argv(data, out))
    err = capsys.readouterr().err
    assert not marker.exists()
    if fix_hash and name == "rung.skops":  # the hash matches, so the file is read: refused, nothing built
        assert code == 2
        lines = [line for line in err.splitlines() if line.startswith("bench: error:")]
        assert len(lines) == 1 and "not a model file bench wrote" in lines[0] and "--force" in lines[0]
        assert main([*_argv(data, out), "--force"]) == 0  # a refit on request replaces it
    else:  # not the artifact its result names, or a name bench never reads: fitted again
        assert code == 0
    assert not marker.exists()
    assert _outcome(out) == expected


def test_a_skops_file_naming_a_foreign_type_is_refused(reference, tmp_path, capsys):
    import skops.io as sio

    data, ref, _ = reference
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    _forge(out, RUNGS[0], "rung.skops", sio.dumps({"run": os.system}), fix_hash=True)
    shutil.rmtree(out / DATASET / RUNGS[1])
    assert main(_argv(data, out)) == 2
    err = capsys.readouterr().err
    assert "refusing to load it" in err and "system" in err


def test_a_class_file_naming_a_foreign_module_imports_nothing(reference, tmp_path):
    from bench.rungs.protocol import UnsafeArtifactError
    from bench.rungs.registry import load_rung

    _, ref, _ = reference
    folder = tmp_path / "artifact"
    shutil.copytree(ref / DATASET / RUNGS[0] / "seed-0" / "artifact", folder)
    (folder / "rung.json").write_text(json.dumps({"class": "antigravity:geohash"}))
    with pytest.raises(UnsafeArtifactError, match="no registered rung's class"):
        load_rung(folder)
    assert "antigravity" not in sys.modules


# ---------------------------------------------------------------------------------------- corrupt stored files


def _corrupt_predictions(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


def _result_as_list(path: Path) -> None:
    path.write_text("[1, 2, 3]")


def _result_without_metrics(path: Path) -> None:
    result = json.loads(path.read_text())
    del result["metrics"]
    path.write_text(json.dumps(result))


def _result_truncated(path: Path) -> None:
    path.write_text(path.read_text()[:100])


@pytest.mark.parametrize(
    ("damage", "file"),
    [
        (_corrupt_predictions, "predictions.npz"),
        (_result_as_list, "result.json"),
        (_result_without_metrics, "result.json"),
        (_result_truncated, "result.json"),
    ],
)
def test_a_corrupt_stored_file_is_reported_and_recomputed(reference, tmp_path, capsys, caplog, damage, file):
    data, ref, expected = reference
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    damage(out / DATASET / RUNGS[0] / "seed-0" / file)
    assert main(["report", "--output", str(out), "--no-html"]) == 0  # the report goes on without it
    assert "Traceback" not in capsys.readouterr().err
    assert "unreadable" in caplog.text or "unusable" in caplog.text
    assert main(_argv(data, out)) == 0  # and `run` repairs it
    assert _outcome(out) == expected


# ---------------------------------------------------------------------------------------------- one writer


def test_a_second_run_into_a_busy_output_gets_one_clear_line(reference, tmp_path, capsys):
    data, ref, _ = reference
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; fh = open(sys.argv[1], 'a+'); fcntl.flock(fh, fcntl.LOCK_EX); "
            "fh.truncate(0); fh.write('pid 4242, `bench run` since then'); fh.flush(); "
            "print('held', flush=True); time.sleep(60)",
            str(out / ".bench.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
        assert main([*_argv(data, out), "--force"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("bench: error:") and "pid 4242" in err[0]
        after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".bench.lock"}
        assert after == {p: t for p, t in before.items() if p.name != ".bench.lock"}  # nothing written
    finally:
        holder.kill()
        holder.wait()
    assert main(_argv(data, out)) == 0  # released when its holder dies


def test_artifacts_hold_no_pickles(reference):
    """Every stored model file is safetensors, JSON or skops: formats that cannot run code when read."""
    _, ref, _ = reference
    names = {p.suffix for p in (ref / DATASET).rglob("artifact/**/*") if p.is_file()}
    assert names <= {".skops", ".json", ".safetensors", ".txt"}, names
    assert np.all([not p.name.endswith(".pkl") for p in ref.rglob("*")])


def test_two_datasets_under_one_name_never_share_a_table(tmp_path, caplog):
    """Two files named x.jsonl run one after the other into one output: the table shows only the newer data's
    rungs and says what it left out; the run warns."""
    from conftest import sentiment_rows

    out = tmp_path / "out"
    for folder, n, rungs in (("a", 40, "majority,tfidf_lr"), ("b", 60, "tfidf_lr")):
        path = tmp_path / folder / "x.jsonl"
        path.parent.mkdir()
        path.write_text("".join(json.dumps(r) + "\n" for r in sentiment_rows(n)))
        argv = ["run", "--models", rungs, "--data", str(path), "--profile", "quick", "--output", str(out)]
        assert main([*argv, "--no-html"]) == 0
    assert "holds results computed on other data" in caplog.text and str(tmp_path / "a" / "x.jsonl") in caplog.text
    board = (out / "x" / "leaderboard.md").read_text()
    table = [line for line in board.splitlines() if line.startswith("| ")]
    assert any(line.startswith("| tfidf_lr ") for line in table)
    assert not any(line.startswith("| majority ") for line in table)
    assert "left out: majority seed 0, computed on other data" in board
