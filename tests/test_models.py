"""Neural rungs on tiny random-initialised BERTs and toy data: learning, persistence, MC-Dropout, temperature."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn.modules.dropout import _DropoutNd

from bench.data import load_dataset
from bench.errors import BenchError
from bench.evaluate.harness import RunSettings
from bench.pipeline import run
from bench.profiles import get_profile
from bench.rungs.registry import load_rung, save_rung
from models.batching import bucket, collate, encode
from models.char_cnn import CharCNN
from models.features import FeaturesLR
from models.finetune import FineTunedTransformer
from models.hf import load_classifier, load_tokenizer
from models.mask_pool import MAX_SLICE, MaskPool
from models.mc_dropout import MCDropoutClassifier, stochastic_copy
from models.temperature import TemperatureScaled, fit_temperature

FAST_FT = {"min_epochs": 20, "steps_per_class": 0, "min_steps": 0, "patience": 100, "lr": 1e-3, "batch_size": 8}


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    from tests.conftest import sentiment_rows, write_dataset

    root = tmp_path_factory.mktemp("d")
    write_dataset(
        root,
        "toy_sentiment",
        {"task": "single-label", "text_fields": ["text"], "labels": ["negative", "positive"]},
        {"train": sentiment_rows(80), "validation": sentiment_rows(20, 80), "test": sentiment_rows(30, 100)},
    )
    return load_dataset("toy_sentiment", data_dir=root)


@pytest.fixture(scope="module")
def finetuned(tiny_bert, sentiment):
    return FineTunedTransformer(model=tiny_bert, **FAST_FT).fit(sentiment.train, sentiment.validation)


def _accuracy(rung, ds) -> float:
    return float((rung.predict_proba(ds.test.inputs).argmax(1) == ds.test.y).mean())


def test_finetuned_learns_is_deterministic_and_round_trips(finetuned, sentiment, tmp_path):
    assert _accuracy(finetuned, sentiment) > 0.8
    p1, p2 = finetuned.predict_proba(sentiment.test.inputs), finetuned.predict_proba(sentiment.test.inputs)
    assert np.array_equal(p1, p2)
    save_rung(finetuned, tmp_path / "a")
    assert (tmp_path / "a" / "model" / "model.safetensors").is_file() and not list((tmp_path / "a").rglob("*.bin"))
    assert np.allclose(load_rung(tmp_path / "a").predict_proba(sentiment.test.inputs), p1, atol=1e-6)
    report = finetuned.efficiency_report(sentiment.test.inputs)
    assert 0.5 < report["padding_efficiency"] <= 1.0 and report["truncated_inputs"] == 0


def test_same_seed_same_model(tiny_bert, sentiment):
    a = FineTunedTransformer(
        model=tiny_bert, min_epochs=2, max_epochs=2, min_steps=0, lr=1e-3, batch_size=8, seed=3
    ).fit(sentiment.train, sentiment.validation)
    b = FineTunedTransformer(
        model=tiny_bert, min_epochs=2, max_epochs=2, min_steps=0, lr=1e-3, batch_size=8, seed=3
    ).fit(sentiment.train, sentiment.validation)
    c = FineTunedTransformer(
        model=tiny_bert, min_epochs=2, max_epochs=2, min_steps=0, lr=1e-3, batch_size=8, seed=4
    ).fit(sentiment.train, sentiment.validation)
    pa, pb, pc = (r.predict_proba(sentiment.test.inputs) for r in (a, b, c))
    assert np.array_equal(pa, pb) and not np.array_equal(pa, pc)


def test_inference_is_length_sorted_and_order_preserving(finetuned, sentiment):
    texts = sentiment.test.inputs
    shuffled = list(reversed(texts))
    assert np.allclose(finetuned.predict_proba(shuffled), finetuned.predict_proba(texts)[::-1], atol=1e-6)


def _record_attention(model: torch.nn.Module, calls: list) -> None:
    """Route every attention call of ``model`` through a recorder of the dropout rate it is asked to apply
    and the output it gives, delegating to the attention function the model was using."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    delegate = ALL_ATTENTION_FUNCTIONS[model.config._attn_implementation]
    AttentionMaskInterface.register("bench_recording", ALL_MASK_ATTENTION_FUNCTIONS[model.config._attn_implementation])

    def recording(module, query, key, value, attention_mask, dropout=0.0, **kwargs):
        out = delegate(module, query, key, value, attention_mask, dropout=dropout, **kwargs)
        calls.append((module, float(dropout), out[0].detach()))
        return out

    AttentionInterface.register("bench_recording", recording)
    model.config._attn_implementation = "bench_recording"


