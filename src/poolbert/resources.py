"""What the runs of one worker share: the data, the tokenizer, its token cache and the base
encoder's weights, read from disk once; and the record of a run's settings (config.json)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoModel

from .config import RunConfig
from .data import LoadedData, TokenCache, load_data
from .encoder import check_max_length, check_segments, load_encoder, load_tokenizer
from .files import library_versions
from .fusion import packable
from .metrics import criterion
from .model import PoolbertForSequenceClassification, build_model, drop_encoder_pooler
from .weights import loss_weights


@dataclass
class Resources:
    """What every run of one worker shares: data, tokenizer, token cache, base encoder."""

    data: LoadedData
    tokenizer: Any  # a transformers tokenizer
    cache: TokenCache
    base_encoder: torch.nn.Module
    model_name: str
    # the base encoder copied once to each device trials run on (one host-to-device copy per
    # worker, not per trial)
    _on_device: dict[str, torch.nn.Module] = field(default_factory=dict, repr=False)
    _pack_refusal: list[str | None] = field(default_factory=list, repr=False)  # once known

    @classmethod
    def load(cls, config: RunConfig, data: LoadedData | None = None) -> Resources:
        """The data (unless given), the tokenizer and the encoder of `config`; checks that
        the settings fit the data (check_fit) before the model is read."""
        data = data if data is not None else load_data(config.data)
        check_fit(config, data)
        name = config.model.model_name_or_path
        encoder = load_encoder(name)
        tokenizer = load_tokenizer(name)
        check_segments(encoder, tokenizer, name)
        return cls(data, tokenizer, TokenCache(tokenizer), encoder, name)

    def encoder_on(self, device: torch.device) -> torch.nn.Module:
        """The base encoder's weights on `device` (kept for the next run)."""
        if device.type == "cpu":
            return self.base_encoder
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = copy.deepcopy(self.base_encoder).to(device)
        return self._on_device[key]

    def fresh_model(self, config: RunConfig, device: torch.device | None = None,
                    encoder: torch.nn.Module | None = None) -> PoolbertForSequenceClassification:
        """A new head on a copy of the base encoder, made on `device` (no disk read, no
        host-to-device copy of the encoder per run); a max_length above what the encoder takes
        is a one-line error (a search space may draw one). `encoder`: the one to build on
        instead (an `encoder_shell()`: the head alone, drawn from the same random numbers)."""
        check_max_length(self.model_name, config.train.max_length, self.base_encoder)
        if encoder is None:
            encoder = copy.deepcopy(self.encoder_on(device or torch.device("cpu")))
        model = build_model(encoder, config.model.pooling, self.data.label_names,
                            config.model.dropout, self.data.problem_type, name=self.model_name)
        return model.to(device) if device is not None else model

    def encoder_shell(self) -> torch.nn.Module:
        """The encoder's modules without weights (on the meta device) and its own pooler: what
        a pack builds a new member's head on, instead of copying a whole encoder to drop it."""
        with torch.device("meta"):
            shell = AutoModel.from_config(self.base_encoder.config)
        drop_encoder_pooler(shell)
        pooler = getattr(self.base_encoder, "pooler", None)
        if pooler is not None:  # the cls head starts from it
            shell.register_module("pooler", copy.deepcopy(pooler).cpu())
        return shell

    def pack_refusal(self) -> str | None:
        """Why this encoder's runs cannot train packed (`fusion.packable`, checked once), or
        None."""
        if not self._pack_refusal:
            self._pack_refusal.append(packable(self.base_encoder))
        return self._pack_refusal[0]

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id or 0


def check_fit(config: RunConfig, data: LoadedData) -> None:
    """What a run's settings ask of its data (a --metric its problem type has, class weights
    for its labels) and of its model (max_length within its positions), checked before
    anything is written."""
    criterion(config, data)
    loss_weights(config, data, torch.device("cpu"))
    check_max_length(config.model.model_name_or_path, config.train.max_length)


def run_record(config: RunConfig, data: LoadedData, command: list[str] | None = None) -> dict:
    """config.json: every resolved setting, the data source and the library versions."""
    record = config.to_dict()
    record["data_source"] = data.source
    record["text_columns_resolved"] = list(data.text_columns)
    record["versions"] = library_versions()
    if command is not None:
        record["command"] = command
    return record
