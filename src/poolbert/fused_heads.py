"""The heads of a pack's members, batched: every member's pooler, dropout and classifier, and
each member's loss, in a number of operations that does not grow with the members.

Each member's row of the pack's buffer (poolbert.fusion.FlatParams) holds the weights of every
head kind: the `cls` dense layer, the attention score vector, the layer mix, and a classifier
over 2H inputs (mean_max's width). A member uses those of its own head; the rest stay zero (no
gradient reaches them, so AdamW leaves them zero), and a narrower head's pooled vector is
padded with zeros to 2H, so one batched classifier serves every member. Members with the same
head are pooled together: one group per head kind in the pack, not one per member. The
parameters' names are those of PoolbertForSequenceClassification's state dict, so a member's
row turns back into its model's head weights (`member_state`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .fusion import FusedLinear
from .pooling import POOLERS, masked_max, masked_mean


class FusedMix(nn.Module):
    """weighted_layers' own weights, one per member: layer logits (K, L) and scale (K,)."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(1, num_layers))
        self.gamma = nn.Parameter(torch.zeros(1))


Pool = Callable[["FusedHeads", torch.Tensor, "torch.Tensor | None", torch.Tensor,
                 "torch.Tensor | None"], torch.Tensor]


def _cls(h: FusedHeads, hidden: torch.Tensor, layers: torch.Tensor | None, mask: torch.Tensor,
         idx: torch.Tensor | None) -> torch.Tensor:
    assert h.dense.bias is not None  # made with one
    weight, bias = h.take(h.dense.weight, idx), h.take(h.dense.bias, idx)  # (G, H, H), (G, H)
    first = hidden[:, :, 0]  # (G, B, H)
    return torch.tanh(torch.baddbmm(bias.unsqueeze(1), first, weight.transpose(1, 2)))


