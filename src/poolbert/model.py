"""Encoder + pooler + dropout + linear classifier, as a transformers model.

`PoolbertForSequenceClassification` is a `PreTrainedModel`, so `save_pretrained` writes
safetensors plus a config that holds the encoder's config, the pooling head and the label names,
and `from_pretrained` restores it exactly. This file imports only torch, transformers and
`.pooling`: export copies both files next to a model as its remote code.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

try:  # inside the package
    from .pooling import ClsPooler, check_pooling, make_pooler
except ImportError:  # pragma: no cover - loaded as remote code next to pooling.py
    from pooling import ClsPooler, check_pooling, make_pooler  # type: ignore[no-redef]


# poolbert's problem types as transformers' config.problem_type names them (its
# AutoModelForSequenceClassification picks the same loss from them)
HF_PROBLEM_TYPES = {"single_label": "single_label_classification",
                    "multi_label": "multi_label_classification", "regression": "regression"}


def problem_of(config: PretrainedConfig) -> str:
    """A model config's problem type in poolbert's words (single-label when unset)."""
    names = {v: k for k, v in HF_PROBLEM_TYPES.items()}
    return names.get(getattr(config, "problem_type", None) or "", "single_label")


def task_loss(logits: torch.Tensor, labels: torch.Tensor, problem_type: str,
              weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """The loss of a problem type, as transformers computes it for config.problem_type:
    cross-entropy (single-label), binary cross-entropy per label (multi-label), mean squared
    error (regression). `weight`: per-class weights (single-label) or positive-label weights
    (multi-label). With reduction "sum", unlabelled rows (-1, NaN) add nothing."""
    logits = logits.float()
    if problem_type == "regression":
        values, targets = logits.squeeze(-1), labels.float()
        known = ~torch.isnan(targets)
        errors = (values - torch.nan_to_num(targets)) ** 2 * known
        return errors.sum() if reduction == "sum" else errors.mean()
    if problem_type == "multi_label":
        targets = labels.float()
        known = (targets >= 0).float()
        each = nn.functional.binary_cross_entropy_with_logits(
            logits, targets.clamp(min=0), pos_weight=weight, reduction="none") * known
        return each.sum() if reduction == "sum" else each.mean()
    return nn.functional.cross_entropy(logits, labels, weight=weight, ignore_index=-1,
                                       reduction=reduction)


def calibration_of(config: PretrainedConfig) -> tuple[float, float]:
    """(temperature, multi-label threshold) a model predicts with; (1, 0.5) when it has none
    (a plain transformers config, a model saved before calibration)."""
    return (float(getattr(config, "calibration_temperature", 1.0)),
            float(getattr(config, "decision_threshold", 0.5)))


class PoolbertConfig(PretrainedConfig):
    model_type = "poolbert"

    def __init__(
        self,
        encoder_config: dict | None = None,
        pooling: str = "cls",
        classifier_dropout: float = 0.1,
        calibration_temperature: float = 1.0,
        decision_threshold: float = 0.5,
        cls_pooler: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.encoder_config = encoder_config or {}
        self.pooling = pooling
        self.classifier_dropout = classifier_dropout
        # calibration: probabilities are of logits / temperature (a key of its own: transformers
        # takes a config's "temperature" for a generation setting)
        self.calibration_temperature = calibration_temperature
        self.decision_threshold = decision_threshold  # multi-label: a label from this probability
        # where the `cls` head's dense layer started (CLS_POOLER's keys; None for other heads)
        self.cls_pooler = cls_pooler
        if self.encoder_config:  # so pipelines and generic code find the usual fields
            self.hidden_size = self.encoder_config.get("hidden_size")


def encoder_config_from(config: PoolbertConfig) -> PretrainedConfig:
    values = dict(config.encoder_config)
    return AutoConfig.for_model(values.pop("model_type"), **values)


class PoolbertForSequenceClassification(PreTrainedModel):
    config: PoolbertConfig
    config_class = PoolbertConfig
    base_model_prefix = "poolbert"
    _supports_sdpa = True

    def __init__(self, config: PoolbertConfig, encoder: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        enc_config = encoder_config_from(config)
        if encoder is None:  # from_pretrained builds this on the meta device, then loads weights
            encoder = AutoModel.from_config(enc_config)
        else:  # pretrained weights: post_init() below must not draw random ones over them
            for module in encoder.modules():
                module._is_hf_initialized = True  # type: ignore[assignment]  # transformers' flag
        self.encoder = encoder
        drop_encoder_pooler(self.encoder)
        num_layers = getattr(enc_config, "num_hidden_layers", 12) + 1  # + embedding output
        self.pooler = make_pooler(config.pooling, enc_config.hidden_size, num_layers)
        self.dropout = nn.Dropout(config.classifier_dropout)
        num_labels = config.num_labels
        assert num_labels is not None  # PretrainedConfig always holds one (2 by default)
        self.classifier = nn.Linear(self.pooler.output_dim, num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        std = getattr(encoder_config_from(self.config), "initializer_range", 0.02)
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm) and module.weight is not None:
            nn.init.ones_(module.weight)
            if module.bias is not None:  # ModernBERT's LayerNorms have none
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)

    def classify(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The head: pooled token states (B, T, H), or (B, L, T, H) for a pooler that uses every
        layer, through dropout and the classifier to logits (B, C)."""
        pooled = self.pooler(hidden, attention_mask)  # (B, D)
        return self.classifier(self.dropout(pooled))

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        if input_ids is None:
            raise ValueError("input_ids are required")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = encoder_inputs(self.encoder, input_ids, attention_mask, token_type_ids)
        all_layers = self.pooler.uses_all_layers
        out = self.encoder(**inputs, output_hidden_states=all_layers, return_dict=True)
        if all_layers:
            hidden = torch.stack(out.hidden_states, dim=1)  # (B, L, T, H)
        else:
            hidden = out.last_hidden_state  # (B, T, H)
        logits = self.classify(hidden, attention_mask)  # (B, C)
        loss = None
        if labels is not None:
            loss = task_loss(logits, labels, problem_of(self.config))
        return SequenceClassifierOutput(loss=loss, logits=logits)


