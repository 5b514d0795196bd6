"""Command line: ``python -m bench list | run | rescore | sweep-mc | report | perf``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from bench import __version__
from bench.errors import BenchError, UnknownNameError

DEFAULT_DATASET = "sst2"
DEFAULT_OUTPUT = "results"
MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit
MAX_ECE_BINS = 10_000
MIN_FREE_BYTES = 16 * 2**20  # --output's disk must have this much room before anything runs


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _names(value: str, flag: str) -> list[str]:
    """A comma-separated list given to ``flag``, each item non-empty (``a,,b`` and ``''`` are refused)."""
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise BenchError(f"{flag} {value!r}: an empty item in the list")
    return items


def _check_seed(seed: int, flag: str = "--seed") -> None:
    if not 0 <= seed <= MAX_SEED:
        raise BenchError(f"{flag} {seed}: a seed is an integer from 0 to 2**32 - 1")


def _check_settings(args: argparse.Namespace) -> None:
    """Settings ``run`` and ``sweep-mc`` share, checked before anything is loaded or written: ECE bins, device
    spelling and the output folder."""
    if not 1 <= args.ece_bins <= MAX_ECE_BINS:
        raise BenchError(f"--ece-bins {args.ece_bins}: use 1 to {MAX_ECE_BINS:,} bins")
    if args.device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", args.device):
        raise BenchError(f"unknown device {args.device!r}; use cpu, cuda, cuda:N or auto")
    _check_output(args.output)


def _check_output(output: str) -> None:
    """``--output`` is a folder, or can be made one: its nearest existing folder takes a file and has room."""
    import shutil
    import tempfile
    from pathlib import Path

    path = Path(output or ".")
    if path.exists() and not path.is_dir():
        raise BenchError(f"--output {output!r} is a file, not a folder")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise BenchError(f"--output {output!r}: {str(probe)!r} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise BenchError(f"--output {output!r}: cannot write in {str(probe)!r} ({exc.strerror or exc})") from None
    free = shutil.disk_usage(probe).free
    if free < MIN_FREE_BYTES:
        raise BenchError(f"--output {output!r}: its disk has {free / 2**20:.1f} MiB free; make room first")


def _expand_rungs(patterns: list[str]) -> list[str]:
    from bench.rungs.registry import get_rung, list_rungs

    names: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matched = list_rungs(pattern)
            if not matched:
                raise BenchError(f"no rung matches {pattern!r} (see `python -m bench list`)")
        else:
            matched = [get_rung(pattern).name]
        names += [m for m in matched if m not in names]
    ladder = list_rungs()
    return sorted(names, key=ladder.index)  # ladder order: a base always runs before its wrappers


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench.rungs.registry import get_rung, list_rungs

    rows = [(i.name, i.family, ", ".join(i.bases), i.description) for i in map(get_rung, list_rungs(args.pattern))]
    if not rows:
        raise BenchError(f"no rung matches {args.pattern!r}")
    print(
        tabulate(
            rows,
            headers=["rung", "family", "wraps", "description"],
            tablefmt="simple",
            maxcolwidths=[None, None, None, 80],
        )
    )
    return 0


def _parse_options(items: list[str]) -> dict[str, dict]:
    """``RUNG.KEY=VALUE`` strings → {rung: {key: value}}; values are JSON when they parse, else strings."""
    from bench.rungs.registry import get_rung

    out: dict[str, dict] = {}
    for item in items:
        target, sep, value = item.partition("=")
        rung, dot, key = target.partition(".")
        if not sep or not dot or not key:
            raise BenchError(
                f"--option {item!r}: expected RUNG.KEY=VALUE, e.g. <rung>.lr=3e-5 (rungs: `python -m bench list`)"
            )
        get_rung(rung)
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            if value.strip()[:1] in ("[", "{", '"'):  # meant as JSON: a broken list, object or string
                raise BenchError(f"--option {item!r}: {value!r} is not valid JSON ({exc.msg})") from None
            parsed = value
        if key in out.get(rung, {}):
            raise BenchError(f"--option {rung}.{key} is given twice")
        out.setdefault(rung, {})[key] = parsed
    return out


def _load_datasets(args: argparse.Namespace) -> list:
    """The datasets of ``--data`` (repeatable) or ``--datasets``; two with one name would share an output folder."""
    from bench.data import Columns, load_dataset

    if args.data:
        if args.datasets is not None:
            raise BenchError("use --data PATH or --datasets NAMES, not both")
        named = (args.text_column, args.text_pair_column, args.label_column)
        # a folder's dataset.json names its own fields; column flags override it only when given
        columns = (
            None
            if named == (None, None, None)
            else Columns(args.text_column or "text", args.text_pair_column, args.label_column or "label")
        )
        datasets = [load_dataset(path=path, columns=columns) for path in dict.fromkeys(args.data)]
    else:
        flags = {"--text-column": args.text_column, "--text-pair-column": args.text_pair_column}
        given = [flag for flag, v in {**flags, "--label-column": args.label_column}.items() if v is not None]
        if given:
            raise BenchError(f"{given[0]} applies to --data only (a named dataset's card names its fields)")
        names = _names(args.datasets, "--datasets") if args.datasets is not None else [DEFAULT_DATASET]
        datasets = [load_dataset(name, data_dir=args.data_dir) for name in dict.fromkeys(names)]
    first: dict[str, str] = {}
    unique = []
    for d in datasets:
        other = first.setdefault(d.name, d.source)
        if other != d.source:
            raise BenchError(
                f"{other} and {d.source} are both named {d.name!r}: their results would share one output folder "
                "(rename a file, or set a card's name)"
            )
        if all(u.source != d.source for u in unique):  # one file given twice (./x.csv and x.csv) runs once
            unique.append(d)
    if args.holdout_classes is not None:
        from bench.data.ood import hold_out

        classes = _names(args.holdout_classes, "--holdout-classes")
        unique = [hold_out(d, classes) for d in unique]
    return unique


def _check_options(settings) -> None:
    """Reject options a rung does not take, and let its registration check their values, before anything runs."""
    from bench.rungs.registry import CONTEXT_ARGS, get_rung

    for rung, opts in settings.options.items():
        info = get_rung(rung)
        taken = sorted(set(opts) & CONTEXT_ARGS)
        if taken:
            raise BenchError(f"--option {rung}.{taken[0]}: use --{taken[0]} instead")
        if {"base", "bases"} & set(opts):
            raise BenchError(f"--option {rung}.base: a wrapper's bases are fixed by its registration")
        allowed = info.options()
        unknown = sorted(set(opts) - allowed) if allowed is not None else []
        if unknown:
            raise BenchError(
                f"rung {rung!r} has no option {', '.join(map(repr, unknown))} (options: {', '.join(sorted(allowed))})"
            )
        info.check_options(settings.options_for(rung))  # e.g. a missing local checkpoint fails here


def _write_leaderboards(output: str, datasets: Sequence[str]) -> None:
    from bench.report.leaderboard import write_leaderboard
    from bench.store.results import ResultStore

    store = ResultStore(output)
    for name in datasets:
        paths = write_leaderboard(store, name)
        if paths:
            print(f"leaderboard: {paths[0]}")


def cmd_run(args: argparse.Namespace) -> int:
    from bench.evaluate.harness import RunSettings, resolve_device
    from bench.execute import get_executor
    from bench.pipeline import run
    from bench.profiles import get_profile
    from bench.rungs.registry import list_rungs

    if args.all == bool(args.models):
        raise BenchError("choose the rungs: --all, or --models a,b (wildcards allowed)")
    # Everything is validated before the first rung runs, so bad input never touches stored results.
    rungs = list_rungs() if args.all else _expand_rungs(_names(args.models, "--models"))
    profile = get_profile(args.profile)
    _check_settings(args)
    options = _parse_options(args.option)
    if args.seed is not None and args.seeds is not None:
        raise BenchError("use --seed N or --seeds A,B, not both")
    try:
        seeds = (
            [args.seed]
            if args.seed is not None
            else [int(v) for v in _names(args.seeds, "--seeds")]
            if args.seeds is not None
            else list(profile.seeds)
        )
    except ValueError:
        raise BenchError(f"--seeds takes comma-separated integers, e.g. 0,1,2, not {args.seeds!r}") from None
    if len(set(seeds)) != len(seeds):
        raise BenchError("--seeds must be distinct")
    for seed in seeds:
        _check_seed(seed, "--seed" if args.seed is not None else "--seeds:")
    settings = RunSettings(
        profile=profile,
        seed=seeds[0],
        device=resolve_device(args.device),
        ece_bins=args.ece_bins,
        force=args.force,
        retime=args.retime,
        options=options,
        conformal_alpha=_alpha(args.alpha),
    )
    _check_options(settings)
    if args.address and args.executor != "ray":
        raise BenchError("--address names a Ray cluster: use it with --executor ray")
    executor = get_executor(args.executor, **({"address": args.address} if args.executor == "ray" else {}))
    datasets = _load_datasets(args)
    results = run(datasets, rungs, settings, args.output, seeds, html=not args.no_html, executor=executor)
    failed = [r for r in results if r["status"] == "failed"]
    return 1 if failed and args.strict else 0


def _stored_datasets(store: Any, wanted: str | None) -> list[str]:
    """The datasets named in ``wanted`` (default: every one with results), each checked to have stored results."""
    known = store.datasets()
    names = _csv(wanted) if wanted else known
    if not names:
        raise BenchError(f"no stored results under {str(store.root)!r}; run `python -m bench run` first")
    for name in names:
        if name not in known:
            raise UnknownNameError("dataset with results", name, known)
    return names


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report.html import write_index, write_report
    from bench.report.leaderboard import CSV_FILE, MD_FILE, write_leaderboard
    from bench.store.results import ResultStore

    store = ResultStore(args.output)
    names = _stored_datasets(store, args.datasets)
    with store.locked("bench report"):
        for name in names:
            if args.no_html:
                paths = write_leaderboard(store, name)
                if paths is None:
                    raise BenchError(f"no readable result.json under {store.root / name}")
            else:  # the report writes the leaderboard it shows
                print(f"wrote {write_report(store, name, data_dir=args.data_dir)}")
            folder = store.root / name
            print(f"wrote {folder / MD_FILE} and {folder / CSV_FILE}")
        if not args.no_html:
            print(f"wrote {write_index(store)}")
    return 0


def _perf_suite_run(
    rungs: str, threads: int, timer: str, pytest_args: list[str], env: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """One run of the pytest-benchmark suite over ``rungs``, in a fresh Python process (a process's own state —
    memory layout, thread pools — moves timings too, so runs must not share one): its cases' extra_info by
    ``rung@batch``. The suite's own output is shown only if it fails."""
    import subprocess
    import tempfile
    from pathlib import Path

    from bench.perf import gate as perf

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "benchmark.json"
        suite = str(Path(perf.__file__).with_name("suite.py"))
        inherited = {k: v for k, v in os.environ.items() if k != "BENCH_PERF_PLAN"}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                suite,
                "-q",
                "-p",
                "no:cacheprovider",
                "--benchmark-only",
                "--benchmark-sort=name",
                f"--benchmark-json={report}",
                "-o",
                "addopts=",
                *pytest_args,
            ],
            env={
                **inherited,
                **(env or {}),
                **perf.thread_env(threads),
                "BENCH_PERF_RUNGS": rungs,
                "BENCH_PERF_TIMER": timer,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if done.returncode != 0 or not report.is_file():
            print(done.stdout[-6000:], file=sys.stderr)
            raise BenchError(f"the benchmark suite failed (pytest exit {done.returncode})")
        runs = json.loads(report.read_text(encoding="utf-8"))["benchmarks"]
    cases = {f"{b['extra_info']['rung']}@{b['extra_info']['batch']}": b["extra_info"] for b in runs}
    if not cases:
        raise BenchError("the benchmark suite timed nothing (no case matched)")
    wrong = sorted(
        {
            f"{api} {n}"
            for c in cases.values()
            for api, n in {"torch": c["threads"], **c["pools"]}.items()
            if n != threads
        }
    )
    if wrong:
        raise BenchError(f"the suite ran with other thread counts than {threads}: {', '.join(wrong)}")
    if {c["timer"] for c in cases.values()} != {timer}:
        raise BenchError(f"the suite timed with another timer than {timer}")
    return cases


def _parse_limits(items: list[str]) -> dict[str, float]:
    """``["random=0.5", "tfidf*=0.4"]`` -> a limit per rung name (wildcards expanded, names checked)."""
    import math

    limits = {}
    for item in items:
        pattern, _, value = item.partition("=")
        try:
            limit = float(value)
        except ValueError:
            limit = math.nan
        if not (math.isfinite(limit) and limit > 0):
            raise BenchError(f"--limit takes RUNG=FRACTION with a positive fraction, e.g. <rung>=0.5, not {item!r}")
        limits.update(dict.fromkeys(_expand_rungs([pattern.strip()]), limit))
    return limits


def _perf_runs(args: argparse.Namespace, rungs: str, count: int, plan: str | None) -> list[dict[str, dict[str, Any]]]:
    env = {"BENCH_PERF_PLAN": plan} if plan else {}
    runs = []
    for i in range(count):
        runs.append(_perf_suite_run(rungs, args.threads, args.timer, args.pytest_args, env))
        print(f"  suite run {i + 1}/{count}: {len(runs[-1])} cases", flush=True)
    return runs


def cmd_perf(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.perf import gate as perf
    from bench.rungs.registry import get_rung, list_rungs

    if args.save == args.check:
        raise BenchError("say --save (store a new baseline) or --check (compare with it)")
    for name, value, least in (
        ("--threads", args.threads, 1),
        ("--runs", args.runs, 1),
        ("--retries", args.retries, 0),
    ):
        if value is not None and value < least:
            raise BenchError(f"{name} must be at least {least}")
    if args.threshold is not None and not args.threshold > 0:
        raise BenchError("--threshold must be a positive fraction, e.g. 0.25")
    if args.common_limit is not None and not args.common_limit > 0:
        raise BenchError("--common-limit must be a positive fraction, e.g. 0.5")
    common_limit = perf.DEFAULT_COMMON_LIMIT if args.common_limit is None else args.common_limit
    limits = _parse_limits(args.limit)
    baseline = Path(args.baseline)
    selected = set(_expand_rungs(_csv(args.rungs)))  # unknown names fail here, with suggestions
    if not selected:
        raise BenchError("--rungs selects no rung")
    info = perf.machine(args.threads, args.timer)
    key = perf.machine_key(info)
    print(f"machine: {key}")
    if args.save:
        if os.environ.get("BENCH_PERF_SLOWDOWN"):
            raise BenchError("BENCH_PERF_SLOWDOWN is set (a test hook that slows rungs down): unset it before --save")
        cases = perf.combine_runs(_perf_runs(args, args.rungs, args.runs or 3, None))
        print(perf.stability(cases))
        path = perf.write_baseline({"machine": info, "cases": cases}, baseline, limits, args.threshold, list_rungs())
        print(f"wrote {path} (entry: {key})")
        return 0
    if not baseline.is_file():
        raise BenchError(f"no baseline at {baseline}; store one with `python -m bench perf --save`")
    stored = perf.read_baseline(baseline)
    entry = perf.baseline_for(stored, info)
    if entry is None:
        known = "; ".join(stored.get("machines", {})) or "none"
        message = (
            f"no baseline in {baseline} for this machine ({key}); it has: {known}. Ratios do not carry between "
            f"CPU models, so there is nothing to compare with: store this machine's with "
            f"`python -m bench perf --save` and commit it."
        )
        if args.unknown_machine == "skip":
            print(f"NOT CHECKED: {message}")
            return 0
        raise BenchError(message)
    entry = {**entry, "cases": {k: c for k, c in entry["cases"].items() if c["rung"] in selected}}
    changed = perf.drift(entry["machine"], info)
    if changed:
        print(f"note: the baseline was measured in another environment: {'; '.join(changed)}")
    threshold = args.threshold or stored.get("default_threshold", perf.DEFAULT_THRESHOLD)
    thresholds = {**stored.get("thresholds", {}), **limits}
    wrappers = [name for name in list_rungs() if get_rung(name).bases]

    def judge(runs: list[dict[str, dict[str, Any]]]) -> tuple[dict[str, Any], list[dict[str, Any]], float, int]:
        """Each case relative to the ladder's drift in the run it was measured in; the first runs' drift is the
        one reported (and the one held to ``--common-limit``)."""
        drifts = [perf.common_drift({"cases": run}, entry, wrappers)[0] for run in runs]
        current = {"cases": perf.combine_runs(runs, upper=False, drifts=drifts)}
        first = {"cases": perf.combine_runs(runs[:first_runs], upper=False)}
        common, n = perf.common_drift(first, entry, wrappers)
        return current, perf.compare(current, entry, threshold, thresholds, common), common, n

    runs = _perf_runs(args, args.rungs, args.runs or 1, str(baseline))
    first_runs = len(runs)
    current, rows, common, n_common = judge(runs)
    suspects = perf.to_retry(rows)
    if suspects and args.retries:
        controls = sorted({c["rung"] for c in entry["cases"].values() if c["rung"] not in wrappers} - set(suspects))
        print(
            f"over the limit: {', '.join(suspects)}; measuring them {args.retries} more time(s) in fresh runs, "
            "with the base rungs, for the ladder's drift in those runs"
        )
        runs += _perf_runs(args, ",".join([*suspects, *controls]), args.retries, str(baseline))
        current, rows, common, n_common = judge(runs)
    print(perf.stability(current["cases"]))
    if n_common >= perf.COMMON_MIN_CASES:
        print(
            f"ladder drift: the median change of the {n_common} base-rung cases is {common - 1:+.1%} (limit "
            f"+{common_limit:.0%}); each case is judged on its change relative to it (vs ladder)"
        )
    else:
        print(f"ladder drift: not estimated ({n_common} base-rung cases, {perf.COMMON_MIN_CASES} needed)")
    print(perf.table(rows))
    bad = perf.failed(rows)
    if common - 1 > common_limit:
        print(
            f"FAIL: the whole ladder is {common - 1:+.1%} slower than its baseline (limit +{common_limit:.0%}): "
            "a slower machine or a slower shared path (numpy, torch, the harness)"
        )
        bad = [*bad, {"case": "ladder"}]
    if bad:
        print(f"FAIL: {len(bad)} case(s) slower than their limit: " + ", ".join(r["case"] for r in bad))
        if changed:
            commit = entry["machine"].get("commit") or "<the baseline's commit>"
            print(
                "The environment changed since the baseline (see the note above): to tell a slower environment "
                f"from slower code, check the baseline's commit here too: `git worktree add ../perf-base {commit}` "
                f"and run `python -m bench perf --check --baseline {baseline.resolve()}` in it."
            )
        return 1
    print("OK: no case slower than its limit")
    return 0


def _alpha(value: float) -> float:
    if not 0 < value < 1:
        raise BenchError(f"--alpha {value}: a miscoverage between 0 and 1, e.g. 0.1 for 90% prediction sets")
    return value


def cmd_rescore(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench.evaluate.rescore import rescore
    from bench.store.results import ResultStore

    store = ResultStore(args.output)
    names = _stored_datasets(store, args.datasets)
    alpha = None if args.alpha is None else _alpha(args.alpha)
    with store.locked("bench rescore"):
        rows = [row for name in names for row in rescore(store, name, alpha)]
        _write_leaderboards(args.output, names)
    print(
        tabulate(
            [
                (
                    r["dataset"],
                    r["rung"],
                    r["seed"],
                    r["status"],
                    r["metrics"],
                    "" if r["max_change"] != r["max_change"] else f"{r['max_change']:.2g}",
                )
                for r in rows
            ],
            headers=["dataset", "rung", "seed", "status", "metrics", "largest change"],
            tablefmt="simple",
        )
    )
    print(
        f"rescored {sum(r['status'] == 'ok' for r in rows)} result(s) from their stored predictions; nothing refitted"
    )
    return 0


def cmd_sweep_mc(args: argparse.Namespace) -> int:
    from bench.data import load_dataset
    from bench.evaluate.harness import RunSettings, resolve_device
    from bench.evaluate.sweep import sweep_mc, write_sweep
    from bench.profiles import apply_profile, get_profile
    from bench.store.results import ResultStore

    try:
        iterations = [int(v) for v in _names(args.iterations, "--iterations")]
    except ValueError:
        raise BenchError(f"--iterations must be comma-separated integers, not {args.iterations!r}") from None
    if min(iterations) < 1 or args.repeats < 1:
        raise BenchError("--iterations and --repeats must be at least 1")
    _check_seed(args.seed)
    get_profile(args.profile)
    _check_settings(args)
    options = _parse_options(args.option)
    settings = RunSettings(
        profile=get_profile(args.profile),
        seed=args.seed,
        device=resolve_device(args.device),
        ece_bins=args.ece_bins,
        options=options,
    )
    _check_options(settings)
    dataset = apply_profile(load_dataset(args.dataset, data_dir=args.data_dir), settings.profile)
    store = ResultStore(args.output)
    with store.locked("bench sweep-mc"):
        result = sweep_mc(dataset, settings, store, iterations, args.repeats, args.rung)
        paths = write_sweep(result, store.root / dataset.name)
    print(paths[1].read_text(encoding="utf-8"))
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


def _add_settings(group: Any, seeds: bool = False) -> None:
    """The settings ``run`` and ``sweep-mc`` share: profile, seed(s), device, ECE bins, output and rung options."""
    group.add_argument("--profile", default="default", help="quick | default | full (default: default)")
    if seeds:
        group.add_argument(
            "--seeds",
            metavar="A,B",
            help="seeds: each seeded rung runs once per seed (data order, initialisation, dropout masks; the split "
            "stays fixed) and every seed's result is kept (default: the profile's — quick 0, default 0,1,2, full 0-4)",
        )
        group.add_argument("--seed", type=int, default=None, help="a single seed, instead of --seeds")
    else:
        group.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    group.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: cpu)")
    group.add_argument("--ece-bins", type=int, default=15, help="equal-width bins for ECE (default: 15)")
    group.add_argument("--output", default=DEFAULT_OUTPUT, help=f"results folder (default: {DEFAULT_OUTPUT})")
    group.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="RUNG.KEY=VALUE",
        help="a rung option, repeatable; keys are the rung's constructor parameters, values parse as JSON: e.g. "
        "<rung>.model=distilbert-base-uncased, '<rung>.c_grid=[1,4]'",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run a ladder of text classifiers through one harness and compare quality, calibration, speed "
        "and cost.",
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,run,rescore,sweep-mc,report,perf}")

    p = sub.add_parser(
        "list", help="list the registered rungs", description="List registered rungs (name, family, description)."
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard on rung names (default: all)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "run",
        help="evaluate rungs on datasets and write results and leaderboards",
        description="Fit each rung on each dataset, score it on the test split, time it, store "
        "<output>/<dataset>/<rung>/result.json + predictions.npz and write the leaderboards.",
    )
    which = p.add_argument_group("what to run")
    which.add_argument("--all", action="store_true", help="every registered rung")
    which.add_argument("--models", metavar="A,B", help="comma-separated rung names; wildcards allowed ('tfidf*')")
    which.add_argument("--datasets", metavar="X,Y", help=f"comma-separated dataset names (default: {DEFAULT_DATASET})")
    data = p.add_argument_group("data")
    data.add_argument(
        "--data-dir", metavar="DIR", help="folder of prepared datasets (default: $BENCH_DATA_DIR, else ./data)"
    )
    data.add_argument(
        "--data",
        action="append",
        metavar="PATH",
        help="bring your own: a CSV or JSONL file, or a folder in our layout (repeatable)",
    )
    data.add_argument(
        "--text-column", default=None, help="text column of --data (default: text, or the folder's dataset.json)"
    )
    data.add_argument("--text-pair-column", default=None, help="second text column of --data, for sentence pairs")
    data.add_argument(
        "--holdout-classes",
        metavar="A,B",
        default=None,
        help="out-of-distribution detection: remove these classes from train and validation and use their test "
        "examples as OOD (results under <dataset>-holdout-<classes>; single-label datasets)",
    )
    data.add_argument(
        "--label-column",
        default=None,
        help="label column of --data (default: label; in JSONL a list of tags means multi-label)",
    )
    how = p.add_argument_group("how")
    _add_settings(how, seeds=True)
    how.add_argument(
        "--alpha",
        type=float,
        default=0.1,
        help="conformal miscoverage: prediction sets aim to hold the true class with probability 1 - ALPHA "
        "(default: %(default)s; a scoring setting: `bench rescore --alpha` changes it without refitting)",
    )
    how.add_argument("--no-html", action="store_true", help="leaderboards only: skip the HTML report")
    how.add_argument("--force", action="store_true", help="rerun rungs whose stored config is unchanged")
    how.add_argument(
        "--retime",
        action="store_true",
        help="time stored results again on this machine, from their stored artifacts (nothing refitted): latencies "
        "of rungs fitted earlier measured in the same run as new ones",
    )
    how.add_argument("--strict", action="store_true", help="exit 1 if any rung failed")
    where = p.add_argument_group("where")
    where.add_argument(
        "--executor",
        default="local",
        choices=["local", "ray"],
        help="local: one cell (dataset × rung × seed) after another in this process (default); ray: the cells as "
        "Ray tasks, fits in parallel, then each timed with a node to itself (needs bench[ray])",
    )
    where.add_argument(
        "--address",
        default=None,
        help="with --executor ray: a running Ray cluster, e.g. ray://head:10001 or auto (default: $RAY_ADDRESS, "
        "else an embedded cluster on this machine for the run)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "perf",
        help="latency regression gate: time every rung against a reference workload",
        description="Run the pytest-benchmark suite (bench/perf/suite.py): each rung's predict_proba at batch "
        "1 and 16 on fixed inputs, in fresh processes at --threads threads, each round timed right after a fixed "
        "reference workload (a matrix product and pure-Python text handling). A case's ratio is "
        "its fastest round over the reference's. --save stores the ratios as this machine kind's "
        "baseline (other kinds' entries are kept); --check compares with it and exits 1 if a "
        "ratio grew by more than the threshold.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--save",
        action="store_true",
        help="store the measured ratios as this machine kind's baseline (with --rungs: those rungs' cases)",
    )
    mode.add_argument("--check", action="store_true", help="compare with the baseline; exit 1 on a regression")
    p.add_argument("--baseline", default="perf/baseline.json", help="baseline JSON (default: perf/baseline.json)")
    p.add_argument("--rungs", default="*", metavar="A,B", help="rungs to time, wildcards allowed (default: all)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="allowed growth of a ratio, 0.25 = 25%%: with --save stored as the file's default, with --check "
        "for this run (default: the file's, else 0.25; a rung's own --limit wins)",
    )
    p.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="RUNG=FRACTION",
        help="a rung's own allowed growth, repeatable: stored in the baseline with --save, for this run only "
        "with --check (e.g. --limit <rung>=0.5)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for torch, OpenMP, MKL, OpenBLAS and the tokenizers while timing; part of the baseline "
        "key (default: %(default)s, the steadiest on a shared 2-core machine)",
    )
    p.add_argument(
        "--timer",
        choices=("cpu", "wall"),
        default="cpu",
        help="what rounds are timed with: cpu (the process's CPU time; default: time the scheduler gives "
        "to other processes is not counted) or wall (counts waiting too); part of the baseline key",
    )
    p.add_argument(
        "--runs",
        type=int,
        default=None,
        help="fresh suite processes, each case judged on its median ratio over them (default: 3 with --save, "
        "1 with --check)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="--check: rungs over their limit are measured this many more times in fresh processes (with the "
        "base rungs, for the ladder's drift in each run) and judged on the median of all their runs, so one "
        "noisy run does not fail the gate (default: %(default)s)",
    )
    p.add_argument(
        "--common-limit",
        type=float,
        default=None,
        help="--check: allowed common change of the whole ladder (the median change of the base rungs' cases) "
        "before the check fails on it alone; each case is judged relative to it (default: 0.5)",
    )
    p.add_argument(
        "--unknown-machine",
        choices=("error", "skip"),
        default="error",
        help="--check on a machine kind the baseline has no entry for: error (exit 2, default) or skip "
        "(print NOT CHECKED, exit 0)",
    )
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    p.set_defaults(func=cmd_perf)

    p = sub.add_parser(
        "rescore",
        help="recompute every registered metric from stored predictions (no refitting)",
        description="Recompute every registered metric of every stored result from its predictions.npz, "
        "rewrite result.json (predictions, artifacts, fit times and timestamps are kept) and "
        "the leaderboards. Results stored by an older bench are re-keyed to this version's "
        "configuration layout, so a later run treats them as current.",
    )
    p.add_argument("--datasets", metavar="X,Y", help="datasets to rescore (default: all with results)")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help=f"results folder (default: {DEFAULT_OUTPUT})")
    p.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="conformal miscoverage to score prediction sets at (default: each result's own, else 0.1)",
    )
    p.set_defaults(func=cmd_rescore)

    p = sub.add_parser(
        "sweep-mc",
        help="ECE and accuracy of a stochastic rung (MC-Dropout) against its number of passes",
        description="Sweep the number of stochastic passes of a rung that declares them (default: the "
        "first in the ladder, MC-Dropout on the fine-tuned transformer), reusing its base's "
        "stored weights when current, and write <output>/<dataset>/mc_sweep.md and .json.",
    )
    p.add_argument("--dataset", default=DEFAULT_DATASET, help=f"dataset name (default: {DEFAULT_DATASET})")
    p.add_argument(
        "--rung", default=None, help="the stochastic rung (default: the first that declares stochastic passes)"
    )
    p.add_argument("--iterations", default="1,5,10,20,40", help="pass counts T (default: 1,5,10,20,40)")
    p.add_argument("--repeats", type=int, default=3, help="repeats with different dropout seeds (default: 3)")
    p.add_argument(
        "--data-dir", metavar="DIR", help="folder of prepared datasets (default: $BENCH_DATA_DIR, else ./data)"
    )
    _add_settings(p)
    p.set_defaults(func=cmd_sweep_mc)

    p = sub.add_parser(
        "report",
        help="regenerate leaderboards and HTML reports from stored results",
        description="Rewrite <output>/<dataset>/leaderboard.md and .csv, the HTML report "
        "<output>/<dataset>/report.html (its plots also as PNGs in <output>/<dataset>/plots/) "
        "and <output>/index.html, from stored results alone: no model is rerun. The dataset "
        "is read, when found with the same fingerprint, only for texts in the error analysis "
        "and the length distribution.",
    )
    p.add_argument("--datasets", metavar="X,Y", help="datasets to report (default: all with results)")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help=f"results folder (default: {DEFAULT_OUTPUT})")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder of prepared datasets, for texts (default: $BENCH_DATA_DIR, else ./data)",
    )
    p.add_argument("--no-html", action="store_true", help="leaderboards only")
    p.set_defaults(func=cmd_report)
    return parser


class _LevelFormatter(logging.Formatter):
    """Log lines as ``warning: …`` / ``error: …`` (the level in lower case, then the message)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {super().format(record)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one ``bench: error:`` line and exit 2."""
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(_LevelFormatter("%(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.func(args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment, e.g. a disk that filled up while writing results
        where = f": {exc.filename}" if exc.filename else ""
        print(f"bench: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