@pytest.mark.parametrize("sampler", ["pooled", "exact"])
def test_mc_dropout_samples_every_dropout_site(finetuned, sentiment, sampler):
    mc = MCDropoutClassifier(finetuned, passes=4, sampler=sampler).fit(sentiment.train, sentiment.validation)
    sites = {name: m for name, m in mc.stochastic_.named_modules() if isinstance(m, _DropoutNd)}
    assert len(sites) >= 2 * 3 + 2  # per layer: attention-output and FFN-output dropout (+ embeddings, classifier)
    fired: dict[str, list[torch.Tensor]] = {name: [] for name in sites}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, n=name: fired[n].append((inp[0].detach(), out.detach())))
        for name, m in sites.items()
    ]
    attention: list = []
    _record_attention(mc.stochastic_, attention)
    try:
        per_pass = mc.sample_probs(sentiment.test.inputs[:6], passes=4)
    finally:
        for h in hooks:
            h.remove()
    # attention-probability dropout is functional: its rate is handed to the attention function, which
    # transformers 5 sets to 0 unless the attention module is training. Each such call must get the full
    # rate, and its output must differ between the replicated passes.
    functional = {id(module): rate for module, rate, _ in attention}
    owners = dict(mc.stochastic_.named_modules())
    assert functional, "no attention call recorded"
    for _, rate, out in attention:
        replicas = out.view(4, -1, *out.shape[1:])
        assert rate > 0 and not torch.allclose(replicas[0], replicas[1]), "attention output identical across passes"
    for name, records in fired.items():
        owner = owners[name.rsplit(".", 1)[0]]
        if id(owner) in functional:
            assert functional[id(owner)] == pytest.approx(sites[name].p) and sites[name].p > 0, (
                f"attention site {name} off"
            )
            continue
        assert records, f"dropout site {name} never ran"
        x, y = records[0]
        dropped = (y == 0) & (x != 0)
        assert dropped.any(), f"dropout site {name} dropped nothing"
        replicas = y.view(4, -1, *y.shape[1:])
        assert not torch.equal(replicas[0], replicas[1]), f"dropout site {name} gave identical passes"
    assert sum(id(owners[n.rsplit(".", 1)[0]]) in functional for n in sites) == 2  # one per layer
    assert per_pass.std(axis=0).max() > 0
    # ... while the plain rung stays deterministic, with attention dropout off (run eagerly, so the Python
    # attention calls can be recorded; its scripted path is checked equal to the eager one elsewhere)
    plain: list = []
    _record_attention(finetuned.module_, plain)
    finetuned.inference = "eager"
    try:
        a, b = finetuned.predict_proba(sentiment.test.inputs[:6]), finetuned.predict_proba(sentiment.test.inputs[:6])
    finally:
        finetuned.module_.config._attn_implementation = "sdpa"
        finetuned.inference = "script"
    assert np.array_equal(a, b) and plain and all(rate == 0.0 for _, rate, _ in plain)