def takes_segments(config: PretrainedConfig) -> bool:
    """Whether the encoder has segment embeddings that segment ids can index: a table of two
    rows or more (BERT, ELECTRA, ALBERT). RoBERTa's one-row table, DeBERTa-v3 (none), DistilBERT
    and ModernBERT (no such input) only know segment 0, so their ids are dropped."""
    return int(getattr(config, "type_vocab_size", 0) or 0) >= 2


def encoder_inputs(encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   token_type_ids: torch.Tensor | None = None) -> dict:
    """What the encoder's forward takes: the ids, its mask (`encoder_mask`) and the segment ids
    where it has segment embeddings for them (`takes_segments`)."""
    inputs = {"input_ids": input_ids, "attention_mask": encoder_mask(encoder, attention_mask)}
    if token_type_ids is not None and takes_segments(encoder.config):
        inputs["token_type_ids"] = token_type_ids
    return inputs


# encoders that take a ready 4-D boolean mask as given (transformers' create_bidirectional_mask)
# and apply it to every layer alike; the matrix in tests/test_architectures.py holds each equal
# to the model's own masks
READY_MASK = frozenset({"bert", "roberta", "xlm-roberta", "electra", "albert", "distilbert"})


def encoder_mask(encoder: nn.Module,
                 attention_mask: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
    """The mask as the encoder's attention takes it. Under SDPA, built here without looking at
    its values: from a 2-D mask transformers first tests whether any token is padding
    (`mask.all()`), a host-device sync on every forward. Encoders of READY_MASK get a 4-D
    boolean mask (B, 1, 1, T); ModernBERT its own pair of masks (a global one, and a
    sliding-window one for its local layers); every other encoder the 2-D mask, from which it
    builds its own (DeBERTa's relative-position masks, any window of an unknown kind)."""
    config: PretrainedConfig = encoder.config  # type: ignore[assignment]  # a transformers model
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return attention_mask
    if config.model_type in READY_MASK:
        return attention_mask[:, None, None, :].bool()
    if config.model_type == "modernbert":
        return local_masks(attention_mask, config.sliding_window)
    return attention_mask


def local_masks(attention_mask: torch.Tensor, window: int) -> dict[str, torch.Tensor]:
    """ModernBERT's masks by layer type, as its model builds them from a 2-D mask: global
    layers see every real token (B, 1, 1, T); local layers the real tokens within `window`
    positions (B, 1, T, T). A padding position looks at every real token, so no row of the
    local mask is empty (SDPA kernels differ on an empty row; NaN in some)."""
    keys = attention_mask[:, None, None, :].bool()  # (B, 1, 1, T)
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    band = (positions[:, None] - positions[None, :]).abs() <= window  # (T, T)
    padding_query = ~keys.transpose(-1, -2)  # (B, 1, T, 1)
    return {"full_attention": keys, "sliding_attention": (band | padding_query) & keys}


def drop_encoder_pooler(encoder: nn.Module) -> nn.Module | None:
    """Detach the encoder's own pooler (if any): the head has its own; returns the old one."""
    old = getattr(encoder, "pooler", None)
    if old is not None:
        encoder.register_module("pooler", None)
    return old


def pooler_dense(pooler: nn.Module | None) -> nn.Linear | None:
    """The dense layer of an encoder's pooler: BERT's `pooler.dense`, ALBERT's bare Linear."""
    if isinstance(pooler, nn.Linear):
        return pooler
    dense = getattr(pooler, "dense", None)
    return dense if isinstance(dense, nn.Linear) else None


# what the `cls` head's dense + tanh starts from (PoolbertConfig.cls_pooler)
CLS_POOLER = {
    "checkpoint": "dense + tanh on the first token, copied from the checkpoint's pooler",
    "new": "dense + tanh on the first token, newly initialised: the checkpoint has no pooler "
           "(as transformers' own heads for ELECTRA, DeBERTa, ModernBERT)",
}


def build_model(
    encoder: PreTrainedModel,
    pooling: str,
    label_names: list[str],
    dropout: float = 0.1,
    problem_type: str = "single_label",
    name: str | None = None,
) -> PoolbertForSequenceClassification:
    """A fresh head on a pretrained float32 encoder (poolbert.encoder loads one; mixed precision
    is autocast's job). The encoder is used as given, not copied. `name`: the model name the
    config records as `base_model_name_or_path` (default: the encoder's own).

    The `cls` head starts from the checkpoint's own pooler (dense + tanh) weights when present,
    as BertForSequenceClassification does (ALBERT's too); where the encoder has none (ELECTRA,
    DistilBERT, DeBERTa, ModernBERT, a checkpoint saved without its pooler) its dense layer is
    new. The config's `cls_pooler` says which (CLS_POOLER).
    """
    check_pooling(pooling)
    dense = pooler_dense(drop_encoder_pooler(encoder))
    cls_pooler = ("checkpoint" if dense is not None else "new") if pooling == "cls" else None
    config = PoolbertConfig(
        encoder_config=encoder.config.to_dict(),
        pooling=pooling,
        classifier_dropout=dropout,
        id2label=dict(enumerate(label_names)),  # regression: one output, named for its target
        label2id={name: i for i, name in enumerate(label_names)},
        problem_type=HF_PROBLEM_TYPES[problem_type],
        base_model_name_or_path=name or str(getattr(encoder, "name_or_path", "") or ""),
        cls_pooler=cls_pooler,
    )
    model = PoolbertForSequenceClassification(config, encoder=encoder)
    if isinstance(model.pooler, ClsPooler) and dense is not None:
        model.pooler.dense.load_state_dict(dense.state_dict())
    return model.float()


def load_model(path: str) -> tuple[PoolbertForSequenceClassification, object]:
    """A saved model (float32, eval mode) and its tokenizer, from a `save_pretrained` folder."""
    from transformers import AutoTokenizer

    model = PoolbertForSequenceClassification.from_pretrained(path, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(path, config=model.config)
