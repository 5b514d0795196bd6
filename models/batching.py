"""Tokenising once, then length-sorted batches with per-batch padding; counts padding and truncation."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bench.data import Input
from bench.errors import BenchError


@dataclass
class Encoded:
    """Token ids of each input (unpadded), with what truncation cut."""

    ids: list[list[int]]
    type_ids: list[list[int]] | None
    truncated: int
    lengths: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


def encode(tokenizer: Any, inputs: Sequence[Input], max_length: int) -> Encoded:
    """Tokenise texts or ``(text, text_pair)`` tuples with truncation to ``max_length``; an input that is
    empty after tokenisation (nothing but special tokens) is an error."""
    if not inputs:
        return Encoded([], None, 0)
    pairs = not isinstance(inputs[0], str)
    first = [x[0] for x in inputs] if pairs else list(inputs)
    second = [x[1] for x in inputs] if pairs else None
    full = tokenizer(
        first, second, truncation=False, add_special_tokens=True, return_token_type_ids=True, verbose=False
    )
    n_special = tokenizer.num_special_tokens_to_add(pair=pairs)
    for i, ids in enumerate(full["input_ids"]):
        if len(ids) <= n_special:
            shown = inputs[i] if isinstance(inputs[i], str) else " / ".join(inputs[i])
            raise BenchError(f"input {i} is empty after tokenisation: {shown[:60]!r}")
    ids = list(full["input_ids"])
    types = list(full.get("token_type_ids") or []) or None
    # tokenised once: only the inputs over max_length go through the tokenizer again, with its own truncation
    # (longest_first for pairs); the others are already what a truncating call returns (measured: batch-1
    # predict of the fine-tuned MiniLM on sst2, see scripts/encode_once.py)
    long = [i for i, row in enumerate(ids) if len(row) > max_length]
    if long:
        enc = tokenizer(
            [first[i] for i in long],
            None if second is None else [second[i] for i in long],
            truncation=True,
            max_length=max_length,
            return_token_type_ids=True,
        )
        for j, i in enumerate(long):
            ids[i] = enc["input_ids"][j]
            if types is not None:
                types[i] = enc["token_type_ids"][j]
    return Encoded(ids, types, len(long))


@dataclass
class PaddingStats:
    """Real tokens against tokens computed (padding included) over a set of batches."""

    real: int = 0
    computed: int = 0

    @property
    def efficiency(self) -> float:
        return self.real / self.computed if self.computed else 1.0


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Index batches of inputs sorted by length (longest first), so each batch pads little."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group: int = 50
) -> list[np.ndarray]:
    """Training batches: shuffle, sort by length within mega-batches of ``group`` batches, shuffle batch order."""
    perm = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    span = batch_size * group
    for start in range(0, len(perm), span):
        chunk = perm[start : start + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def bucket(width: int, multiple: int = 1, cap: int | None = None) -> int:
    """``width`` rounded up to a multiple of ``multiple`` (not beyond ``cap``, unless ``width`` already is): padding
    to buckets leaves kernels a few shapes to see instead of one per length."""
    rounded = -(-width // multiple) * multiple
    return max(width, min(rounded, cap)) if cap is not None else rounded


def pad_multiple(device: str) -> int:
    """The bucket multiple for inference on ``device``: 8 on a GPU, where every new shape costs kernel selection
    (measured on an H200: char_cnn p50 12.0 ms timed first, 1.47 ms after its twin had seen the shapes), so
    inputs are padded to a few widths that a warm-up covers; 1 on a CPU, where extra padding is extra work and
    a new shape costs nothing."""
    return 8 if device.startswith("cuda") else 1


def bucket_widths(multiple: int, cap: int, shortest: int = 1) -> list[int]:
    """Every width :func:`bucket` can give for inputs of ``shortest`` .. ``cap`` tokens."""
    return sorted({bucket(n, multiple, cap) for n in range(shortest, cap + 1)})


def warm_up_encodings(batch_size: int, multiple: int, cap: int, typed: bool, shortest: int = 1) -> Iterator[Encoded]:
    """One synthetic batch per bucket width (:func:`bucket_widths`) at batch 1 and at ``batch_size``, with token
    type ids where the real inputs have them: what a warm-up runs so that no timed call meets a shape first."""
    for size in sorted({1, batch_size}):
        for width in bucket_widths(multiple, cap, shortest):
            ids = [[1 + j % 3 for j in range(width)] for _ in range(size)]
            yield Encoded(ids, [[0] * width for _ in ids] if typed else None, 0)


def collate(
    enc: Encoded,
    idx: np.ndarray,
    pad_id: int,
    device: str,
    stats: PaddingStats | None = None,
    multiple: int = 1,
    cap: int | None = None,
) -> dict[str, torch.Tensor]:
    """A padded batch (to the longest member, rounded up by :func:`bucket`) as model inputs on ``device``.

    Filled by one boolean-mask assignment per tensor rather than row by row: 256 rows of sst2-like lengths in
    0.5 against 7.7 ms (measured here), which a GPU serving 20k texts/s could not afford."""
    lengths = enc.lengths[idx]
    width = bucket(int(lengths.max()), multiple, cap)
    real = np.arange(width) < lengths[:, None]  # row-major: each row's True cells are its first n positions
    count = int(lengths.sum())

    def padded(rows: list[list[int]], fill: int) -> torch.Tensor:
        out = np.full((len(idx), width), fill, dtype=np.int64)
        out[real] = np.fromiter(itertools.chain.from_iterable(rows[i] for i in idx), dtype=np.int64, count=count)
        return torch.from_numpy(out)

    batch = {"input_ids": padded(enc.ids, pad_id), "attention_mask": torch.from_numpy(real.astype(np.int64))}
    if enc.type_ids is not None:
        batch["token_type_ids"] = padded(enc.type_ids, 0)
    if stats is not None:
        stats.real += count
        stats.computed += len(idx) * width
    if device.startswith("cuda"):  # page-locked, so the copy is queued behind the device's work, not waited for
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.to(device) for k, v in batch.items()}


def iterate(
    enc: Encoded,
    batch_size: int,
    pad_id: int,
    device: str,
    stats: PaddingStats | None = None,
    multiple: int = 1,
    cap: int | None = None,
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Length-sorted inference batches, padded to buckets (:func:`bucket`): ``(original indices, model inputs)``."""
    for idx in sorted_batches(enc.lengths, batch_size):
        yield idx, collate(enc, idx, pad_id, device, stats, multiple, cap)


def padding_report(
    enc: Encoded, batch_size: int, pad_id: int, multiple: int = 1, cap: int | None = None
) -> dict[str, Any]:
    """Padding efficiency (real / computed tokens) of the inference batches over ``enc``, how many inputs were
    truncated, the batch size and the bucket multiple."""
    stats = PaddingStats()
    for _ in iterate(enc, batch_size, pad_id, "cpu", stats, multiple, cap):
        pass
    return {
        "padding_efficiency": stats.efficiency,
        "truncated_inputs": enc.truncated,
        "inference_batch": batch_size,
        "pad_multiple": multiple,
    }
