"""What the torch rungs share: device and thread set-up, batched inference, logits → probabilities."""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.data import Input, TaskSpec
from bench.rungs.protocol import Rung
from models.batching import Encoded, PaddingStats, collate, iterate, padding_report
from models.flops import FlopModel, fit_flop_model

META_FILE = "meta.json"


def probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    """Softmax over classes, or independent sigmoids for multi-label, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    if multilabel:
        return 1.0 / (1.0 + np.exp(-z))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def seed_torch(seed: int) -> torch.Generator:
    """Seed torch's global RNG (dropout, initialisation) and return a generator for data order."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def autocast(device: str, precision: str) -> Any:
    """An autocast context for ``bf16``/``fp16`` on CUDA; a no-op otherwise."""
    if device.startswith("cuda") and precision in ("bf16", "fp16"):
        return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return torch.autocast("cpu", enabled=False)


def spec_to_dict(spec: TaskSpec) -> dict[str, Any]:
    d = asdict(spec)
    d.pop("resources", None)
    d.pop("card", None)
    return d


def spec_from_dict(d: dict[str, Any]) -> TaskSpec:
    return TaskSpec(d["name"], d["task_type"], tuple(d["labels"]), tuple(d["text_fields"]))


def write_meta(folder: Path, spec: TaskSpec, **fields: Any) -> None:
    (folder / META_FILE).write_text(json.dumps({"spec": spec_to_dict(spec), **fields}, indent=2, default=str))


def read_meta(folder: Path) -> dict[str, Any]:
    meta = json.loads((Path(folder) / META_FILE).read_text())
    meta["spec"] = spec_from_dict(meta["spec"])
    return meta


class TorchClassifier(Rung):
    """A rung whose model is a torch module over token ids: subclasses provide encoding and a forward pass.

    Inference tokenises once, sorts inputs by length and pads per batch. The same pieces
    (``encode_inputs``, ``batches``, ``forward``) let wrappers such as MC-Dropout run the module.
    """

    has_logits = True
    device: str = "cpu"
    eval_batch_size: int = 64
    module_: torch.nn.Module
    pad_id: int = 0

    @abstractmethod
    def encode_inputs(self, inputs: Sequence[Input]) -> Encoded:
        """Token ids for ``inputs`` (truncated to the rung's maximum length)."""

    @abstractmethod
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``[B, C]`` for one collated batch (the module's train/eval mode is the caller's)."""

    def batches(self, enc: Encoded, stats: PaddingStats | None = None):
        """Length-sorted, per-batch padded inference batches: ``(indices, inputs)``."""
        return iterate(enc, self.eval_batch_size, self.pad_id, self.device, stats)

    def predict_logits(self, inputs: Sequence[Input]) -> np.ndarray:
        return self.logits_of(self.encode_inputs(inputs))

    def logits_of(self, enc: Encoded) -> np.ndarray:
        """Logits ``[N, C]`` of already encoded inputs (the module is put in eval mode)."""
        out = np.empty((len(enc.ids), self.spec.n_classes), dtype=np.float32)
        self.module_.eval()
        with torch.inference_mode():
            for idx, batch in self.batches(enc):
                out[idx] = self.forward(batch).float().cpu().numpy()
        return out

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        return probabilities(self.predict_logits(inputs), self.spec.multilabel)

    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.module_.parameters()))

    def efficiency_report(self, inputs: Sequence[Input]) -> dict[str, Any]:
        """Padding efficiency (real / computed tokens) of inference on ``inputs`` and how many were truncated."""
        return padding_report(self.encode_inputs(inputs), self.eval_batch_size, self.pad_id)

    @property
    def compute_dtype(self) -> str:  # type: ignore[override]
        precision = getattr(self, "precision", "fp32")
        cuda = self.device.startswith("cuda")
        return {"bf16": "bfloat16", "fp16": "float16"}.get(precision, "float32") if cuda else "float32"

    def token_range(self) -> tuple[int, int]:
        """The shortest input the module computes on (it pads shorter ones) and the longest it takes."""
        return 1, int(getattr(self, "max_length", 512))

    def flop_model(self) -> FlopModel:
        """The module's forward cost per input length (:mod:`models.flops`), counted once, on first use."""
        if getattr(self, "flop_model_", None) is None:
            shortest, longest = self.token_range()

            def forward(n: int) -> None:
                one = Encoded([[1] * n], None, 0)
                self.forward(collate(one, np.zeros(1, dtype=np.int64), self.pad_id, self.device))

            self.module_.eval()
            self.flop_model_ = fit_flop_model(forward, longest, shortest)
        return self.flop_model_

    def forward_flops(self, inputs: Sequence[Input]) -> float | None:
        return self.flop_model().total(self.encode_inputs(inputs).lengths)
