"""Benchmark: tokenising each input once (models.batching.encode) against the previous path, which tokenised every
input twice per call (once untruncated to count truncation, once truncated). Same run, same process, alternating.

Checks first that both give the same token ids on a real dataset (singles and sentence pairs, truncation
included), then times ``encode`` alone and the fine-tuned rung's batch-1 ``predict_proba`` (the stored sst2
artifact under results/) with each, as the median of many calls. Writes ``<out>/encode-once.md`` and ``.json``.

    python scripts/encode_once.py --artifact results/sst2/finetuned/seed-0/artifact
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import models.batching as batching
from bench.data import load_dataset
from bench.environment import cpu_model, thread_budget
from bench.rungs.registry import load_rung


def encode_twice(tokenizer: Any, inputs: Sequence[Any], max_length: int) -> batching.Encoded:
    """The previous path, kept as the reference: an untruncated call, then a truncating call over every input."""
    pairs = not isinstance(inputs[0], str)
    first = [x[0] for x in inputs] if pairs else list(inputs)
    second = [x[1] for x in inputs] if pairs else None
    full = tokenizer(
        first, second, truncation=False, add_special_tokens=True, return_token_type_ids=True, verbose=False
    )
    truncated = sum(len(ids) > max_length for ids in full["input_ids"])
    enc = tokenizer(first, second, truncation=True, max_length=max_length, return_token_type_ids=True)
    return batching.Encoded(list(enc["input_ids"]), list(enc.get("token_type_ids") or []) or None, truncated)


def median_us(fn: Callable[[], Any], calls: int) -> float:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--artifact", default="results/sst2/finetuned/seed-0/artifact")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--out", default="results/inference")
    args = p.parse_args()

    rung = load_rung(Path(args.artifact))
    tok, max_length = rung.tokenizer_, rung.max_length
    for name in ("sst2", "mrpc"):  # the same ids, singles and pairs, with truncation at a short max_length
        inputs = load_dataset(name).test.inputs[:400]
        for length in (max_length, 24):
            a, b = batching.encode(tok, inputs, length), encode_twice(tok, inputs, length)
            assert a.ids == b.ids and a.type_ids == b.type_ids and a.truncated == b.truncated, (name, length)

    texts = load_dataset("sst2").test.inputs
    paths = {"twice (before)": encode_twice, "once (now)": batching.encode}
    rows: dict[str, dict[str, list[float]]] = {k: {"encode_us": [], "predict_us": []} for k in paths}
    import models.finetune as finetune

    original, counter = batching.encode, iter(range(10**9))

    def one() -> list[Any]:  # the next test sentence, cycling
        return [texts[next(counter) % len(texts)]]

    with thread_budget(2):
        for r in range(args.rounds):
            for name in paths if r % 2 == 0 else reversed(list(paths)):
                fn = paths[name]
                rows[name]["encode_us"].append(median_us(lambda fn=fn: fn(tok, one(), max_length), args.calls))
                finetune.encode = fn  # the rung's own predict path, with this encoder
                try:
                    rows[name]["predict_us"].append(median_us(lambda: rung.predict_proba(one()), args.calls // 4))
                finally:
                    finetune.encode = original
    summary = {name: {key: statistics.median(values) for key, values in parts.items()} for name, parts in rows.items()}
    before, now = summary["twice (before)"], summary["once (now)"]
    report = {
        "machine": cpu_model(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rounds": rows,
        "median": summary,
        "encode_speedup": before["encode_us"] / now["encode_us"],
        "predict_speedup": before["predict_us"] / now["predict_us"],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "encode-once.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Tokenising once: batch-1 encode and fine-tuned predict, before and after",
        "",
        f"{report['machine']}, 2 threads; {report['measured_at']}; {args.rounds} alternating rounds, each the median "
        f"of {args.calls} encode calls and {args.calls // 4} predict calls on one sst2 test sentence at a time; the "
        "token ids of both paths were checked equal on 400 sst2 and 400 mrpc test inputs (also truncated at 24).",
        "",
        "| path | encode p50 (µs), per round | predict_proba p50 (µs), per round | encode median | predict median |",
        "|---|---|---|---|---|",
    ]
    for name, parts in rows.items():
        lines.append(
            f"| {name} | {', '.join(f'{v:.0f}' for v in parts['encode_us'])} | "
            f"{', '.join(f'{v:.0f}' for v in parts['predict_us'])} | {summary[name]['encode_us']:.0f} | "
            f"{summary[name]['predict_us']:.0f} |"
        )
    lines += [
        "",
        f"**encode {report['encode_speedup']:.2f}× faster; batch-1 predict {report['predict_speedup']:.2f}× faster.**",
    ]
    (out / "encode-once.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
