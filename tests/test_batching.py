"""Batching: the vectorised collate equals a row-by-row padding of the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.batching import Encoded, PaddingStats, bucket, collate


def reference_collate(enc: Encoded, idx: np.ndarray, pad_id: int, multiple: int, cap: int | None):
    width = bucket(max(len(enc.ids[i]) for i in idx), multiple, cap)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    types = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        n = len(enc.ids[i])
        ids[row, :n] = torch.as_tensor(enc.ids[i])
        mask[row, :n] = 1
        if enc.type_ids is not None:
            types[row, :n] = torch.as_tensor(enc.type_ids[i])
    out = {"input_ids": ids, "attention_mask": mask}
    if enc.type_ids is not None:
        out["token_type_ids"] = types
    return out


@pytest.mark.parametrize("typed", [False, True])
@pytest.mark.parametrize(("multiple", "cap"), [(1, None), (8, None), (8, 20)])
def test_collate_equals_row_by_row_padding(typed, multiple, cap):
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(1, 12))
        ids = [[int(t) for t in rng.integers(1, 30_000, int(rng.integers(1, 21)))] for _ in range(n)]
        types = [[int(t) for t in rng.integers(0, 2, len(r))] for r in ids] if typed else None
        enc = Encoded(ids, types, 0)
        idx = rng.permutation(n)[: int(rng.integers(1, n + 1))]
        pad_id = int(rng.integers(0, 5))
        stats = PaddingStats()
        got = collate(enc, idx, pad_id, "cpu", stats, multiple, cap)
        want = reference_collate(enc, idx, pad_id, multiple, cap)
        assert set(got) == set(want)
        for k in want:
            assert got[k].dtype == torch.long
            assert torch.equal(got[k], want[k]), k
        assert stats.real == sum(len(ids[i]) for i in idx)
        assert stats.computed == got["input_ids"].numel()
