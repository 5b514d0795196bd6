"""What the torch rungs share: device and thread set-up, batched inference, logits → probabilities."""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.data import Input, TaskSpec
from bench.rungs.protocol import Rung
from models.batching import (
    Encoded,
    PaddingStats,
    collate,
    iterate,
    pad_multiple,
    padding_report,
    warm_up_encodings,
)
from models.flops import FlopModel, fit_flop_model

META_FILE = "meta.json"
INFERENCE = ("script", "eager")
#: the fewest inputs per inference batch on a GPU: at 64 rows the fine-tuned MiniLM is bound by kernel launches
#: (H200: 4.9 ms per eager forward at batch 1), which only rows by the thousand amortise (the raw forward reached
#: 28k texts/s fp32 at batch 1024-4096, 64 tokens)
GPU_BATCH_ROWS = 1024
log = logging.getLogger(__name__)


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
        # no cast cache: a CUDA graph captured under autocast must not keep casts freed when the context exits
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype, cache_enabled=False)
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


def _batch(names: Sequence[str], lengths: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    ids = [[1 + (i + j) % 3 for j in range(n)] for i, n in enumerate(lengths)]
    types = [[int(j >= n // 2) for j in range(n)] for n in lengths] if "token_type_ids" in names else None
    batch = collate(Encoded(ids, types, 0), np.arange(len(lengths)), pad_id, "cpu")
    return {k: batch[k] for k in names}


def script_forward(
    module: torch.nn.Module,
    forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    names: tuple[str, ...],
    pad_id: int,
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor] | None:
    """``forward`` (which runs ``module``) traced and frozen by TorchScript for batches of inputs ``names`` (CPU),
    or None when the script's logits differ from ``forward``'s on shapes it was not traced on (it logs why)."""
    import warnings

    class Positional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module  # its parameters become the script's (frozen into it)

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return forward(dict(zip(names, tensors, strict=True)))

    example = _batch(names, [7, 4], pad_id)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # tracer warnings on shape arithmetic: the check below decides
            frozen = torch.jit.freeze(torch.jit.trace(Positional().eval(), tuple(example.values()), check_trace=False))
            for lengths in ([5], [9, 3, 6]):
                batch = _batch(names, lengths, pad_id)
                eager, script = forward(batch).float(), frozen(*batch.values()).float()
                if not torch.allclose(eager, script, rtol=1e-4, atol=1e-4):
                    raise ValueError(f"max |difference| {float((eager - script).abs().max()):.2g} at lengths {lengths}")
    except Exception as exc:  # a module TorchScript cannot trace, or a trace that does not generalise
        why = (str(exc).strip().splitlines() or [""])[0][:200]
        log.warning("TorchScript inference unavailable (%s: %s); running the module eagerly", type(exc).__name__, why)
        return None
    return lambda batch: frozen(*(batch[k] for k in names))


def graph_forward(
    forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    names: tuple[str, ...],
    width: int,
    pad_id: int,
    device: str,
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor] | None:
    """``forward`` for one input of ``width`` tokens (inputs ``names``) captured as a CUDA graph and replayed: each
    call copies its batch into the graph's static inputs, replays every kernel with one launch and returns a copy
    of the output. None, with the reason logged, when capture fails or the replay's logits differ from
    ``forward``'s on an input the graph was not captured on.

    Why: at batch 1 the module is launch-bound on a GPU (measured on an H200, raw MiniLM-L6 forward at 32 tokens:
    4.9 ms eager, 0.58 ms replayed as a CUDA graph). Graphs are captured for batch 1 only, one per bucket width
    (:func:`models.batching.pad_multiple`), each in a memory pool of its own: a batch-1 forward's few MB, and no
    graph's replay can overwrite memory another graph's output lives in, whatever the order of replays."""
    try:
        static = {k: v.to(device) for k, v in _batch(names, [width], pad_id).items()}  # the graph's inputs
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # allocator and kernel set-up happen before capture, on a side stream
            for _ in range(3):
                forward(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = forward(static)

        def replay(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            for k in names:
                static[k].copy_(batch[k], non_blocking=True)
            graph.replay()
            return output.clone()

        check = {k: v.to(device) for k, v in _batch(names, [max(1, width - 3)], pad_id).items()}
        check = {
            k: torch.nn.functional.pad(v, (0, width - v.shape[1]), value=pad_id if k == "input_ids" else 0)
            for k, v in check.items()
        }
        eager, graphed = forward(check).float(), replay(check).float()
        tolerance = 1e-4 if output.dtype == torch.float32 else 2e-2
        if not torch.allclose(eager, graphed, rtol=tolerance, atol=tolerance):
            raise ValueError(f"max |difference| {float((eager - graphed).abs().max()):.2g} at width {width}")
    except Exception as exc:  # a forward that cannot be captured (host syncs, dynamic shapes) or replays wrongly
        why = (str(exc).strip().splitlines() or [""])[0][:200]
        log.warning(
            "CUDA graph unavailable at width %d (%s: %s); running the module eagerly", width, type(exc).__name__, why
        )
        return None
    return replay


class TorchClassifier(Rung):
    """A rung whose model is a torch module over token ids: subclasses provide encoding and a forward pass.

    Inference tokenises once, sorts inputs by length and pads per batch. The same pieces
    (``encode_inputs``, ``batches``, ``forward``) let wrappers such as MC-Dropout run the module.
    """

    has_logits = True
    device: str = "cpu"
    eval_batch_size: int = 64
    #: ``"script"``: inference through a TorchScript trace of :meth:`forward` on a CPU (built once per set of input
    #: names) and through CUDA graphs for single inputs on a GPU (one per bucket width), each checked against the
    #: module; ``"eager"``: the module itself
    inference: str = "script"
    module_: torch.nn.Module
    pad_id: int = 0

    @abstractmethod
    def encode_inputs(self, inputs: Sequence[Input]) -> Encoded:
        """Token ids for ``inputs`` (truncated to the rung's maximum length)."""

    @abstractmethod
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``[B, C]`` for one collated batch (the module's train/eval mode is the caller's)."""

    def batches(self, enc: Encoded, stats: PaddingStats | None = None):
        """Length-sorted inference batches of :meth:`inference_rows`, each padded to its bucket
        (:func:`models.batching.pad_multiple`): ``(indices, inputs)``."""
        return iterate(enc, self.inference_rows(), self.pad_id, self.device, stats, *self._buckets())

    def inference_rows(self) -> int:
        """Inputs per inference batch: ``eval_batch_size``, and on a GPU at least :data:`GPU_BATCH_ROWS`."""
        gpu = self.device.startswith("cuda")
        return max(self.eval_batch_size, GPU_BATCH_ROWS) if gpu else self.eval_batch_size

    def _buckets(self) -> tuple[int, int]:
        return pad_multiple(self.device), self.token_range()[1]

    def warm_up(self) -> None:
        """Where inputs are padded to buckets (a GPU), run the inference path once on every bucket width at batch 1
        and at the inference batch, so no timed call pays for a shape seen first."""
        multiple, cap = self._buckets()
        if multiple == 1:
            return
        typed = self.encode_inputs(["a"]).type_ids is not None
        for enc in warm_up_encodings(self.inference_rows(), multiple, cap, typed, self.token_range()[0]):
            self.logits_of(enc)

    def predict_logits(self, inputs: Sequence[Input]) -> np.ndarray:
        return self.logits_of(self.encode_inputs(inputs))

    def prepare(self, inputs: Sequence[Input]) -> Encoded:
        return self.encode_inputs(inputs)

    def predict_prepared(self, prepared: Encoded) -> np.ndarray:
        return probabilities(self.logits_of(prepared), self.spec.multilabel)

    def logits_of(self, enc: Encoded, scripted: bool = True) -> np.ndarray:
        """Logits ``[N, C]`` of already encoded inputs (the module is put in eval mode); ``scripted=False`` runs
        the module itself (while fitting: a script holds the weights it was frozen with)."""
        out = np.empty((len(enc.ids), self.spec.n_classes), dtype=np.float32)
        self.module_.eval()
        done = []
        with torch.inference_mode():
            for idx, batch in self.batches(enc):
                forward = self._fast(batch) if scripted else self.forward
                done.append((idx, forward(batch)))
            # copied back once every batch is queued: on a GPU the host prepares the next batch while the device
            # computes the last, instead of waiting for each batch's logits
            for idx, logits in done:
                out[idx] = logits.float().cpu().numpy()
        return out

    def _fast(self, batch: dict[str, torch.Tensor]) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        """The forward ``inference`` asks for on this batch: with ``"script"``, a TorchScript trace on a CPU
        (:meth:`_scripted`) and, on a GPU, a CUDA graph for a single input (:func:`graph_forward`); else, or where
        those are unavailable, the module itself."""
        if self.inference != "script":
            return self.forward
        if self.device == "cpu":
            return self._scripted(tuple(batch))
        names, (rows, width) = tuple(batch), batch["input_ids"].shape
        if rows != 1 or not self.device.startswith("cuda"):
            return self.forward
        return self._built((names, width), lambda: graph_forward(self.forward, names, width, self.pad_id, self.device))

    def _built(
        self, key: tuple[Any, ...], build: Callable[[], Callable[[dict[str, torch.Tensor]], torch.Tensor] | None]
    ) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        """The compiled forward ``build`` makes, once per ``key`` and module (dropped by :meth:`reset_inference`);
        the module itself where ``build`` gives None."""
        scripts = self.__dict__.setdefault("scripts_", {})
        key = (*key, id(self.module_))
        if key not in scripts:
            scripts[key] = build() or self.forward
        return scripts[key]

    def _scripted(self, names: tuple[str, ...]) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        """:meth:`forward` frozen as TorchScript for batches with input ``names`` (a CPU's ``"script"`` path), or
        the module itself if the script disagrees with it.

        Why: at batch 1 the eager module spends much of its time in Python between small kernels. Measured on
        sst2 (2 cores, 300 single-input calls, medians, interleaved): fine-tuned MiniLM 10.8-12.2 ms eager, 7.8-8.0
        ms frozen, the same probabilities; char_cnn 0.68-0.70 -> 0.60-0.62 ms. ``optimize_for_inference`` on top
        reached 6.9-7.3 ms but kept a second copy of the weights (+108 MB resident against +22 MB): not used.
        The trace is taken on a padded batch of two lengths and checked on two other shapes, so a branch the
        trace baked in (e.g. "no padding") cannot pass unnoticed."""
        return self._built((names,), lambda: script_forward(self.module_, self.forward, names, self.pad_id))

    def reset_inference(self) -> None:
        """Check ``inference`` and drop the frozen scripts, which hold the weights they were frozen with (a fit
        calls it first)."""
        if self.inference not in INFERENCE:
            raise ValueError(f"inference must be one of {', '.join(INFERENCE)}, got {self.inference!r}")
        self.scripts_: dict[tuple[Any, ...], Any] = {}

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        return probabilities(self.predict_logits(inputs), self.spec.multilabel)

    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.module_.parameters()))

    def efficiency_report(self, inputs: Sequence[Input]) -> dict[str, Any]:
        """Padding efficiency (real / computed tokens) of inference on ``inputs`` and how many were truncated."""
        return padding_report(self.encode_inputs(inputs), self.inference_rows(), self.pad_id, *self._buckets())

    @property
    def compute_dtype(self) -> str:  # type: ignore[override]
        """The weights' precision, or the autocast one on CUDA (``precision`` bf16/fp16)."""
        weights = str(next(self.module_.parameters()).dtype).removeprefix("torch.")
        if weights != "float32" or not self.device.startswith("cuda"):
            return weights
        return {"bf16": "bfloat16", "fp16": "float16"}.get(getattr(self, "precision", "fp32"), "float32")

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