def test_mask_pool_drops_at_the_rate_and_masks_differ():
    pool = MaskPool(seed=1)
    x = torch.ones(64, 25, 384)
    for p in (0.1, 0.5):
        masks = [pool.drop(x, p) for _ in range(3)]
        for m in masks:
            assert abs(float((m == 0).float().mean()) - p) < 0.01
            assert torch.allclose(m[m > 0], torch.tensor(1 / (1 - p)))
        assert not torch.equal(masks[0], masks[1])
    pool.reseed(5)
    first = pool.drop(x, 0.1)
    pool.reseed(5)
    assert torch.equal(pool.drop(x, 0.1), first)
    big = torch.ones(MAX_SLICE + 1)  # too big for a random offset: fresh Bernoulli masks
    assert abs(float((pool.drop(big, 0.1) == 0).float().mean()) - 0.1) < 0.01


def test_pooled_attention_matches_sdpa_without_dropout(finetuned, sentiment, monkeypatch):
    mc = MCDropoutClassifier(finetuned, passes=2).fit(sentiment.train, sentiment.validation)
    monkeypatch.setattr(MaskPool, "mask", lambda self, p, like: torch.ones_like(like))  # keep all: pure attention maths
    texts = sentiment.test.inputs[:8] + ["a much longer sentence than the others so that padding is needed here"]
    assert np.allclose(mc.sample_probs(texts, passes=2)[0], finetuned.predict_proba(texts), atol=1e-5)


def test_pooled_and_exact_masks_give_the_same_mc_estimate(finetuned, sentiment):
    texts = sentiment.test.inputs[:10]
    est = {
        s: MCDropoutClassifier(finetuned, sampler=s)
        .fit(sentiment.train, sentiment.validation)
        .sample_probs(texts, passes=400)
        for s in ("pooled", "exact")
    }
    spread = np.sqrt(est["exact"].var(axis=0) / 400 + est["pooled"].var(axis=0) / 400)  # std error of the difference
    diff = np.abs(est["pooled"].mean(axis=0) - est["exact"].mean(axis=0))
    assert (diff <= 4 * spread + 1e-6).all()
    assert np.allclose(est["pooled"].std(axis=0), est["exact"].std(axis=0), rtol=0.25, atol=1e-3)


