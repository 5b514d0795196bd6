"""Neural rungs (char-CNN, transformer features, fine-tuning) and the wrappers over them (MC-Dropout, deep
ensembles, temperature scaling, ONNX Runtime deployment in fp32 and int8, bf16 weights).

Importing this package declares them in the registry; torch and transformers load only when a rung is built.
"""

from bench.rungs.registry import Capabilities, PlotStyle, Resources, register_rung

TORCH = Capabilities(device=True)
WHOLE_MACHINE = Resources(cpus=None)  # torch trains with every core (a cluster cell holds a whole node)
TRANSFORMER = PlotStyle("#d62728")
WRAPPER = PlotStyle("#9467bd")
CHECK_MODEL = "models.hf:check_options"

register_rung(
    "char_cnn",
    "models.char_cnn:CharCNN",
    family="cnn",
    capabilities=TORCH,
    resources=WHOLE_MACHINE,
    style=PlotStyle("#2ca02c"),
    description="Character CNN: embeddings → conv widths 2-5 → global max-pool → dropout → linear; "
    "step budget from the data, early stopping on validation loss.",
    # profiles cap the step budget (models.training.step_budget), never set an epoch count
    profiles={
        "quick": {"min_steps": 0, "max_steps": 300},
        "default": {"max_train": 20000, "max_steps": 3000},
    },
    perf={"max_steps": 50, "min_steps": 0},
)

register_rung(
    "features_lr",
    "models.features:FeaturesLR",
    family="transformer",
    capabilities=TORCH,
    resources=WHOLE_MACHINE,
    style=TRANSFORMER,
    check=CHECK_MODEL,
    description="Frozen pretrained encoder (default all-MiniLM-L6-v2), pooled embeddings → logistic "
    "regression; option features_lr.model=<id or path>.",
    profiles={"quick": {"max_length": 64}, "default": {"max_train": 20000}},
    perf={"max_length": 64},
)

register_rung(
    "finetuned",
    "models.finetune:FineTunedTransformer",
    family="transformer",
    capabilities=TORCH,
    resources=WHOLE_MACHINE,
    style=TRANSFORMER,
    check=CHECK_MODEL,
    description="Pretrained transformer (default all-MiniLM-L6-v2) fine-tuned end to end: step budget from the "
    "data, early stopping on validation macro-F1 (multi-label: micro-F1); option finetuned.model=<hub id or path>.",
    # profiles cap the step budget (models.training.step_budget); default: what a 2-core CPU runs in minutes
    # (1,000 steps of 32 × 128 tokens take 25 min there)
    profiles={
        "quick": {"max_train": 2000, "min_steps": 0, "max_steps": 100, "max_length": 64},
        "default": {"max_train": 20000, "max_steps": 1000},
        "full": {"min_epochs": 3},
    },
    perf={"max_train": 256, "min_steps": 0, "max_steps": 8, "max_length": 64, "batch_size": 32},
)

register_rung(
    "finetuned+mc",
    "models.mc_dropout:MCDropoutClassifier",
    family="transformer+calibration",
    bases=["finetuned"],
    style=WRAPPER,
    capabilities=Capabilities(needs=frozenset({"torch"}), device=True, stochastic=True),
    description="MC-Dropout (baal) on the fine-tuned transformer: mean softmax of T passes (default 20), "
    "every dropout site sampled.",
    # 5 passes time the same per-pass code as 20 in a quarter of the time, so a case gets more rounds
    perf={"passes": 5},
)

register_rung(
    "finetuned+ens",
    "models.ensemble:DeepEnsemble",
    family="transformer+ensemble",
    bases=["finetuned"],
    members="members",
    style=PlotStyle("#8c564b"),
    capabilities=Capabilities(device=True),
    description="Deep ensemble of the fine-tuned transformer: mean probabilities of K members, each the fine-tuned "
    "rung at its own seed (seeds s … s+K-1, each stored as that seed's result and reused); K=3 by default, 5 in full.",
    profiles={"quick": {"members": 2}, "default": {"members": 3}, "full": {"members": 5}},
    perf={"members": 2},  # the latency suite times the per-member code; K members cost about K times one
)

for _name, _quantize, _what in (
    ("finetuned+onnx", "none", "in fp32"),
    ("finetuned+int8", "int8", "with dynamic int8 quantization (8-bit weights, word embeddings included)"),
):
    register_rung(
        _name,
        "models.onnx_runtime:OnnxRuntimeClassifier",
        family="transformer+deployment",
        bases=["finetuned"],
        fixed={"quantize": _quantize},
        style=PlotStyle("#e377c2", marker="s"),
        capabilities=Capabilities(needs=frozenset({"torch"})),
        description=f"The fine-tuned transformer exported to ONNX and run by ONNX Runtime on the CPU {_what}; "
        "stands alone once built (its size is the ONNX model and tokenizer).",
    )

register_rung(
    "finetuned+bf16",
    "models.precision:CastPrecision",
    family="transformer+deployment",
    bases=["finetuned"],
    fixed={"dtype": "bfloat16"},
    style=PlotStyle("#e377c2", marker="^"),
    capabilities=Capabilities(needs=frozenset({"torch"}), device=True),
    description="The fine-tuned transformer with its weights cast to bfloat16 for inference (AMX on recent Intel "
    "CPUs, tensor cores on GPUs); stands alone once built (its size is the bf16 weights).",
)

for _base, _family in (
    ("tfidf_lr", "linear+calibration"),
    ("char_cnn", "cnn+calibration"),
    ("features_lr", "transformer+calibration"),
    ("finetuned", "transformer+calibration"),
    ("finetuned+mc", "transformer+calibration"),
    ("finetuned+ens", "transformer+calibration"),
):
    register_rung(
        f"{_base}+ts",
        "models.temperature:TemperatureScaled",
        family=_family,
        bases=[_base],
        style=WRAPPER,
        capabilities=Capabilities(needs=frozenset({"logits"})),
        description=f"Temperature scaling on {_base}: one scalar T fitted on validation NLL (LBFGS).",
        # T is one scalar; 500 examples pin it down, and each costs 20 MC passes here
        profiles={"default": {"max_calibration": 500}} if _base == "finetuned+mc" else None,
    )