def _attention(h: FusedHeads, hidden: torch.Tensor, layers: torch.Tensor | None,
               mask: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    g, b, t, width = hidden.shape
    score = h.take(h.score.weight, idx)  # (G, 1, H)
    scores = torch.bmm(hidden.reshape(g, b * t, width), score.transpose(1, 2)).view(g, b, t)
    scores = scores.float().masked_fill(mask == 0, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # an all-padding row: zeros
    return torch.einsum("gbt,gbth->gbh", weights.to(hidden.dtype), hidden)


def _weighted_layers(h: FusedHeads, hidden: torch.Tensor, layers: torch.Tensor | None,
                     mask: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    assert layers is not None  # FusedHeads asks the encoder for every layer's states
    mix = torch.softmax(h.take(h.mix.layer_logits, idx), dim=-1).to(layers.dtype)  # (G, L)
    gamma = h.take(h.mix.gamma, idx)  # (G,)
    mixed = gamma[:, None, None, None] * torch.einsum("gl,gblth->gbth", mix, layers)
    return _rows(masked_mean, mixed, mask)


def _rows(pool: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], hidden: torch.Tensor,
          mask: torch.Tensor) -> torch.Tensor:
    """A weightless pooler of pooling.py on (G, B, T, H) blocks."""
    g, b = hidden.shape[:2]
    return pool(hidden.flatten(0, 1), mask.flatten(0, 1)).view(g, b, -1)


POOLS: dict[str, Pool] = {
    "cls": _cls,
    "cls_raw": lambda h, hidden, layers, mask, idx: hidden[:, :, 0],
    "mean": lambda h, hidden, layers, mask, idx: _rows(masked_mean, hidden, mask),
    "max": lambda h, hidden, layers, mask, idx: _rows(masked_max, hidden, mask),
    "mean_max": lambda h, hidden, layers, mask, idx: torch.cat(
        [_rows(masked_mean, hidden, mask), _rows(masked_max, hidden, mask)], dim=-1),
    "attention": _attention,
    "weighted_layers": _weighted_layers,
}
assert set(POOLS) == set(POOLERS), "every head of pooling.py is batched here"


class FusedHeads(nn.Module):
    """Every member's head: `forward(hidden, layers, mask) -> (K, B, C)` logits."""

    def __init__(self, hidden_size: int, num_layers: int, num_labels: int) -> None:
        super().__init__()
        self.hidden_size, self.width = hidden_size, 2 * hidden_size
        self.dense = FusedLinear(torch.zeros(1, hidden_size, hidden_size),
                                 torch.zeros(1, hidden_size))
        self.score = FusedLinear(torch.zeros(1, 1, hidden_size), None)
        self.mix = FusedMix(num_layers)
        self.classifier = FusedLinear(torch.zeros(1, num_labels, self.width),
                                      torch.zeros(1, num_labels))
        self.groups: list[tuple[str, torch.Tensor | None]] = []  # (kind, its members' indices)
        self.keep: torch.Tensor | None = None  # (K, 1, 1) 1 - dropout; None: no dropout
        self.uses_all_layers = False

    def fused_modules(self) -> tuple[tuple[str, nn.Module], ...]:
        """The modules whose (K, ...) weights join the pack's buffer, under the model's names."""
        return (("pooler.dense", self.dense), ("pooler.score", self.score), ("pooler", self.mix),
                ("classifier", self.classifier))

    def set_members(self, kinds: list[str], dropouts: list[float], device: torch.device) -> None:
        """The members' heads and classifier dropouts, in row order (when members change)."""
        self.groups = []
        for kind in dict.fromkeys(kinds):
            rows = [k for k, other in enumerate(kinds) if other == kind]
            every = rows == list(range(len(kinds)))  # one kind for all: no gather
            self.groups.append((kind, None if every else torch.tensor(rows, device=device)))
        self.uses_all_layers = any(POOLERS[kind].uses_all_layers for kind in kinds)
        self.keep = None if not any(dropouts) else \
            torch.tensor([1.0 - p for p in dropouts], device=device)[:, None, None]

    @staticmethod
    def take(weights: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        """A group's members' weights (all members: as they are)."""
        return weights if idx is None else weights.index_select(0, idx)

    def forward(self, hidden: torch.Tensor, layers: torch.Tensor | None,
                mask: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, C) from the last layer's states (K*B, T, H), every layer's (K*B, L,
        T, H) where a member's head mixes layers, and the mask (K*B, T)."""
        k = len(self.classifier.weight)
        blocks = hidden.unflatten(0, (k, -1))  # (K, B, T, H)
        masks = mask.unflatten(0, (k, -1))
        every = layers.unflatten(0, (k, -1)) if layers is not None else None
        pooled: torch.Tensor | None = None
        for kind, idx in self.groups:
            found = POOLS[kind](self, self.take(blocks, idx), None if every is None else
                                self.take(every, idx), self.take(masks, idx), idx)
            # (G, B, 2H) in float32: under autocast heads differ in output dtype (the classifier
            # casts its input again, as the unfused one does)
            found = F.pad(found.float(), (0, self.width - found.shape[-1]))
            if idx is None:
                pooled = found
            else:
                base = pooled if pooled is not None else found.new_zeros(k, *found.shape[1:])
                pooled = base.index_copy(0, idx, found)
        assert pooled is not None  # a pack has members
        if self.keep is not None and self.training:  # each member's classifier dropout
            pooled = pooled * (torch.rand_like(pooled) < self.keep) / self.keep
        return self.classifier(pooled)  # (K, B, C)


def member_state(state: dict[str, torch.Tensor],
                 like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A member's weights from its row (`FlatParams.state_of`), as a model whose state dict is
    `like` names and shapes them: only its own head's weights, the classifier's first D
    inputs."""
    return {key: value[_leading(like[key].shape)] for key, value in state.items() if key in like}


def place_head(columns: dict[str, torch.Tensor], head: dict[str, torch.Tensor]) -> None:
    """A model's head weights (`pooler.*`, `classifier.*`) into a member's row, seen through
    `FlatParams.state_of` (the classifier's first D inputs; the rest stays zero)."""
    for key, value in head.items():
        columns[key][_leading(value.shape)].copy_(value)


def _leading(shape: torch.Size) -> tuple[slice, ...]:
    """The index of a smaller tensor's place at the start of each dimension."""
    return tuple(slice(0, n) for n in shape)


def member_losses(logits: torch.Tensor, labels: torch.Tensor, problem_type: str,
                  weights: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """(K,) each member's `model.task_loss` over its rows of `logits` (K, B, C), in one pass:
    `labels` (K*B, ...) as the batch holds them; `weights` (K, C) each member's class weights
    (single-label) or positive-label weights (multi-label), ones for a member without."""
    k, b = logits.shape[:2]
    logits, labels = logits.float(), labels.unflatten(0, (k, b))
    if problem_type == "regression":
        targets = labels.float()
        each = (logits.squeeze(-1) - torch.nan_to_num(targets)) ** 2 * ~torch.isnan(targets)
    elif problem_type == "multi_label":
        targets = labels.float()
        each = F.binary_cross_entropy_with_logits(
            logits, targets.clamp(min=0), reduction="none",
            pos_weight=None if weights is None else weights[:, None, :]) * (targets >= 0)
    else:  # cross-entropy; its mean is over the labelled rows' class weights, as torch's
        each = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-1,
                               reduction="none").view(k, b)
        share = (labels >= 0).to(each.dtype)
        if weights is not None:
            share = share * weights.gather(1, labels.clamp(min=0))
            each = each * share
        if reduction == "mean":
            return each.sum(1) / share.sum(1)
    each = each.flatten(1)
    return each.sum(1) if reduction == "sum" else each.mean(1)
