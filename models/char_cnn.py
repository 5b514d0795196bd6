"""Character CNN (Zhang et al. 2015 style, small): embeddings → parallel 1-D convolutions → max-pool → linear."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from bench.data import Input, Split
from bench.data.splits import subsample
from models.batching import Encoded, collate, length_grouped_batches
from models.torch_base import TorchClassifier, read_meta, seed_torch, write_meta
from models.training import Trainer, plan, validation_outputs, warmup_linear

PAD, UNK, SEP = 0, 1, 2
WEIGHTS_FILE = "char_cnn.safetensors"


class CharCNNModule(nn.Module):
    """Character embeddings, one convolution per width (n-gram detectors), global max-pool, dropout, linear."""

    def __init__(
        self, vocab: int, n_out: int, embed_dim: int, widths: Sequence[int], filters: int, dropout: float
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_dim, padding_idx=PAD)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, w) for w in widths)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(filters * len(widths), n_out)
        self.min_width = max(widths)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        if input_ids.shape[1] < self.min_width:
            input_ids = nn.functional.pad(input_ids, (0, self.min_width - input_ids.shape[1]), value=PAD)
        x = self.embed(input_ids).transpose(1, 2)  # [B, E, L]
        pooled = [torch.relu(conv(x)).amax(dim=2) for conv in self.convs]
        return self.head(self.dropout(torch.cat(pooled, dim=1)))


class CharCNN(TorchClassifier):
    """A character-level CNN trained from scratch with AdamW; optional inverse-frequency class weights; pairs are
    joined by a separator id. The step budget, warm-up/decay and early stopping (on validation loss, every
    ``eval_every`` steps, best weights restored) are :mod:`models.training`'s, as for the fine-tuned rung."""

    def __init__(
        self,
        max_chars: int = 256,
        embed_dim: int = 48,
        widths: Sequence[int] = (2, 3, 4, 5),
        filters: int = 96,
        dropout: float = 0.3,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 64,
        min_epochs: float = 3.0,
        max_epochs: float = 30.0,
        steps_per_class: int = 100,
        min_steps: int = 1500,
        max_steps: int | None = None,
        warmup_ratio: float = 0.02,
        monitor: str = "loss",
        eval_every: int | None = None,
        patience: int = 3,
        min_delta: float = 0.002,
        class_weights: bool = False,
        lowercase: bool = True,
        max_train: int | None = None,
        eval_batch_size: int = 256,
        seed: int = 0,
        device: str = "cpu",
        inference: str = "script",
    ) -> None:
        self.max_chars = max_chars
        self.embed_dim = embed_dim
        self.widths = tuple(widths)
        self.filters = filters
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.min_epochs = min_epochs
        self.max_epochs = max_epochs
        self.steps_per_class = steps_per_class
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.warmup_ratio = warmup_ratio
        self.monitor = monitor
        self.eval_every = eval_every
        self.patience = patience
        self.min_delta = min_delta
        self.class_weights = class_weights
        self.lowercase = lowercase
        self.max_train = max_train
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.device = device
        self.inference = inference

    def _norm(self, text: str) -> str:
        return text.lower() if self.lowercase else text

    def encode_inputs(self, inputs: Sequence[Input]) -> Encoded:
        index, ids, truncated = self.vocab_, [], 0
        for x in inputs:
            if isinstance(x, str):
                row = [index.get(ch, UNK) for ch in self._norm(x)]
            else:
                row = (
                    [index.get(ch, UNK) for ch in self._norm(x[0])]
                    + [SEP]
                    + [index.get(ch, UNK) for ch in self._norm(x[1])]
                )
            truncated += len(row) > self.max_chars
            ids.append(row[: self.max_chars] or [UNK])
        return Encoded(ids, None, truncated)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module_(**batch)

    def token_range(self) -> tuple[int, int]:
        return int(self.module_.min_width), int(self.max_chars)

    def _loss_fn(self, train: Split) -> nn.Module:
        counts = torch.as_tensor(train.class_counts(), dtype=torch.float32).clamp(min=1)
        if self.spec.multilabel:
            pos_weight = ((len(train) - counts) / counts).to(self.device) if self.class_weights else None
            return nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        weight = (counts.sum() / (len(counts) * counts)).to(self.device) if self.class_weights else None
        return nn.CrossEntropyLoss(weight=weight)

    def _target(self, y: np.ndarray) -> torch.Tensor:
        t = torch.as_tensor(y)
        return (t.float() if self.spec.multilabel else t).to(self.device)

    def fit(self, train: Split, validation: Split) -> Self:
        self.spec = train.spec
        self.reset_inference()
        rng = np.random.default_rng(self.seed)
        seed_torch(self.seed)
        train = subsample(train, self.max_train, self.seed)
        counts = Counter(
            ch for x in train.inputs for part in ([x] if isinstance(x, str) else x) for ch in self._norm(part)
        )
        chars = [ch for ch, n in sorted(counts.items()) if n >= 2]  # rarer characters map to UNK
        self.vocab_ = {ch: i + 3 for i, ch in enumerate(chars)}
        self.module_ = CharCNNModule(
            len(self.vocab_) + 3, self.spec.n_classes, self.embed_dim, self.widths, self.filters, self.dropout
        ).to(self.device)
        enc_train, enc_val = self.encode_inputs(train.inputs), self.encode_inputs(validation.inputs)
        loss_fn = self._loss_fn(train)
        opt = torch.optim.AdamW(self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        budget, stopping = plan(self, len(train))
        schedule = warmup_linear(opt, int(self.warmup_ratio * budget.steps), budget.steps)

        def step(idx: np.ndarray) -> float:
            loss = loss_fn(self.forward(collate(enc_train, idx, PAD, self.device)), self._target(train.y[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            return loss.item()

        info = Trainer(self.module_, budget, stopping, "char_cnn: training", schedule).run(
            lambda: length_grouped_batches(enc_train.lengths, self.batch_size, rng),
            step,
            lambda: validation_outputs(self.logits_of(enc_val, scripted=False), validation.y, self.spec.multilabel),
        )
        self.train_info_ = {**info, "train_examples": len(train), "vocab": len(self.vocab_)}
        return self

    def fit_info(self) -> dict[str, Any]:
        return self.train_info_

    def _params(self) -> dict[str, Any]:
        return self.get_params()

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous().cpu() for k, v in self.module_.state_dict().items()}, str(folder / WEIGHTS_FILE))
        write_meta(folder, self.spec, params=self._params(), vocab=self.vocab_, train_info=self.train_info_)

    @classmethod
    def load(cls, folder: Path) -> Self:
        meta = read_meta(folder)
        rung = cls(**meta["params"])
        rung.spec, rung.vocab_, rung.train_info_ = meta["spec"], meta["vocab"], meta["train_info"]
        rung.module_ = CharCNNModule(
            len(rung.vocab_) + 3, rung.spec.n_classes, rung.embed_dim, rung.widths, rung.filters, rung.dropout
        )
        rung.module_.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        rung.module_.to(rung.device).eval()
        return rung