def test_baal_patch_alone_leaves_attention_dropout_off(finetuned):
    """The trap the wrapper fixes: after baal's patch_module in eval mode, attention asks for dropout 0."""
    import copy

    from baal.bayesian.dropout import patch_module

    patched = patch_module(copy.deepcopy(finetuned.module_), inplace=True).eval()
    calls: list = []
    _record_attention(patched, calls)
    batch = {"input_ids": torch.tensor([[101, 2307, 2143, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.inference_mode():
        patched(**batch)
    assert calls and all(rate == 0.0 for _, rate, _ in calls)
    fixed = stochastic_copy(finetuned.module_)
    calls.clear()
    _record_attention(fixed, calls)
    with torch.inference_mode():
        fixed(**batch)
    assert calls and all(rate > 0 for _, rate, _ in calls)


def test_mc_estimate_depends_on_inputs_not_call_order(finetuned, sentiment, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    mc = MCDropoutClassifier(finetuned, passes=3).fit(sentiment.train, sentiment.validation)
    texts = sentiment.test.inputs
    first = mc.predict_proba(texts)
    mc.predict_proba(sentiment.validation.inputs)  # other work in between does not change the estimate
    assert np.array_equal(mc.predict_proba(texts), first)
    other_seed = MCDropoutClassifier(finetuned, passes=3, seed=9).fit(sentiment.train, sentiment.validation)
    assert not np.array_equal(other_seed.predict_proba(texts), first)
    monkeypatch.setattr("models.mc_dropout.MIN_CACHED", 1)
    mc.predict_proba(texts)
    assert list((tmp_path / "mc_dropout").glob("*.npy"))


def test_mc_dropout_probabilities_and_persistence(finetuned, sentiment, tmp_path):
    mc = MCDropoutClassifier(finetuned, passes=5, seed=1).fit(sentiment.train, sentiment.validation)
    probs = mc.predict_proba(sentiment.test.inputs)
    assert np.allclose(probs.sum(1), 1) and not np.allclose(probs, finetuned.predict_proba(sentiment.test.inputs))
    report = mc.efficiency_report(sentiment.test.inputs[:16])
    assert report["mc_passes"] == 5 and report["mc_cost_ratio"] > 0
    save_rung(mc, tmp_path / "mc")
    reloaded = load_rung(tmp_path / "mc")
    assert isinstance(reloaded, MCDropoutClassifier) and reloaded.passes == 5


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=(4000, 3))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    assert fit_temperature(3.0 * z, y) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(0.5 * z, y) == pytest.approx(0.5, rel=0.1)


def test_temperature_scaling_keeps_argmax_and_lowers_validation_nll(finetuned, sentiment, tmp_path):
    ts = TemperatureScaled(finetuned).fit(sentiment.train, sentiment.validation)
    before, after = finetuned.predict_proba(sentiment.test.inputs), ts.predict_proba(sentiment.test.inputs)
    assert np.array_equal(before.argmax(1), after.argmax(1))
    info = ts.fit_info()
    assert info["temperature"] > 0 and info["val_nll_after"] <= info["val_nll_before"] + 1e-9
    save_rung(ts, tmp_path / "ts")
    assert np.allclose(load_rung(tmp_path / "ts").predict_proba(sentiment.test.inputs), after, atol=1e-6)


def test_temperature_composes_over_classical_and_mc(finetuned, sentiment):
    from baselines.tfidf import TfidfLogisticRegression

    tfidf = TemperatureScaled(TfidfLogisticRegression(c_grid=(1.0,), min_df=1)).fit(
        sentiment.train, sentiment.validation
    )
    assert tfidf.base.is_fitted and tfidf.temperature_ > 0
    mc_ts = TemperatureScaled(MCDropoutClassifier(finetuned, passes=3)).fit(sentiment.train, sentiment.validation)
    assert mc_ts.predict_proba(sentiment.test.inputs).shape == (30, 2)


@pytest.mark.parametrize("name", ["toy_sentiment", "toy_pairs", "toy_tags"])
def test_char_cnn_learns_each_task(toy_data, name, tmp_path):
    ds = load_dataset(name, data_dir=toy_data)
    rung = CharCNN(
        min_steps=0, min_epochs=15, steps_per_class=0, patience=15, filters=32, embed_dim=16, lr=5e-3, batch_size=16
    ).fit(ds.train, ds.validation)
    probs = rung.predict_proba(ds.test.inputs)
    if ds.spec.multilabel:
        assert ((probs >= 0.5) == ds.test.y).mean() > 0.8
    else:
        assert (probs.argmax(1) == ds.test.y).mean() > 0.7
    save_rung(rung, tmp_path / "c")
    assert np.allclose(load_rung(tmp_path / "c").predict_proba(ds.test.inputs), probs, atol=1e-6)
    info = rung.fit_info()
    assert info["best_step"] >= 1 and info["planned_steps"] == 15 * int(np.ceil(len(ds.train) / 16)) and info["curve"]
    # beyond the plan only as an extension of a fit still improving, and never beyond 30 epochs (the cap)
    assert info["steps"] <= info["planned_steps"] or info["extensions"]
    assert info["steps"] <= info["limit_steps"] == 30 * int(np.ceil(len(ds.train) / 16))


def test_char_cnn_class_weights_and_truncation(toy_data):
    ds = load_dataset("toy_tags", data_dir=toy_data)
    rung = CharCNN(min_steps=0, max_steps=5, class_weights=True, max_chars=20).fit(ds.train, ds.validation)
    assert rung.efficiency_report(ds.test.inputs)["truncated_inputs"] == len(ds.test)


def test_features_lr_caches_embeddings(tiny_bert, sentiment, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("models.features.MIN_CACHED", 1)  # cache even the toy splits
    first = FeaturesLR(model=tiny_bert, pooling="mean", c_grid=(1.0,)).fit(sentiment.train, sentiment.validation)
    assert first.fit_info()["embedding_cache_hits"] == 0 and list((tmp_path / "cache").rglob("*.npy"))
    second = FeaturesLR(model=tiny_bert, pooling="mean", c_grid=(1.0,)).fit(sentiment.train, sentiment.validation)
    assert second.fit_info()["embedding_cache_hits"] == 2
    assert np.allclose(first.predict_proba(sentiment.test.inputs), second.predict_proba(sentiment.test.inputs))
    cls = FeaturesLR(model=tiny_bert, pooling="cls", c_grid=(1.0,)).fit(sentiment.train, sentiment.validation)
    assert not np.allclose(cls.embed(sentiment.test.inputs[:3]), first.embed(sentiment.test.inputs[:3]))
    save_rung(first, tmp_path / "f")
    assert np.allclose(
        load_rung(tmp_path / "f").predict_proba(sentiment.test.inputs), first.predict_proba(sentiment.test.inputs)
    )


def test_truncation_and_empty_after_tokenisation(tiny_bert):
    tok = load_tokenizer(tiny_bert)
    enc = encode(tok, ["word " * 50, "short"], max_length=16)
    assert enc.truncated == 1 and max(map(len, enc.ids)) == 16
    pairs = encode(tok, [("first text", "second text")], max_length=32)
    assert 102 in pairs.ids[0][1:-1] and pairs.type_ids and max(pairs.type_ids[0]) == 1  # [SEP] inside, segment 1
    with pytest.raises(BenchError, match="empty after tokenisation"):
        encode(tok, ["fine", "\u200b\u200b"], max_length=16)


def test_bad_model_paths_give_one_line(tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        load_tokenizer("./no/such/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match="no config.json"):
        load_tokenizer(str(tmp_path / "empty"))
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"model_type": "not-a-model"}))
    with pytest.raises(BenchError, match="cannot load a sequence classifier") as err:
        load_classifier(str(tmp_path / "odd"), 2, False)
    assert "\n" not in str(err.value)


def test_harness_fine_tunes_once_for_plain_mc_and_ts(tiny_bert, toy_data, tmp_path):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    settings = RunSettings(
        profile=get_profile("quick"),
        options={"finetuned": {"model": tiny_bert, "max_length": 32}, "finetuned+mc": {"passes": 3}},
    )
    results = {
        r["rung"]: r
        for r in run([ds], ["finetuned", "finetuned+mc", "finetuned+ts", "finetuned+mc+ts"], settings, tmp_path)
    }
    assert all(r["status"] == "ok" for r in results.values()), {k: r.get("error") for k, r in results.items()}
    base_fit = results["finetuned"]["efficiency"]["fit_seconds"]
    for name in ("finetuned+mc", "finetuned+ts"):
        info = results[name]["fit_info"]
        assert info["reused_fit_seconds"] == pytest.approx(base_fit)  # loaded from the stored weights, not retrained
    assert results["finetuned+mc+ts"]["fit_info"]["reused_fit_seconds"] > 0
    plain = np.load(tmp_path / "toy_sentiment" / "finetuned" / "seed-0" / "predictions.npz")["probs"]
    scaled = np.load(tmp_path / "toy_sentiment" / "finetuned+ts" / "seed-0" / "predictions.npz")["probs"]
    assert np.array_equal(plain.argmax(1), scaled.argmax(1))
    assert results["finetuned+mc"]["efficiency"]["mc_passes"] == 3
    assert "padding_efficiency" in results["finetuned"]["efficiency"]
    for name, r in results.items():  # the batch a short sweep found fastest; the model alone where tokenised ahead
        eff = r["efficiency"]
        sweep = {int(k): v for k, v in eff["throughput_sweep"].items()}
        assert eff["throughput_batch"] == max(sweep, key=sweep.__getitem__) and min(sweep) == 8
        assert ("throughput_prepared_per_s" in eff) == (name == "finetuned"), name
    assert results["finetuned+ts"]["config"]["bases"] == [results["finetuned"]["config_hash"]]


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_onnx_runtime_rung_matches_its_base_and_stands_alone(finetuned, sentiment, tmp_path, quantize):
    """fp32 ONNX Runtime reproduces the torch logits; int8 stays close, on pairs of inputs too; once built it keeps
    neither the base nor its fp32 weights (the saved folder is the ONNX model and the tokenizer)."""
    from models.onnx_runtime import MODEL_FILE, OnnxRuntimeClassifier

    rung = OnnxRuntimeClassifier(finetuned, quantize=quantize).fit(sentiment.train, sentiment.validation)
    assert rung.bases == () and rung.num_parameters() == finetuned.num_parameters()
    inputs = sentiment.test.inputs
    torch_logits, onnx_logits = finetuned.predict_logits(inputs), rung.predict_logits(inputs)
    if quantize == "none":
        np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4)
    else:  # 8-bit weights: the same decisions on nearly every input
        assert (onnx_logits.argmax(1) == torch_logits.argmax(1)).mean() >= 0.9
    # batch 1: int8 activations are quantised per call, so an input's logits move a little with its batch
    np.testing.assert_allclose(
        rung.predict_logits(inputs[:1]), onnx_logits[:1], atol=1e-5 if quantize == "none" else 0.02
    )
    save_rung(rung, tmp_path / "r")
    assert (tmp_path / "r" / MODEL_FILE).is_file() and not list((tmp_path / "r").rglob("*.safetensors"))
    again = load_rung(tmp_path / "r")
    np.testing.assert_allclose(again.predict_proba(inputs), rung.predict_proba(inputs), atol=1e-6)
    assert again.fit_info()["quantize"] == quantize and "base" in again.fit_info()
    report = rung.efficiency_report(inputs)
    assert report["onnx_quantize"] == quantize
    assert report["onnx_small_batch_threads"] == (1 if quantize == "int8" else report["onnx_threads"])
    assert again.forward_flops(inputs) == rung.forward_flops(inputs) == finetuned.forward_flops(inputs) > 0
    np.testing.assert_array_equal(rung.predict_prepared(rung.prepare(inputs)), rung.predict_proba(inputs))
    assert np.allclose(finetuned.predict_logits(inputs), torch_logits)  # the base is left as it was


@pytest.mark.parametrize("name", ["toy_sentiment", "toy_pairs"])
def test_scripted_inference_equals_the_module_and_is_used(tiny_bert, toy_data, name):
    """The frozen TorchScript path (the CPU default) gives the module's logits, for pairs (token type ids) too,
    and is the one that ran; a refit drops the script that holds the old weights."""
    ds = load_dataset(name, data_dir=toy_data)
    rung = FineTunedTransformer(model=tiny_bert, **{**FAST_FT, "min_epochs": 1, "max_epochs": 1})
    rung.fit(ds.train, ds.validation)
    inputs = list(ds.test.inputs)
    scripted = rung.predict_logits(inputs)
    assert [n for n, _ in rung.scripts_] and all(f is not rung.forward for f in rung.scripts_.values())
    rung.inference = "eager"
    np.testing.assert_allclose(scripted, rung.predict_logits(inputs), rtol=1e-5, atol=1e-5)
    rung.inference = "script"
    np.testing.assert_allclose(rung.predict_logits(inputs[:1]), scripted[:1], rtol=1e-5, atol=1e-5)  # batch 1
    rung.seed = 1
    rung.fit(ds.train, ds.validation)  # new weights in the same module object
    refit = rung.predict_logits(inputs)
    rung.inference = "eager"
    np.testing.assert_allclose(refit, rung.predict_logits(inputs), rtol=1e-5, atol=1e-5)
    assert not np.allclose(refit, scripted)


def test_a_script_that_does_not_generalise_falls_back_to_the_module(finetuned, sentiment, caplog):
    """A forward whose Python branches on the input's shape traces into a script that is wrong on other shapes:
    the check on shapes it was not traced on catches it, and inference runs the module itself."""
    from models.torch_base import script_forward

    def shape_dependent(batch):
        logits = finetuned.forward(batch)
        return logits * 2 if batch["input_ids"].shape[1] == 7 else logits  # the trace's example is 7 wide

    with caplog.at_level("WARNING"):
        assert script_forward(finetuned.module_, shape_dependent, ("input_ids", "attention_mask"), 0) is None
    assert "TorchScript inference unavailable" in caplog.text
    with pytest.raises(ValueError, match="inference must be one of"):
        FineTunedTransformer(inference="jit").fit(sentiment.train, sentiment.validation)


class _FakeGraph:
    """CUDAGraph's contract on a CPU: capture records the forward on static inputs; replay recomputes it into the
    captured output tensor (as a real replay rewrites its memory)."""

    capturing: _FakeGraph | None = None

    def replay(self) -> None:
        with torch.inference_mode():
            self.output.copy_(self.fn(self.static))


def test_cuda_graph_replay_copies_inputs_returns_copies_and_falls_back(finetuned, sentiment, monkeypatch, caplog):
    """graph_forward's logic, with torch.cuda's graph and stream calls standing in on a CPU (no GPU here; the GPU
    check script runs the real thing): each replay computes its own batch (inputs copied into the static ones),
    returns a copy (a later replay does not overwrite an earlier result), matches the module at every bucket width,
    and a forward that cannot be captured falls back with a warning."""
    import contextlib
    import types

    from models.torch_base import graph_forward

    stream = types.SimpleNamespace(wait_stream=lambda other: None)

    @contextlib.contextmanager
    def capture(graph):
        _FakeGraph.capturing = graph
        yield
        _FakeGraph.capturing = None

    monkeypatch.setattr(torch.cuda, "Stream", lambda: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: stream)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", capture)

    def forward(batch):
        out = finetuned.forward(batch)
        graph = _FakeGraph.capturing
        if graph is not None:
            graph.fn, graph.static, graph.output = finetuned.forward, batch, out
        return out

    names = ("input_ids", "attention_mask")
    texts = list(sentiment.test.inputs)[:6]
    enc = encode(finetuned.tokenizer_, texts, finetuned.max_length)
    finetuned.module_.eval()
    with torch.inference_mode():
        for width in sorted({bucket(int(n), 8) for n in enc.lengths}):
            replay = graph_forward(forward, names, width, finetuned.pad_id, "cpu")
            assert replay is not None
            fits = [i for i in range(len(texts)) if bucket(int(enc.lengths[i]), 8) == width]
            results = []
            for i in fits:
                batch = collate(enc, np.array([i]), finetuned.pad_id, "cpu", multiple=8)
                results.append(replay(batch))
                torch.testing.assert_close(results[-1], finetuned.forward(batch), rtol=1e-5, atol=1e-5)
            for i, got in zip(fits, results, strict=True):  # not overwritten by the replays after it
                exact = collate(enc, np.array([i]), finetuned.pad_id, "cpu")
                torch.testing.assert_close(got, finetuned.forward(exact), rtol=1e-5, atol=1e-5)

        def host_sync(batch):
            if _FakeGraph.capturing is not None:
                raise RuntimeError("operation not permitted when stream is capturing")
            return finetuned.forward(batch)

        with caplog.at_level("WARNING"):
            assert graph_forward(host_sync, names, 16, finetuned.pad_id, "cpu") is None
    assert "CUDA graph unavailable at width 16 (RuntimeError" in caplog.text


def test_bucketed_padding_leaves_logits_and_warm_up_covers_every_bucket(finetuned, sentiment, monkeypatch):
    """On a GPU inputs are padded to multiples of 8 (few shapes) and a warm-up runs each bucket width at batch 1
    and at the inference batch; padding is masked, so the logits are those of exact-width batches. Checked here
    on the CPU with the GPU's bucket multiple."""
    import models.torch_base as torch_base
    from models.batching import bucket, bucket_widths

    assert [bucket(n, 8, 20) for n in (1, 8, 9, 17, 20, 25)] == [8, 8, 16, 20, 20, 25]
    assert bucket_widths(8, 20) == [8, 16, 20] and bucket_widths(1, 3) == [1, 2, 3]
    inputs = list(sentiment.test.inputs)
    exact = finetuned.predict_logits(inputs)
    monkeypatch.setattr(torch_base, "pad_multiple", lambda device: 8)
    widths: set[tuple[int, int]] = set()
    hook = finetuned.module_.register_forward_pre_hook(
        lambda mod, args, kwargs: widths.add(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        finetuned.inference = "eager"  # the hook sees the module's calls
        np.testing.assert_allclose(finetuned.predict_logits(inputs), exact, rtol=1e-4, atol=1e-5)
        assert widths and all(w % 8 == 0 or w == finetuned.max_length for _, w in widths)
        widths.clear()
        finetuned.warm_up()
    finally:
        hook.remove()
        finetuned.inference = "script"
    expected = {(b, w) for b in (1, finetuned.eval_batch_size) for w in bucket_widths(8, finetuned.max_length)}
    assert widths == expected
    assert finetuned.efficiency_report(inputs)["pad_multiple"] == 8


def test_bf16_rung_stands_alone_in_half_the_size_and_keeps_its_decisions(finetuned, sentiment, tmp_path):
    """The bf16 copy decides (nearly) every input as its fp32 base, counts the same operations in bfloat16, leaves
    the base as it was, and saves and reloads as bf16 weights in about half the bytes."""
    from models.precision import CastPrecision

    inputs = list(sentiment.test.inputs)
    before = finetuned.predict_proba(inputs)
    rung = CastPrecision(finetuned).fit(sentiment.train, sentiment.validation)
    probs = rung.predict_proba(inputs)
    assert (probs.argmax(1) == before.argmax(1)).mean() >= 0.9 and np.abs(probs - before).max() < 0.05
    assert next(finetuned.module_.parameters()).dtype == torch.float32  # the base is untouched
    np.testing.assert_array_equal(finetuned.predict_proba(inputs), before)
    assert rung.compute_dtype == "bfloat16" and finetuned.compute_dtype == "float32"
    assert rung.forward_flops(inputs) == finetuned.forward_flops(inputs)
    save_rung(finetuned, tmp_path / "fp32")
    save_rung(rung, tmp_path / "bf16")
    size = {k: sum(f.stat().st_size for f in (tmp_path / k).rglob("*.safetensors")) for k in ("fp32", "bf16")}
    assert 0.45 < size["bf16"] / size["fp32"] < 0.55
    again = load_rung(tmp_path / "bf16")
    assert again.compute_dtype == "bfloat16"
    np.testing.assert_allclose(again.predict_proba(inputs), probs, atol=1e-6)
    assert rung.efficiency_report(inputs)["weights_dtype"] == "bfloat16"
    for r in (finetuned, rung):  # tokenised ahead, the same probabilities
        np.testing.assert_array_equal(r.predict_prepared(r.prepare(inputs)), r.predict_proba(inputs))
    with pytest.raises(ValueError, match="dtype must be one of"):
        CastPrecision(finetuned, dtype="int4").fit(sentiment.train, sentiment.validation)


def test_features_lr_warm_up_covers_every_bucket_with_its_real_input_names(tiny_bert, sentiment, monkeypatch):
    import models.features as features
    from models.batching import bucket_widths

    rung = FeaturesLR(model=tiny_bert, use_cache=False, max_length=24, batch_size=4)
    rung.fit(sentiment.train, sentiment.validation)
    monkeypatch.setattr(features, "pad_multiple", lambda device: 8)
    seen: set[tuple[tuple[int, int], tuple[str, ...]]] = set()
    hook = rung.encoder_.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.add((tuple(kwargs["input_ids"].shape), tuple(sorted(kwargs)))), with_kwargs=True
    )
    try:
        rung.warm_up()
        real = rung._encode(["a"])
    finally:
        hook.remove()
    names = tuple(sorted(["input_ids", "attention_mask", *(["token_type_ids"] if real.type_ids else [])]))
    assert seen == {((b, w), names) for b in (1, 4) for w in bucket_widths(8, 24)}
