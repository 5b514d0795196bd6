"""Forward operations on real tokens (FlopCounterMode, fitted per length) and achieved FLOP/s against the peak."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.evaluate.efficiency import flops_report, matmul_peak
from models.batching import collate
from models.char_cnn import CharCNN
from models.ensemble import DeepEnsemble
from models.features import FeaturesLR
from models.finetune import FineTunedTransformer
from models.flops import count_flops, fit_flop_model
from models.mc_dropout import MCDropoutClassifier
from models.temperature import TemperatureScaled
from tests.test_models import FAST_FT, sentiment  # noqa: F401  (a fixture)

ONE_EPOCH = {**FAST_FT, "min_epochs": 1, "max_epochs": 1}


@pytest.fixture(scope="module")
def fitted(tiny_bert, sentiment):  # noqa: F811
    return FineTunedTransformer(model=tiny_bert, **ONE_EPOCH).fit(sentiment.train, sentiment.validation)


def _counted_one_by_one(rung, inputs) -> int:
    """Brute force: each input through the module alone, unpadded, under FlopCounterMode."""
    enc = rung.encode_inputs(inputs)
    total = 0
    for i in range(len(inputs)):
        batch = collate(enc, np.array([i]), rung.pad_id, "cpu")
        total += count_flops(lambda b=batch: rung.forward(b))
    return total


def test_a_transformers_count_is_quadratic_in_length_with_attention_counted(fitted):
    model = fitted.flop_model()
    assert model.c2 > 0  # attention's L^2 term: the CPU attention kernel is counted too
    for n in (1, 5, 37, 128):
        ids = torch.ones((1, n), dtype=torch.long)
        counted = count_flops(lambda ids=ids: fitted.module_(input_ids=ids, attention_mask=torch.ones_like(ids)))
        assert model.total([n]) == pytest.approx(counted, rel=1e-9)


def test_forward_flops_count_real_tokens_not_padding(fitted, sentiment):  # noqa: F811
    inputs = list(sentiment.test.inputs[:12])
    assert fitted.forward_flops(inputs) == pytest.approx(_counted_one_by_one(fitted, inputs), rel=1e-9)
    enc = fitted.encode_inputs(inputs)
    padded = collate(enc, np.arange(len(inputs)), fitted.pad_id, "cpu")
    assert count_flops(lambda: fitted.forward(padded)) > fitted.forward_flops(inputs)  # padding is work, not useful


def test_wrappers_count_what_they_run(fitted, sentiment):  # noqa: F811
    inputs = list(sentiment.test.inputs[:8])
    once = fitted.forward_flops(inputs)
    ts = TemperatureScaled(fitted).fit(sentiment.train, sentiment.validation)
    mc = MCDropoutClassifier(fitted, passes=5).fit(sentiment.train, sentiment.validation)
    ensemble = DeepEnsemble([fitted, fitted], members=2).fit(sentiment.train, sentiment.validation)
    assert ts.forward_flops(inputs) == once and ts.compute_dtype == "float32"
    assert mc.forward_flops(inputs) == pytest.approx(5 * once)
    assert ensemble.forward_flops(inputs) == pytest.approx(2 * once)


def test_char_cnn_counts_convolutions_and_short_inputs_at_its_widest_filter(toy_data):
    from bench.data import load_dataset

    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    rung = CharCNN(min_steps=0, max_steps=2, max_chars=60).fit(ds.train, ds.validation)
    model = rung.flop_model()
    assert model.c2 == pytest.approx(0, abs=1e-6) and model.c1 > 0 and model.min_length == rung.module_.min_width
    inputs = ["a", "ab", *ds.test.inputs[:5]]  # the first two are shorter than the widest filter
    assert rung.forward_flops(inputs) == pytest.approx(_counted_one_by_one(rung, inputs), rel=1e-9)


def test_features_lr_counts_its_encoder(tiny_bert, sentiment):  # noqa: F811
    rung = FeaturesLR(model=tiny_bert, use_cache=False).fit(sentiment.train, sentiment.validation)
    inputs = list(sentiment.test.inputs[:6])
    enc = rung._encode(inputs)
    counted = 0
    for i in range(len(inputs)):
        batch = collate(enc, np.array([i]), 0, "cpu")
        counted += count_flops(lambda b=batch: rung.encoder_(**b))
    assert rung.forward_flops(inputs) == pytest.approx(counted, rel=1e-9)


def test_fit_flop_model_needs_three_lengths():
    with pytest.raises(ValueError, match="too few"):
        fit_flop_model(lambda n: None, max_length=2)


def test_achieved_flops_are_a_fraction_of_the_measured_peak():
    peak = matmul_peak("cpu", "float32", torch.get_num_threads(), repeats=3)
    assert 1e8 < peak < 1e14  # a CPU core does between 0.1 GFLOP/s and 100 TFLOP/s
    report = flops_report(flops=4e9, batch_size=8, throughput_per_s=100.0, peak=1e11, dtype="float32")
    assert report["flops_per_text"] == 5e8 and report["flops_per_s"] == 5e10  # 100 texts/s x 0.5 GFLOP
    assert report["flops_peak_fraction"] == 0.5 and report["flops_dtype"] == "float32"
