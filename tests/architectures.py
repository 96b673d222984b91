"""Tiny random encoders of every architecture poolbert supports, each with a tokenizer of its own
kind trained by the `tokenizers` library on a few hundred generated sentences (no hub).

`build(arch, folder)` writes a model folder that `AutoModel` / `AutoTokenizer` load: hidden 32,
2 layers, the architecture's own quirks kept (ALBERT's factorised embeddings and bare-Linear
pooler, DeBERTa-v3's relative attention without absolute positions or segment embeddings,
ModernBERT's alternating global / sliding-window layers with a window shorter than the test
inputs, RoBERTa's position ids after the padding index).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
import transformers
from helpers import WORDS
from tokenizers import Tokenizer, processors
from tokenizers.implementations import (
    BertWordPieceTokenizer,
    ByteLevelBPETokenizer,
    SentencePieceUnigramTokenizer,
)

ARCHITECTURES = ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert",
                 "deberta-v2", "modernbert")
WINDOW = 16  # ModernBERT's local attention span (tokens), shorter than the long test inputs
SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64}


def sentences(n: int = 300, seed: int = 0) -> list[str]:
    """RTE-like sentences of the test data's words, to learn each tokenizer from."""
    rng = random.Random(seed)
    words = [*WORDS, "yes", "no"]
    return [" ".join(rng.choices(words, k=rng.randint(3, 14))).capitalize() + "."
            for _ in range(n)]


# ----------------------------------------------------------------------------- tokenizers


def _wordpiece(kind: type, texts: list[str]) -> transformers.PreTrainedTokenizerBase:
    trained = BertWordPieceTokenizer(lowercase=True)
    trained.train_from_iterator(texts, vocab_size=200, show_progress=False,
                                special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return kind(vocab=trained.get_vocab())


def _unigram(kind: type, texts: list[str], specials: list[str],
             unk: str) -> transformers.PreTrainedTokenizerBase:
    trained = SentencePieceUnigramTokenizer()
    trained.train_from_iterator(texts, vocab_size=150, special_tokens=specials, unk_token=unk,
                                show_progress=False)
    pieces = [tuple(p) for p in json.loads(trained._tokenizer.to_str())["model"]["vocab"]]
    return kind(vocab=pieces)


def _byte_bpe(texts: list[str], specials: list[str]) -> Tokenizer:
    trained = ByteLevelBPETokenizer()
    trained.train_from_iterator(texts, vocab_size=300, min_frequency=1, special_tokens=specials,
                                show_progress=False)
    return trained._tokenizer


def _roberta_tokenizer(texts: list[str]) -> transformers.PreTrainedTokenizerBase:
    model = json.loads(_byte_bpe(texts, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
                       .to_str())["model"]
    return transformers.RobertaTokenizer(vocab=model["vocab"],
                                         merges=[tuple(m) for m in model["merges"]])


def _modernbert_tokenizer(texts: list[str]) -> transformers.PreTrainedTokenizerBase:
    """As ModernBERT's own: byte-level BPE with BERT's special tokens, no segment ids."""
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok = _byte_bpe(texts, specials)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        pad_token="[PAD]", mask_token="[MASK]", model_input_names=["input_ids", "attention_mask"])


def tokenizer_for(arch: str, texts: list[str]) -> transformers.PreTrainedTokenizerBase:
    """A tokenizer of the kind `arch`'s checkpoints ship, learnt from `texts`."""
    if arch in ("bert", "distilbert", "electra"):
        kind = {"bert": transformers.BertTokenizer, "distilbert": transformers.DistilBertTokenizer,
                "electra": transformers.ElectraTokenizer}[arch]
        return _wordpiece(kind, texts)
    if arch == "roberta":
        return _roberta_tokenizer(texts)
    if arch == "modernbert":
        return _modernbert_tokenizer(texts)
    if arch == "xlm-roberta":
        return _unigram(transformers.XLMRobertaTokenizer, texts,
                        ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<unk>")
    if arch == "albert":
        return _unigram(transformers.AlbertTokenizer, texts,
                        ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], "<unk>")
    if arch == "deberta-v2":
        return _unigram(transformers.DebertaV2Tokenizer, texts,
                        ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], "[UNK]")
    raise ValueError(f"no tiny {arch}")


# ----------------------------------------------------------------------------- models


def config_for(arch: str, vocab_size: int, pad_id: int, dropout: bool = True,
               max_positions: int = 128) -> transformers.PretrainedConfig:
    """A tiny config of `arch`; `dropout=False` turns every dropout of the encoder off."""
    p = 0.1 if dropout else 0.0
    size = {**SIZE, "vocab_size": vocab_size, "pad_token_id": pad_id}
    bert_like = {**size, "hidden_dropout_prob": p, "attention_probs_dropout_prob": p,
                 "max_position_embeddings": max_positions}
    if arch == "bert":
        return transformers.BertConfig(**bert_like)
    if arch == "electra":
        return transformers.ElectraConfig(**bert_like, embedding_size=16)
    if arch in ("roberta", "xlm-roberta"):  # positions start after the padding index
        kind = transformers.RobertaConfig if arch == "roberta" else transformers.XLMRobertaConfig
        return kind(**{**bert_like, "max_position_embeddings": max_positions + pad_id + 1},
                    type_vocab_size=1)
    if arch == "albert":
        return transformers.AlbertConfig(**bert_like, embedding_size=16, classifier_dropout_prob=p)
    if arch == "distilbert":
        return transformers.DistilBertConfig(
            vocab_size=vocab_size, pad_token_id=pad_id, dim=32, n_layers=2, n_heads=2,
            hidden_dim=64, dropout=p, attention_dropout=p, max_position_embeddings=max_positions)
    if arch == "deberta-v2":  # as DeBERTa-v3: relative attention only, no segment embeddings
        return transformers.DebertaV2Config(
            **bert_like, relative_attention=True, position_buckets=16, max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True,
            position_biased_input=False, type_vocab_size=0, pooler_dropout=p)
    if arch == "modernbert":
        return transformers.ModernBertConfig(
            **size, max_position_embeddings=512, local_attention=WINDOW,
            embedding_dropout=p, attention_dropout=p,
            mlp_dropout=p, bos_token_id=None, eos_token_id=None, cls_token_id=None,
            sep_token_id=None)
    raise ValueError(f"no tiny {arch}")


def build(arch: str, folder: Path, dropout: bool = True, seed: int = 0, **overrides) -> Path:
    """Save a tiny random `arch` encoder and its tokenizer into `folder`; `overrides` set
    fields of its config."""
    folder = Path(folder)
    tokenizer = tokenizer_for(arch, sentences())
    config = config_for(arch, len(tokenizer), tokenizer.pad_token_id, dropout)
    for key, value in overrides.items():
        setattr(config, key, value)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformers.AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def cached_model(arch: str, factory, dropout: bool = False) -> Path:
    """`build(arch)` once per test session (every module of the session shares the folder);
    dropout off by default, so a packed run equals the run alone."""
    folder = factory.getbasetemp() / "architectures" / f"{arch}{'-dropout' if dropout else ''}"
    if not (folder / "config.json").is_file():
        build(arch, folder, dropout)
    return folder
