"""Benchmark: the torch rungs' CPU inference path before (the eager module) and now (a frozen TorchScript trace,
``inference="script"``), on stored sst2 artifacts. Same run, same process, alternating rounds.

Checks first that both paths give the same probabilities on the whole test split, then times batch-1
``predict_proba`` with each, as the harness does (:func:`bench.evaluate.efficiency.measure_latency`, cycling
through the test sentences), and the throughput batch. Writes ``<out>/inference-path.md`` and ``.json``.

    python scripts/inference_path.py --rungs finetuned,char_cnn
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from bench.data import load_dataset
from bench.environment import cpu_model, thread_budget
from bench.evaluate.efficiency import measure_latency, measure_throughput
from bench.rungs.registry import load_rung

PATHS = ("eager", "script")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="results")
    p.add_argument("--dataset", default="sst2")
    p.add_argument("--rungs", default="finetuned,char_cnn")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=4.0, help="batch-1 timing per round and path")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--out", default="results/inference")
    args = p.parse_args()

    inputs = load_dataset(args.dataset).test.inputs
    report: dict = {"machine": cpu_model(), "dataset": args.dataset, "rungs": {}}
    with thread_budget(2):
        for name in args.rungs.split(","):
            rung = load_rung(Path(args.results) / args.dataset / name / "seed-0" / "artifact")
            probs = {}
            for path in PATHS:
                rung.inference = path
                probs[path] = rung.predict_proba(inputs)  # also warms the path up (the script is built here)
            diff = float(np.abs(probs["eager"] - probs["script"]).max())
            rows: dict[str, dict[str, list[float]]] = {k: {"p50_ms": [], "throughput": []} for k in PATHS}
            for r in range(args.rounds):
                for path in PATHS if r % 2 == 0 else reversed(PATHS):
                    rung.inference = path
                    lat = measure_latency(
                        rung.predict_proba, inputs, warmup=10, min_calls=50, min_seconds=args.seconds, max_seconds=60
                    )
                    thr = measure_throughput(
                        rung.predict_proba, inputs, batch_size=args.batch, repeats=3, track_memory=False
                    )
                    rows[path]["p50_ms"].append(lat["latency_ms_p50"])
                    rows[path]["throughput"].append(thr["throughput_per_s"])
            median = {k: {m: statistics.median(v) for m, v in parts.items()} for k, parts in rows.items()}
            report["rungs"][name] = {
                "max_abs_probability_difference": diff,
                "rounds": rows,
                "median": median,
                "batch1_speedup": median["eager"]["p50_ms"] / median["script"]["p50_ms"],
                "throughput_ratio": median["script"]["throughput"] / median["eager"]["throughput"],
            }
    report["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "inference-path.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Torch rungs on a CPU: eager module (before) against a frozen TorchScript trace (now)",
        "",
        f"{report['machine']}, 2 threads; {report['measured_at']}; {args.dataset} test split; {args.rounds} "
        f"alternating rounds, each a harness latency measurement (batch 1, ≥ {args.seconds:g} s, p50) and the median "
        f"of 3 calls at batch {args.batch}. Both paths' probabilities compared on the whole test split first.",
        "",
        "| rung | path | batch-1 p50 (ms), per round | median | throughput (/s) median | max Δ probability |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in report["rungs"].items():
        for path in PATHS:
            lines.append(
                f"| {name} | {path} | {', '.join(f'{v:.2f}' for v in r['rounds'][path]['p50_ms'])} | "
                f"{r['median'][path]['p50_ms']:.2f} | {r['median'][path]['throughput']:.0f} | "
                f"{r['max_abs_probability_difference']:.1g} |"
            )
    lines.append("")
    lines += [
        f"**{name}: batch 1 {r['batch1_speedup']:.2f}× faster; throughput ×{r['throughput_ratio']:.2f}.**"
        for name, r in report["rungs"].items()
    ]
    (out / "inference-path.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
