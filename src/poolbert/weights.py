"""--class-weights: the loss's weight per class (single-label) or per label's positives
(multi-label), as the loss (model.task_loss) takes them."""

from __future__ import annotations

import numpy as np
import torch

from .config import RunConfig, explicit_weights
from .data import LoadedData
from .errors import PoolbertError


def loss_weights(config: RunConfig, data: LoadedData,
                 device: torch.device) -> torch.Tensor | None:
    """--class-weights as the loss takes them: per class (single-label, balanced = N / (C n_c))
    or per label's positives (multi-label, balanced = negatives / positives)."""
    asked = config.train.class_weights
    if asked == "none":
        return None
    if data.problem_type == "regression":
        raise PoolbertError("class_weights: regression has no classes")
    explicit = explicit_weights(asked)
    if explicit is not None:
        if len(explicit) != len(data.label_names):
            raise PoolbertError(f"class_weights: {len(explicit)} weights for "
                                f"{len(data.label_names)} labels ({', '.join(data.label_names)})")
        return torch.tensor(explicit, dtype=torch.float32, device=device)
    labels = data.train.labels
    if data.problem_type == "multi_label":
        positives = np.clip((labels > 0).sum(0), 1, None)
        values = (len(labels) - positives) / positives
    else:
        counts = np.clip(np.bincount(labels[labels >= 0], minlength=len(data.label_names)), 1,
                         None)
        values = counts.sum() / (len(counts) * counts)
    return torch.tensor(values, dtype=torch.float32, device=device)
