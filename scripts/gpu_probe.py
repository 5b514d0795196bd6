"""GPU checks the ladder's own run cannot make (issue 18), on the artifacts a ``bench run --device cuda`` stored.

In a fresh process: char_cnn timed first, then after the fine-tuned rung, then again (its p50 must not depend on
what ran before it: the bucket warm-up is the mechanism); the fine-tuned rung's batch-1 p50 through CUDA graphs
(``inference="script"``) against the eager module, alternating; and every torch rung's throughput at its swept
batch, end to end and with inputs tokenised ahead. Writes ``<out>/gpu-check.md`` and ``.json``.

    python scripts/gpu_probe.py --results /tmp/gpu-results --out "$OUT"
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from bench.data import load_dataset
from bench.environment import cpu_model
from bench.evaluate.efficiency import measure_latency
from bench.evaluate.harness import RunSettings, time_rung
from bench.profiles import apply_profile, get_profile
from bench.rungs.registry import load_rung


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", required=True)
    p.add_argument("--dataset", default="sst2")
    p.add_argument("--profile", default="default")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda", help="cuda (default); cpu runs the same script as a smoke test")
    args = p.parse_args()

    settings = RunSettings(profile=get_profile(args.profile), device=args.device)
    dataset = apply_profile(load_dataset(args.dataset), settings.profile)
    inputs = dataset.test.inputs

    def artifact(name: str) -> Path:
        return Path(args.results) / args.dataset / name / "seed-0" / "artifact"

    def timed(name: str) -> dict:
        rung = load_rung(artifact(name))
        eff, _ = time_rung(rung, dataset, settings)
        return {k: v for k, v in eff.items() if k.startswith(("latency_ms_p", "throughput_"))}

    report: dict = {
        "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else cpu_model(),
        "torch": torch.__version__,
        "dataset": args.dataset,
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    # 1. order: char_cnn first in this process, then after the fine-tuned rung, then once more
    order = [("char_cnn", "first"), ("finetuned", "between"), ("char_cnn", "after finetuned"), ("char_cnn", "again")]
    report["order"] = [{"rung": name, "when": when, **timed(name)} for name, when in order]
    # 2. the fine-tuned rung at batch 1: CUDA graphs against the eager module, alternating rounds
    rung = load_rung(artifact("finetuned"))
    rung.warm_up()
    paths: dict[str, list[float]] = {"script": [], "eager": []}
    for r in range(args.rounds):
        for path in ("script", "eager") if r % 2 == 0 else ("eager", "script"):
            rung.inference = path
            lat = measure_latency(
                rung.predict_proba, inputs, warmup=10, min_calls=200, min_seconds=1, max_seconds=10, device=args.device
            )
            paths[path].append(lat["latency_ms_p50"])
    report["batch1_p50_ms"] = {k: {"rounds": v, "median": statistics.median(v)} for k, v in paths.items()}
    # 3. throughput of each torch rung stored: the swept batch, end to end and tokenised ahead
    report["throughput"] = {}
    for name in ("finetuned", "finetuned+bf16", "char_cnn"):
        if artifact(name).is_dir():
            report["throughput"][name] = timed(name)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2) + "\n")
    first, after = report["order"][0]["latency_ms_p50"], report["order"][2]["latency_ms_p50"]
    graphs, eager = (report["batch1_p50_ms"][k]["median"] for k in ("script", "eager"))
    compiled = "CUDA graphs" if args.device.startswith("cuda") else "TorchScript"
    lines = [
        f"# GPU check: {report['gpu']} (torch {report['torch']}), {args.dataset}, {report['measured_at']}",
        "",
        f"- char_cnn batch-1 p50: {first:.3f} ms timed first in the process, {after:.3f} ms after the fine-tuned "
        f"rung ({after / first - 1:+.1%}); again {report['order'][3]['latency_ms_p50']:.3f} ms",
        f"- finetuned batch-1 p50 (median of {args.rounds} alternating rounds): {compiled} {graphs:.3f} ms, eager "
        f"module {eager:.3f} ms ({eager / graphs:.2f}x)",
        "",
        "| rung | throughput (/s) | at batch | model alone, tokenised ahead (/s) | sweep (batch: /s) |",
        "|:--|--:|--:|--:|:--|",
    ]
    for name, eff in report["throughput"].items():
        sweep = ", ".join(f"{b}: {v:,.0f}" for b, v in eff.get("throughput_sweep", {}).items())
        alone = eff.get("throughput_prepared_per_s")
        lines.append(
            f"| {name} | {eff['throughput_per_s']:,.0f} | {eff['throughput_batch']} | "
            f"{'' if alone is None else f'{alone:,.0f}'} | {sweep} |"
        )
    (out / "gpu-check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
