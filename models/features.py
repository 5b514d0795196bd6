"""Frozen transformer features + logistic regression, with embeddings cached on disk."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from baselines.linear import class_logits, class_probabilities, fit_logistic_regression, num_coefficients
from bench.cache import cached_array, inputs_digest
from bench.data import Input, Split
from bench.data.splits import subsample
from bench.rungs.protocol import Rung, load_trusted
from models.batching import Encoded, encode, iterate, pad_multiple, padding_report, warm_up_encodings
from models.flops import fit_flop_model
from models.hf import DEFAULT_MODEL, load_encoder, load_tokenizer, trained_pooling
from models.torch_base import read_meta, write_meta

MIN_CACHED = 256  # smaller calls (latency probes) are not worth a file
HEAD_FILE = "head.skops"


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Mean over real tokens, the first ([CLS]) token, or max over real tokens."""
    if how == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if how == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def combine_embeddings(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Symmetric features of two texts' embeddings: ``|u - v|``, ``u * v`` and their cosine."""
    cos = (u * v).sum(1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-12)
    return np.hstack([np.abs(u - v), u * v, cos[:, None]]).astype(np.float32)


class FeaturesLR(Rung):
    """A frozen pretrained encoder's pooled embeddings (standardised) fed to logistic regression, C chosen
    on validation. ``pooling="auto"`` uses the pooling the model was trained with (mean for
    all-MiniLM-L6-v2), else [CLS]. Sentence pairs: ``pair_features="joint"`` embeds the pair through the
    tokenizer's pair encoding; ``"separate"`` embeds each text and uses :func:`combine_embeddings`.
    Embeddings of whole splits are cached on disk, keyed by (model, inputs digest, pooling, max length)."""

    has_logits = True

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        pooling: str = "auto",
        max_length: int = 128,
        batch_size: int = 64,
        c_grid: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
        max_train: int | None = None,
        use_cache: bool = True,
        trust_remote_code: bool = False,
        pair_features: str = "joint",
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.model = model
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.c_grid = tuple(c_grid)
        self.max_train = max_train
        self.use_cache = use_cache
        self.trust_remote_code = trust_remote_code
        self.pair_features = pair_features
        self.seed = seed
        self.device = device

    def _encode(self, inputs: Sequence[Input]) -> Encoded:
        return encode(self.tokenizer_, inputs, self.max_length)

    def _embed_uncached(self, inputs: Sequence[Input]) -> np.ndarray:
        return self._embed_encoded(self._encode(inputs))

    def _embed_encoded(self, enc: Encoded) -> np.ndarray:
        out = np.empty((len(enc.ids), self.encoder_.config.hidden_size), dtype=np.float32)
        pad = int(self.tokenizer_.pad_token_id or 0)
        buckets = pad_multiple(self.device), self.max_length
        with torch.inference_mode():
            for idx, batch in iterate(enc, self.batch_size, pad, self.device, None, *buckets):
                hidden = self.encoder_(**batch).last_hidden_state
                out[idx] = pool(hidden, batch["attention_mask"], self.pooling_).float().cpu().numpy()
        return out

    def embed(self, inputs: Sequence[Input]) -> np.ndarray:
        """Pooled embeddings ``[N, H]``; for large inputs cached on disk by (model, pooling, max length, inputs)."""
        if not self.use_cache or len(inputs) < MIN_CACHED:
            return self._embed_uncached(inputs)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.model).strip("_")[-80:]
        key = f"{slug}-{self.pooling_}-{self.max_length}-{inputs_digest(inputs)}"
        vectors, hit = cached_array("embeddings", key, lambda: self._embed_uncached(inputs))
        self.cache_hits_ += hit
        return vectors

    def vectors(self, inputs: Sequence[Input]) -> np.ndarray:
        """The classifier's input: embeddings, or combined per-text embeddings of pairs (``separate``)."""
        if not (self.spec.pair and self.pair_features == "separate"):
            return self.embed(inputs)
        return combine_embeddings(self.embed([x[0] for x in inputs]), self.embed([x[1] for x in inputs]))

    def forward_flops(self, inputs: Sequence[Input]) -> float | None:
        """The encoder's operations on the inputs' real tokens (pooling and the linear model are not counted:
        under 0.1 % of them)."""
        if getattr(self, "flop_model_", None) is None:

            def forward(n: int) -> None:
                ids = torch.ones((1, n), dtype=torch.long, device=self.device)
                self.encoder_(input_ids=ids, attention_mask=torch.ones_like(ids))

            self.flop_model_ = fit_flop_model(forward, self.max_length)
        if self.spec.pair and self.pair_features == "separate":
            texts = [x[0] for x in inputs] + [x[1] for x in inputs]  # type: ignore[index]
            return self.flop_model_.total(self._encode(texts).lengths)
        return self.flop_model_.total(self._encode(inputs).lengths)

    def _load_encoder(self) -> None:
        self.tokenizer_ = load_tokenizer(self.model, self.trust_remote_code)
        self.encoder_ = load_encoder(self.model, self.trust_remote_code).to(self.device).eval()

    def fit(self, train: Split, validation: Split) -> Self:
        from sklearn.preprocessing import StandardScaler

        if self.pair_features not in ("joint", "separate"):
            raise ValueError(f"pair_features must be 'joint' or 'separate', not {self.pair_features!r}")
        self.spec = train.spec
        self.pooling_ = trained_pooling(self.model) if self.pooling == "auto" else self.pooling
        if self.pooling_ not in ("mean", "cls", "max"):
            raise ValueError(f"pooling must be auto, mean, cls or max, not {self.pooling!r}")
        self.cache_hits_ = 0
        self._load_encoder()
        train = subsample(train, self.max_train, self.seed)
        x_train, x_val = self.vectors(train.inputs), self.vectors(validation.inputs)
        self.scaler_ = StandardScaler().fit(x_train)
        self.clf_, self.c_, self.grid_ = fit_logistic_regression(
            self.spec,
            self.scaler_.transform(x_train),
            train.y,
            self.scaler_.transform(x_val),
            validation.y,
            self.c_grid,
            seed=self.seed,
            desc="features_lr: C grid",
        )
        self.train_examples_ = len(train)
        return self

    def _features(self, inputs: Sequence[Input]) -> np.ndarray:
        return self.scaler_.transform(self.vectors(inputs))

    def predict_logits(self, inputs: Sequence[Input]) -> np.ndarray:
        return class_logits(self.spec, self.clf_, self._features(inputs))

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        return class_probabilities(self.spec, self.clf_, self._features(inputs))

    def num_parameters(self) -> int:
        return num_coefficients(self.spec, self.clf_) + int(sum(p.numel() for p in self.encoder_.parameters()))

    def efficiency_report(self, inputs: Sequence[Input]) -> dict[str, Any]:
        return padding_report(self._encode(inputs), self.batch_size, 0, pad_multiple(self.device), self.max_length)

    def warm_up(self) -> None:
        """On a GPU, the encoder once on every bucket width at batch 1 and at the inference batch."""
        multiple = pad_multiple(self.device)
        if multiple == 1:
            return
        typed = self._encode(["a"]).type_ids is not None
        for enc in warm_up_encodings(self.batch_size, multiple, self.max_length, typed):
            self._embed_encoded(enc)

    def fit_info(self) -> dict[str, Any]:
        info = {
            "model": self.model,
            "pooling": self.pooling_,
            "C": self.c_,
            "grid": self.grid_,
            "train_examples": self.train_examples_,
            "embedding_cache_hits": self.cache_hits_,
        }
        return {**info, "pair_features": self.pair_features} if self.spec.pair else info

    def save(self, folder: Path) -> None:
        """The encoder (safetensors) and the standardiser + logistic regression (skops: loading runs no code)."""
        import skops.io as sio

        folder.mkdir(parents=True, exist_ok=True)
        self.encoder_.save_pretrained(folder / "encoder", safe_serialization=True)
        self.tokenizer_.save_pretrained(folder / "encoder")
        sio.dump({"scaler": self.scaler_, "clf": self.clf_}, folder / HEAD_FILE)
        params = self.get_params()
        write_meta(
            folder,
            self.spec,
            params=params,
            pooling=self.pooling_,
            C=self.c_,
            grid=self.grid_,
            train_examples=self.train_examples_,
        )

    @classmethod
    def load(cls, folder: Path) -> Self:
        meta = read_meta(folder)
        params = {**meta["params"], "model": str(folder / "encoder")}
        rung = cls(**params)
        rung.spec, rung.pooling_, rung.c_, rung.grid_ = meta["spec"], meta["pooling"], meta["C"], meta["grid"]
        rung.train_examples_, rung.cache_hits_ = meta["train_examples"], 0
        rung._load_encoder()
        head = load_trusted(folder / HEAD_FILE, ())  # scikit-learn and numpy types only
        rung.scaler_, rung.clf_ = head["scaler"], head["clf"]
        return rung
