"""Horizontal fusion: K copies of one encoder run as one module, each on its own rows.

The input batch holds K blocks of B rows (member k's rows are k*B..(k+1)*B-1). Every module
with weights is replaced by a fused one that applies member k's weights to block k in one
launch: a Linear becomes a batched matmul over (K, out, in) weights, a LayerNorm scales each
block with its member's (K, H) weights, an Embedding looks up each member's own table.
Attention, activations, dropout and residual additions have no weights and work on all K*B
rows as they are, so one forward pass does K members' work (HFTA, Wang et al., MLSys 2021).

Every fused parameter is a view into one (K, N) buffer (`FlatParams`): row k holds member k's
whole encoder (and, in a pack, its head: poolbert.fused_heads), so an optimiser can update all
members with a handful of operations over that buffer, with per-member learning rates, and
gradient norms are row norms. Each parameter's gradient is a view into a (K, N) gradient buffer
of the same layout, so backward writes every member's gradients straight into one tensor.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .model import drop_encoder_pooler, encoder_inputs

PROBE_ATOL = 1e-4  # a fused member's states against its encoder's own, float32
# autograd's note when a gradient it adds into is laid out as its parameter (strided rows of
# the buffer) rather than contiguous: here that layout is the point, so backward writes every
# member's gradient into the one (K, N) buffer
warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")


class NotFusable(ValueError):
    """The encoder holds a module with weights that fusion does not know."""


@dataclass
class PackShape:
    """Shared by the fused modules of one pack: rows per member this step."""

    rows: int = 0  # B; set before each forward (position embeddings broadcast over it)


class FusedLinear(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)  # (K, out, in)
        self.bias = nn.Parameter(bias) if bias is not None else None  # (K, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[0]
        lead = x.shape[:-1]
        blocks = x.reshape(k, -1, x.shape[-1])  # (K, B*T, in)
        if self.bias is None:
            out = torch.bmm(blocks, self.weight.transpose(1, 2))
        else:
            out = torch.baddbmm(self.bias.unsqueeze(1), blocks, self.weight.transpose(1, 2))
        return out.reshape(*lead, out.shape[-1])  # (K*B, T, out)


class FusedLayerNorm(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(weight)  # (K, H)
        self.bias = nn.Parameter(bias) if bias is not None else None  # (K, H); ModernBERT: none

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, hidden = self.weight.shape
        normed = F.layer_norm(x, (hidden,), None, None, self.eps).reshape(k, -1, hidden)
        if self.bias is None:
            return (normed * self.weight.unsqueeze(1)).reshape(x.shape)
        out = torch.addcmul(self.bias.unsqueeze(1), normed, self.weight.unsqueeze(1))
        return out.reshape(x.shape)


class FusedEmbedding(nn.Module):
    """Member k's ids index member k's table. An id tensor of one row (BERT's position ids,
    shared by all rows) gives every member's rows their member's vectors. The padding row's
    gradient is zeroed by FlatParams.grads, as nn.Embedding does.

    The (K, V, H) table is a strided view of the flat buffer (its members' rows are N apart),
    which no reshape can make one (K*V, H) table without a copy of it; indexing it by (member,
    id) reads each vector where it lies."""

    def __init__(self, shape: PackShape, weight: torch.Tensor, padding_idx: int | None) -> None:
        super().__init__()
        self.shape, self.padding_idx = shape, padding_idx
        self.weight = nn.Parameter(weight)  # (K, V, H)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[0]
        members = torch.arange(k, device=ids.device).unsqueeze(1)  # (K, 1)
        if ids.shape[0] == 1:  # one row for all: (K, T, H), repeated over each member's rows
            return self.weight[members, ids].repeat_interleave(self.shape.rows, dim=0)
        return self.weight[members.repeat_interleave(ids.shape[0] // k, dim=0), ids]


@dataclass
class Slot:
    """Where a fused parameter lives in the flat buffer: columns offset..offset+size."""

    module: nn.Module
    attr: str  # the parameter's attribute on `module`
    qualified: str  # its name in the unfused encoder's state dict
    shape: tuple[int, ...]  # one member's shape
    offset: int
    decay: bool  # AdamW weight decay applies (not to biases and LayerNorm weights)
    frozen_row: int | None = None  # an embedding's padding row: no gradient

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class FlatParams:
    """The (K, N) buffer that every fused parameter is a view of, its gradient buffer of the
    same layout, and the slots' map. Slots with weight decay come first: columns
    0..decayed-1."""

    data: torch.Tensor  # (K, N)
    slots: list[Slot] = field(default_factory=list)
    grad: torch.Tensor | None = None  # (K, N); each parameter's .grad is a view of it

    @property
    def decayed(self) -> int:
        """The number of leading columns that weight decay applies to."""
        return sum(s.size for s in self.slots if s.decay)

    def bind(self) -> None:
        """Point every fused module's parameter at its columns of `data`, and its gradient at
        the same columns of a zeroed `grad` (backward adds into it in place)."""
        if self.grad is None or self.grad.shape != self.data.shape:
            self.grad = torch.zeros_like(self.data)
        for s in self.slots:
            param = nn.Parameter(self._columns(self.data, s))
            param.grad = self._columns(self.grad, s)
            setattr(s.module, s.attr, param)

    def _columns(self, buffer: torch.Tensor, s: Slot) -> torch.Tensor:
        return buffer[:, s.offset:s.offset + s.size].view(buffer.shape[0], *s.shape)

    def grads(self) -> torch.Tensor:
        """Every member's gradients, (K, N), with the embeddings' padding rows zeroed."""
        assert self.grad is not None  # bind() made it
        for s in self.slots:
            if s.frozen_row is not None:
                width = s.shape[-1]
                start = s.offset + s.frozen_row * width
                self.grad[:, start:start + width].zero_()  # no value from the host
        return self.grad

    def clear_grads(self) -> None:
        if self.grad is not None:
            self.grad.zero_()

    def state_of(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        """One member's (N,) row of weights under the unfused modules' parameter names
        (views)."""
        return {s.qualified: row[s.offset:s.offset + s.size].view(s.shape) for s in self.slots}


class _MemberPositions:
    """DeBERTa's disentangled attention, as its relative-position bias sees it in a pack.

    The encoder reads its relative position table as a tensor (`rel_embeddings.weight`), which
    fused is (K, P, H), one table per member; DeBERTa projects that table with the attention's
    Linears and repeats it over the batch (`.repeat(rows * heads // num_attention_heads)`).
    Standing in for the attention inside transformers' own `disentangled_attention_bias`, this
    projects each member's table with its member's weights and repeats it over that member's
    rows only: `num_attention_heads` reads as all rows x heads, so transformers' repeat is one
    copy, and the rest of its arithmetic runs unchanged on all K*B rows."""

    PROJECTIONS = ("query_proj", "key_proj", "pos_query_proj", "pos_key_proj")

    def __init__(self, attention: nn.Module, rows_times_heads: int) -> None:
        self._attention = attention
        self._heads = int(attention.num_attention_heads)  # type: ignore[arg-type]  # an int
        self.num_attention_heads = rows_times_heads

    def __getattr__(self, name: str):  # what is not overridden here: the attention's own
        if name in self.PROJECTIONS:  # (1, P, K, H) -> each member's projection (K, P, out)
            return lambda table: getattr(self._attention, name)(table[0].transpose(0, 1))
        return getattr(self._attention, name)

    def transpose_for_scores(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        """(K, P, out) -> (K*B*heads, P, out/heads): member k's for each of its rows' heads."""
        k, p, out = x.shape
        member = x.view(k, p, self._heads, out // self._heads).permute(0, 2, 1, 3)
        rows = self.num_attention_heads // (k * self._heads)
        return member.unsqueeze(1).expand(k, rows, *member.shape[1:]).reshape(-1, p,
                                                                              out // self._heads)


def _fuse_relative_positions(attention: nn.Module) -> None:
    """Let a DeBERTa attention take (K, P, H) relative position tables (_MemberPositions)."""
    original = getattr(type(attention), "disentangled_attention_bias")  # noqa: B009  (mypy)

    def bias(query_layer: torch.Tensor, key_layer: torch.Tensor, relative_pos: torch.Tensor,
             rel_embeddings: torch.Tensor, scale_factor: int) -> torch.Tensor:
        members = _MemberPositions(attention, query_layer.shape[0])
        return original(members, query_layer, key_layer, relative_pos,
                        rel_embeddings.transpose(0, 1), scale_factor)  # DeBERTa slices dim 0: P

    setattr(attention, "disentangled_attention_bias", bias)  # noqa: B010  (an instance's own)


def unfusable(encoder: nn.Module) -> str | None:
    """Why `fuse` cannot fuse `encoder` (a module with weights of a kind it does not know), or
    None."""
    for name, module in encoder.named_modules():
        if isinstance(module, nn.Linear | nn.LayerNorm | nn.Embedding):
            continue
        if any(True for _ in module.parameters(recurse=False)):
            return f"{type(module).__name__} ({name}) holds weights of its own"
    return None


def fuse(fused: nn.Module, prefix: str = "",
         extra: tuple[tuple[str, nn.Module], ...] = ()) -> tuple[nn.Module, FlatParams, PackShape]:
    """`fused` (an encoder, the caller's own copy: its modules are replaced in place) made a
    fused encoder for a pack, with one member: its own weights. Members are added and removed
    by replacing `FlatParams.data` (K, N) and calling `bind()`; `flat.state_of(row)` turns a
    row back into the encoder's weights, named `prefix` + their names in the encoder. `extra`:
    fused modules of other weights (a pack's heads) that share the buffer, under their names."""
    reason = unfusable(fused)
    if reason:
        raise NotFusable(reason)
    shape = PackShape()
    replacements: list[tuple[str, nn.Module]] = []
    for name, module in list(fused.named_modules()):
        if isinstance(module, nn.Linear):
            bias = module.bias[None] if module.bias is not None else None
            replacements.append((name, FusedLinear(module.weight[None], bias)))
        elif isinstance(module, nn.LayerNorm) and module.weight is not None:
            bias = module.bias[None] if module.bias is not None else None
            replacements.append((name, FusedLayerNorm(module.weight[None], bias, module.eps)))
        elif isinstance(module, nn.Embedding):
            replacements.append((name, FusedEmbedding(shape, module.weight[None],
                                                      module.padding_idx)))
        elif hasattr(module, "disentangled_attention_bias"):
            _fuse_relative_positions(module)
    for name, new in replacements:
        parent_name, _, attr = name.rpartition(".")
        setattr(fused.get_submodule(parent_name) if parent_name else fused, attr, new)
    named = [(prefix + name, module) for name, module in replacements]
    return fused, _flatten([*named, *extra]), shape


def _flatten(modules: list[tuple[str, nn.Module]]) -> FlatParams:
    """One buffer for the modules' (K, ...) parameters: weight-decayed slots first, so weight
    decay is one operation over the leading columns."""
    found = []
    for name, module in modules:
        for attr, param in module.named_parameters(recurse=False):
            decay = isinstance(module, FusedLinear | FusedEmbedding) and attr == "weight"
            frozen = module.padding_idx if isinstance(module, FusedEmbedding) else None
            found.append((not decay, module, attr, f"{name}.{attr}", param, decay, frozen))
    slots, offset, parts = [], 0, []
    for _, module, attr, qualified, param, decay, frozen in sorted(found, key=lambda f: f[0]):
        slot = Slot(module, attr, qualified, tuple(param.shape[1:]), offset, decay, frozen)
        slots.append(slot)
        parts.append(param.detach().reshape(param.shape[0], -1))
        offset += slot.size
    flat = FlatParams(torch.cat(parts, dim=1).contiguous(), slots)
    flat.bind()
    return flat


def packable(encoder: nn.Module) -> str | None:
    """Why K runs of `encoder` cannot train as one fused pack, or None. Beyond the modules
    fusion knows (`unfusable`), a base member and a perturbed one run a padded batch through
    the fused encoder, in both orders: the base member's states must be the encoder's own, so
    an architecture that fusion breaks (a weight read outside forward, one member's values
    reaching another's rows) is refused before any trial instead of failing in one."""
    reason = unfusable(encoder)
    if reason:
        return reason
    ids, mask = _probe_batch(encoder.config)
    was_training = encoder.training
    try:
        with torch.no_grad():
            expected = encoder.eval()(**encoder_inputs(encoder, ids, mask)).last_hidden_state
            base = copy.deepcopy(encoder)
            drop_encoder_pooler(base)
            fused, flat, shape = fuse(base.eval())
            row = flat.data[0]
            other = row * 1.05 + 0.01  # another member: every weight different
            shape.rows = len(ids)
            gap = 0.0
            for rows, block in (((row, other), 0), ((other, row), 1)):
                flat.data = torch.stack(rows)
                flat.bind()
                out = fused(**encoder_inputs(fused, ids.repeat(2, 1), mask.repeat(2, 1)))
                got = out.last_hidden_state[block * len(ids):(block + 1) * len(ids)]
                gap = max(gap, float((got - expected)[mask.bool()].abs().max()))
    except Exception as exc:  # whatever an unknown architecture raises when fused
        return f"a fused forward fails ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    finally:
        encoder.train(was_training)
    if not gap <= PROBE_ATOL:
        return f"a fused member's hidden states differ from the encoder's by {gap:.1e}"
    return None


def _probe_batch(config: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows of 24 ids, the second half padding, both within the vocabulary."""
    vocab = int(getattr(config, "vocab_size", 2) or 2)
    ids = (torch.arange(48).reshape(2, 24) * 7 + 5) % vocab
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    return ids, mask
