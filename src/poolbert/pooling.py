"""Pooling heads: turn token states into one vector per example.

Every pooler takes `hidden` (B, T, H) (or (B, L, T, H) for poolers with `uses_all_layers`) and an
attention `mask` (B, T) of 1 for real tokens and 0 for padding, and returns (B, output_dim).
Padding never counts: adding padding to a batch leaves every output unchanged.

This file imports only torch: it is copied next to exported models as their remote code.
"""

from __future__ import annotations

import torch
from torch import nn


class Pooler(nn.Module):
    """The interface: `forward(hidden, mask) -> (B, output_dim)` and `get_config()` for JSON."""

    uses_all_layers = False  # True: receives every layer's states stacked as (B, L, T, H)

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size

    @property
    def output_dim(self) -> int:
        return self.hidden_size

    def get_config(self) -> dict:
        """Keyword arguments that rebuild this pooler: `type(p)(**p.get_config())`."""
        return {"hidden_size": self.hidden_size}


def _float_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(like.dtype).unsqueeze(-1)  # (B, T, 1)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = _float_mask(mask, hidden)
    total = (hidden * weights).sum(dim=1)  # (B, H)
    count = weights.sum(dim=1).clamp(min=1.0)  # (B, 1); an all-padding row gives zeros, not NaN
    return total / count


def masked_max(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    fill = torch.finfo(hidden.dtype).min
    masked = hidden.masked_fill(mask.unsqueeze(-1) == 0, fill)  # (B, T, H)
    return masked.max(dim=1).values  # (B, H)


class ClsPooler(Pooler):
    """Dense + tanh on the first token's state ([CLS], RoBERTa's <s>), as BERT's pooler and
    BertForSequenceClassification.

    The dense layer starts from the checkpoint's pooler where the checkpoint has one (BERT,
    ALBERT: trained by their sentence-level pre-training tasks). Where it has none (ELECTRA,
    DistilBERT, DeBERTa, ModernBERT, and RoBERTa / XLM-R releases, which ship no pooler weights)
    the layer is newly initialised, as transformers' own heads for those architectures are
    (ElectraClassificationHead, DeBERTa's ContextPooler). model.build_model copies it and
    records which in the config's `cls_pooler`.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__(hidden_size)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden[:, 0]))  # (B, H)


class ClsRawPooler(Pooler):
    """The [CLS] state as it comes out of the last layer, no extra layer."""

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return hidden[:, 0]  # (B, H)


class MeanPooler(Pooler):
    """Average of the real tokens' states (the report's eq. 1, padding excluded)."""

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(hidden, mask)


class MaxPooler(Pooler):
    """Per-feature maximum over the real tokens (the report's eq. 2)."""

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_max(hidden, mask)


class MeanMaxPooler(Pooler):
    """Mean and max concatenated: global context and salient features, 2H wide."""

    @property
    def output_dim(self) -> int:
        return 2 * self.hidden_size

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat([masked_mean(hidden, mask), masked_max(hidden, mask)], dim=-1)  # (B, 2H)


class AttentionPooler(Pooler):
    """s_i = w^T x_i, softmax over the real tokens, weighted sum (the report's eqs. 3-4)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__(hidden_size)
        self.score = nn.Linear(hidden_size, 1, bias=False)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(hidden).squeeze(-1)  # (B, T)
        scores = scores.float().masked_fill(mask == 0, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # all-padding row: zeros
        return torch.einsum("bt,bth->bh", weights.to(hidden.dtype), hidden)  # (B, H)


class WeightedLayersPooler(Pooler):
    """Learned softmax mix of every layer's states (ELMo-style scalar mix), then mean pooling.

    Lower layers carry more lexical overlap, which helps entailment-style pair tasks.
    """

    uses_all_layers = True

    def __init__(self, hidden_size: int, num_layers: int = 13) -> None:
        super().__init__(hidden_size)
        self.num_layers = num_layers
        self.layer_logits = nn.Parameter(torch.zeros(num_layers))
        self.gamma = nn.Parameter(torch.ones(()))

    def get_config(self) -> dict:
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers}

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.layer_logits, dim=0).to(hidden.dtype)  # (L,)
        mixed = self.gamma * torch.einsum("l,blth->bth", weights, hidden)  # (B, T, H)
        return masked_mean(mixed, mask)


POOLERS: dict[str, type[Pooler]] = {
    "cls": ClsPooler,
    "cls_raw": ClsRawPooler,
    "mean": MeanPooler,
    "max": MaxPooler,
    "mean_max": MeanMaxPooler,
    "attention": AttentionPooler,
    "weighted_layers": WeightedLayersPooler,
}

DESCRIPTIONS: dict[str, str] = {
    "cls": "dense + tanh on the first token ([CLS] / <s>), from the checkpoint's pooler where it "
           "has one",
    "cls_raw": "the last layer's [CLS] state, no pooler layer",
    "mean": "mean of the real tokens' states",
    "max": "per-feature max over the real tokens",
    "mean_max": "mean and max concatenated (2H), the report's alternative 1",
    "attention": "softmax(w^T x_i) over real tokens, weighted sum: the report's alternative 2",
    "weighted_layers": "learned softmax mix of all layers, then mean pooling",
}


def check_pooling(name: str) -> None:
    """An unknown head name fails with the list of heads (a ValueError: this file imports
    nothing of poolbert's, as it travels next to exported models)."""
    if name not in POOLERS:
        raise ValueError(f"unknown pooling {name!r}; choose one of: {', '.join(POOLERS)}")


def make_pooler(name: str, hidden_size: int, num_layers: int | None = None) -> Pooler:
    """Build a pooler by registry name; `num_layers` counts the embedding output as a layer."""
    check_pooling(name)
    cls = POOLERS[name]
    if issubclass(cls, WeightedLayersPooler):
        return cls(hidden_size, num_layers=num_layers or 13)
    return cls(hidden_size)
