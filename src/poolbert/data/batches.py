"""Batches: which examples go together, padded to which width, copied to the device."""

from __future__ import annotations

import numpy as np
import torch

from .tokens import Encoded

MEGABATCH_FACTOR = 50  # as transformers' LengthGroupedSampler


def _cut(order: np.ndarray, size: int) -> list[np.ndarray]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def train_batches(enc: Encoded, batch_size: int, seed: int, epoch: int,
                  group_by_length: bool = True) -> list[np.ndarray]:
    """Index arrays for one epoch, the same for the same (seed, epoch); last partial kept."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(enc))
    if not group_by_length:
        return _cut(order, batch_size)
    # as LengthGroupedSampler: sort within megabatches, so batches pad little but stay random
    mega = [m[np.argsort(-enc.lengths[m], kind="stable")]
            for m in _cut(order, MEGABATCH_FACTOR * batch_size)]
    batches = _cut(np.concatenate(mega), batch_size) if mega else []
    batches = [batches[i] for i in rng.permutation(len(batches))]
    if batches:  # the longest batch first: an out-of-memory shows at step 1, not mid-epoch
        longest = max(range(len(batches)), key=lambda b: enc.lengths[batches[b]].max())
        batches.insert(0, batches.pop(longest))
    return batches


def eval_batches(enc: Encoded, batch_size: int) -> list[np.ndarray]:
    """Indices sorted by length (longest first) so batches pad little; callers restore order."""
    return _cut(np.argsort(-enc.lengths, kind="stable"), batch_size)


def bucket_width(longest: int, multiple: int | None, cap: int | None = None) -> int:
    """The padded width of a batch: its longest row, rounded up to `multiple` and capped at
    `cap` (max_length), so a GPU sees a handful of shapes instead of one per length."""
    if not multiple:
        return longest
    width = -(-longest // multiple) * multiple
    return max(longest, min(width, cap)) if cap else width


def collate(enc: Encoded, indices: np.ndarray, pad_id: int,
            pad_to_multiple_of: int | None = None, cap: int | None = None,
            width: int | None = None) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest row, rounded up to a multiple and capped (`bucket_width`), or
    to a given `width`."""
    indices = np.asarray(indices, dtype=np.int64)
    if width is None:
        lengths = enc.lengths[indices]
        width = bucket_width(int(lengths.max()) if len(indices) else 0, pad_to_multiple_of, cap)
    return collate_blocks([enc], [indices], pad_id, width)


def collate_blocks(encs: list[Encoded], index_lists: list[np.ndarray], pad_id: int,
                   width: int) -> dict[str, torch.Tensor]:
    """Several runs' batches as one, padded to one `width`: block k holds `encs[k]`'s rows
    `index_lists[k]` (a pack's members, each tokenised at its own max_length). One tensor per
    field, whatever the number of blocks."""
    index_lists = [np.asarray(ix, dtype=np.int64) for ix in index_lists]
    rows = sum(len(ix) for ix in index_lists)
    input_ids = np.full((rows, width), pad_id, dtype=np.int64)
    mask = np.zeros((rows, width), dtype=np.int64)
    with_types = all(e.token_type_ids is not None for e in encs)
    types = np.zeros_like(mask) if with_types else None
    row = 0
    for enc, indices in zip(encs, index_lists, strict=True):
        for i, n in zip(indices, enc.lengths[indices], strict=True):
            input_ids[row, :n] = enc.input_ids[i]
            mask[row, :n] = 1
            if types is not None and enc.token_type_ids is not None:
                types[row, :n] = enc.token_type_ids[i]
            row += 1
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if types is not None:
        batch["token_type_ids"] = torch.from_numpy(types)
    labels = np.concatenate([e.labels[ix] for e, ix in zip(encs, index_lists, strict=True)])
    batch["labels"] = torch.from_numpy(np.ascontiguousarray(labels))
    return batch


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Copy a batch to `device`; on CUDA through pinned memory without waiting, so the host
    goes on collating the next batch while the GPU works."""
    if device.type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
