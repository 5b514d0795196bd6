"""Deployment rungs: a fine-tuned transformer exported to ONNX and run by ONNX Runtime, in fp32 or with dynamic int8
quantization (``onnxruntime.quantization.quantize_dynamic``: 8-bit weights, the word embeddings included, and
activations quantised per call).

Route and settings as measured on the 2-core Xeon (AVX-512 VNNI, AMX), MiniLM-L6 fine-tuned on sst2, 872 test
texts: torch's TorchScript exporter (``dynamo=False``; the dynamo exporter also works but needs onnxscript and took
11 s against 3 s; optimum pins transformers < 4.58), QInt8 weights per channel (accuracy 0.8670 against 0.8589 per
tensor and 0.8704 for fp32), ORT's own graph optimisations, no spinning threads (they slow any other work on the
machine; int8 batches of a few dozen tokens run on a one-thread session instead). PyTorch's dynamic int8 (``torch.ao``)
was slower (0.66× fp32 latency against 0.20×), less accurate (0.8498) and larger (embeddings stay fp32): not
registered. ONNX Runtime's transformer optimiser (``onnxruntime.transformers.optimizer``) fused LayerNorm and GELU
but not the attention of this export, and was no faster (int8 batch 1 3.0-3.3 ms against 2.7-2.9 ms): not used.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from bench.data import Input, Split
from bench.errors import NotApplicable
from bench.rungs.protocol import Rung
from bench.rungs.wrapper import STATE_FILE, Wrapper
from models.batching import Encoded, encode, iterate, padding_report
from models.flops import FlopModel
from models.torch_base import TorchClassifier, probabilities, spec_from_dict, spec_to_dict

QUANTIZATIONS = ("none", "int8")
MODEL_FILE, TOKENIZER_DIR = "model.onnx", "tokenizer"
SMALL_BATCH_TOKENS = 128  # padded tokens up to which an int8 batch runs on the one-thread session (see _start)


class _Positional(torch.nn.Module):
    """The classifier called with positional tensors (what the exporter traces) as the named inputs it takes."""

    def __init__(self, module: torch.nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.module, self.names = module, list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.module(**dict(zip(self.names, tensors, strict=True))).logits


def export_onnx(module: torch.nn.Module, sample: dict[str, torch.Tensor], path: Path, opset: int) -> None:
    """Export a Hugging Face sequence classifier to ONNX at ``path``: inputs named as in ``sample`` (batch and
    sequence axes dynamic), output ``logits``."""
    names = list(sample)
    module = module.float().cpu().eval()
    with warnings.catch_warnings(), torch.inference_mode(False):
        warnings.simplefilter("ignore")  # the tracer's notes on a padding check and the exporter's deprecation
        torch.onnx.export(
            _Positional(module, names),
            tuple(sample[n].cpu() for n in names),
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


class OnnxRuntimeClassifier(Wrapper):
    """``base`` (a fine-tuned Hugging Face transformer) exported to ONNX and run by ONNX Runtime on the CPU,
    ``quantize="int8"`` for dynamic int8. Once fitted it stands alone: it keeps the ONNX model and the tokenizer,
    not its base's fp32 weights, so its size on disk is what a deployment ships. Dynamic int8 quantises each
    call's activations with that call's range, so an input's logits move slightly with the batch it is in."""

    has_logits = True

    def __init__(
        self,
        base: Rung | None = None,
        quantize: str = "int8",
        per_channel: bool = True,
        opset: int = 17,
        threads: int | None = None,
    ) -> None:
        self._set_bases([] if base is None else [base])
        self.quantize = quantize
        self.per_channel = per_channel
        self.opset = opset
        self.threads = threads

    def fit_own(self, train: Split, validation: Split) -> None:
        base = self.base
        if not isinstance(base, TorchClassifier) or not hasattr(base, "tokenizer_"):
            raise NotApplicable(f"ONNX export needs a Hugging Face transformer rung, got {type(base).__name__}")
        if self.quantize not in QUANTIZATIONS:
            raise ValueError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, got {self.quantize!r}")
        try:
            from onnxruntime.quantization import QuantType, quantize_dynamic
        except ImportError as exc:
            raise NotApplicable(f"onnxruntime is not installed ({exc}): pip install onnxruntime onnx") from None
        self.tokenizer_, self.max_length, self.eval_batch_size = base.tokenizer_, base.max_length, base.eval_batch_size
        self.params_ = base.num_parameters()
        self.flops_: FlopModel | None = base.flop_model()
        sample = next(iter(base.batches(base.encode_inputs([train.inputs[0], train.inputs[-1]]))))[1]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / MODEL_FILE
            t0 = time.perf_counter()
            export_onnx(base.module_, sample, path, self.opset)
            info: dict[str, Any] = {"export_seconds": time.perf_counter() - t0}
            if self.quantize == "int8":
                t0 = time.perf_counter()
                quantized = Path(tmp) / "model.int8.onnx"
                root = logging.getLogger()  # the quantizer logs a pre-processing hint that changed nothing here
                level, root.level = root.level, logging.ERROR
                try:
                    quantize_dynamic(path, quantized, weight_type=QuantType.QInt8, per_channel=self.per_channel)
                finally:
                    root.setLevel(level)
                info["quantize_seconds"] = time.perf_counter() - t0
                path = quantized
            self.model_bytes_ = path.read_bytes()
        self.info_ = {**info, "quantize": self.quantize, "base": base.fit_info()}
        base.module_.to(base.device)  # the export moved it to the CPU
        self._start()
        self._set_bases([])  # deployed alone: its base's weights are neither needed nor saved

    def _start(self) -> None:
        import onnxruntime as ort

        def session(threads: int) -> Any:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return ort.InferenceSession(self.model_bytes_, options, providers=["CPUExecutionProvider"])

        threads = self.threads or torch.get_num_threads()
        self.session_ = session(threads)
        # Small int8 batches run on one thread: without spinning, waking a second thread costs more than it saves
        # on a few dozen tokens (sst2, 2 cores: batch 1 2.9 ms on one thread against 3.9 ms on two; batch 4 even,
        # 16: 66 against 47 ms). Spinning threads would close the gap but slow any other work on the machine. fp32
        # does four times the arithmetic per token, and two threads stay faster (batch 1 5.9-6.7 against 6.5-7.5 ms).
        small = threads > 1 and self.quantize == "int8"
        self.small_session_ = session(1) if small else self.session_
        self.inputs_ = {i.name for i in self.session_.get_inputs()}

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer_.pad_token_id or 0)

    def prepare(self, inputs: Sequence[Input]) -> Encoded:
        return encode(self.tokenizer_, inputs, self.max_length)

    def predict_prepared(self, prepared: Encoded) -> np.ndarray:
        return probabilities(self.logits_of(prepared), self.spec.multilabel)

    def predict_logits(self, inputs: Sequence[Input]) -> np.ndarray:
        return self.logits_of(self.prepare(inputs))

    def logits_of(self, enc: Encoded) -> np.ndarray:
        """Logits ``[N, C]`` of tokenised inputs."""
        out = np.empty((len(enc.ids), self.spec.n_classes), dtype=np.float32)
        for idx, batch in iterate(enc, self.eval_batch_size, self.pad_id, "cpu"):
            feed = {k: v.numpy() for k, v in batch.items() if k in self.inputs_}
            small = feed["input_ids"].size <= SMALL_BATCH_TOKENS
            out[idx] = (self.small_session_ if small else self.session_).run(["logits"], feed)[0]
        return out

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        return probabilities(self.predict_logits(inputs), self.spec.multilabel)

    def own_parameters(self) -> int:
        """The base's parameters (stored as 8-bit integers when quantized)."""
        return int(self.params_)

    def efficiency_report(self, inputs: Sequence[Input]) -> dict[str, Any]:
        return {
            **padding_report(self.prepare(inputs), self.eval_batch_size, self.pad_id),
            "onnx_quantize": self.quantize,
            "onnx_threads": self.session_.get_session_options().intra_op_num_threads,
            "onnx_small_batch_threads": self.small_session_.get_session_options().intra_op_num_threads,
        }

    def forward_flops(self, inputs: Sequence[Input]) -> float | None:
        """The exported network's operations (its base's count; int8 ones are integer operations)."""
        if self.flops_ is None:  # saved before the count was kept
            return None
        return self.flops_.total(self.prepare(inputs).lengths)

    def fit_info(self) -> dict[str, Any]:
        return dict(self.info_)

    def state(self) -> dict[str, Any]:
        return {
            "spec": spec_to_dict(self.spec),
            "max_length": self.max_length,
            "eval_batch_size": self.eval_batch_size,
            "params": self.params_,
            "info": self.info_,
            "flops": None if self.flops_ is None else list(self.flops_),
        }

    def save(self, folder: Path) -> None:
        super().save(folder)  # wrapper.json: its options and state (no base)
        (Path(folder) / MODEL_FILE).write_bytes(self.model_bytes_)
        self.tokenizer_.save_pretrained(Path(folder) / TOKENIZER_DIR)

    @classmethod
    def load(cls, folder: Path) -> Self:
        from transformers import AutoTokenizer

        folder = Path(folder)
        payload = json.loads((folder / STATE_FILE).read_text())
        rung, state = cls(**payload["params"]), payload["state"]
        rung.spec, rung.params_, rung.info_ = spec_from_dict(state["spec"]), state["params"], state["info"]
        rung.max_length, rung.eval_batch_size = state["max_length"], state["eval_batch_size"]
        rung.flops_ = FlopModel(*state["flops"]) if state.get("flops") else None
        rung.model_bytes_ = (folder / MODEL_FILE).read_bytes()
        rung.tokenizer_ = AutoTokenizer.from_pretrained(folder / TOKENIZER_DIR)
        rung._start()
        return rung
