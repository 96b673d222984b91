"""Every architecture in the matrix, forward only: poolbert hands each encoder the inputs it
expects (its own masks, segment ids only where they fit), every head runs on it, and the
checkpoint's pooler starts the `cls` head wherever there is one."""

from __future__ import annotations

import pytest
import torch
from architectures import ARCHITECTURES, WINDOW, build, cached_model, sentences
from transformers import AutoModel, AutoTokenizer, ModernBertConfig

from poolbert.encoder import check_max_length, check_segments, load_encoder, max_positions
from poolbert.errors import PoolbertError
from poolbert.model import build_model
from poolbert.pooling import POOLERS

LABELS = ["entailment", "not_entailment"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return {arch: cached_model(arch, tmp_path_factory) for arch in ARCHITECTURES}


def pairs_batch(folder, long: bool = False) -> dict[str, torch.Tensor]:
    """Sentence pairs of very different lengths, padded as one batch; `long`: the first pair
    runs to several times ModernBERT's local window."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = sentences(8, seed=1)
    first = " ".join(texts) if long else texts[0]
    return dict(tokenizer([first, texts[1], texts[2]], [texts[3], "No.", texts[4]],
                          padding=True, truncation=True, max_length=100, return_tensors="pt"))


def hidden_states(model, inputs) -> torch.Tensor:
    """The encoder's last hidden states as the model's forward computes them."""
    seen = {}

    def keep(module, args, out) -> None:
        seen["hidden"] = out.last_hidden_state

    handle = model.encoder.register_forward_hook(keep)
    with torch.no_grad():
        model(**inputs)
    handle.remove()
    return seen["hidden"]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_encoder_sees_what_it_expects_and_gives_the_models_own_states(models, arch):
    inputs = pairs_batch(models[arch], long=True)
    real = inputs["attention_mask"].bool()
    assert not real.all()  # padding in the batch
    if arch == "modernbert":  # a row longer than four windows, global and local layers
        assert int(real.sum(1).max()) > 4 * WINDOW
    reference = AutoModel.from_pretrained(models[arch]).eval()
    with torch.no_grad():  # the tokenizer's output as it comes, the model's own masks
        expected = reference(**inputs).last_hidden_state
    model = build_model(load_encoder(str(models[arch])), "mean", LABELS).eval()
    got = hidden_states(model, inputs)
    torch.testing.assert_close(got[real], expected[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("head", sorted(POOLERS))
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_head_runs_on_every_encoder_and_padding_changes_nothing(models, arch, head):
    torch.manual_seed(0)
    model = build_model(load_encoder(str(models[arch])), head, LABELS).eval()
    inputs = pairs_batch(models[arch], long=True)
    with torch.no_grad():
        batched = model(**inputs).logits
        for row in range(len(batched)):  # each row alone, without padding
            n = int(inputs["attention_mask"][row].sum())
            alone = model(**{k: v[row:row + 1, :n] for k, v in inputs.items()}).logits
            torch.testing.assert_close(batched[row:row + 1], alone, rtol=1e-4, atol=1e-5)
    assert batched.shape == (3, 2) and torch.isfinite(batched).all()


CHECKPOINT_POOLERS = {"bert": "pooler.dense", "roberta": "pooler.dense",
                      "xlm-roberta": "pooler.dense", "albert": "pooler"}  # ALBERT: a bare Linear


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_cls_starts_from_the_checkpoints_pooler_wherever_there_is_one(models, arch):
    checkpoint = AutoModel.from_pretrained(models[arch]).state_dict()
    model = build_model(load_encoder(str(models[arch])), "cls", LABELS)
    if arch in CHECKPOINT_POOLERS:
        dense = CHECKPOINT_POOLERS[arch]
        assert torch.equal(model.pooler.dense.weight, checkpoint[f"{dense}.weight"])
        assert torch.equal(model.pooler.dense.bias, checkpoint[f"{dense}.bias"])
        assert model.config.cls_pooler == "checkpoint"
    else:
        assert not any(key.startswith("pooler") for key in checkpoint)
        assert model.config.cls_pooler == "new"
    assert model.encoder.pooler is None if hasattr(model.encoder, "pooler") else True
    assert build_model(load_encoder(str(models[arch])), "mean", LABELS).config.cls_pooler is None


def test_a_pooler_the_checkpoint_lacks_is_not_taken_for_the_checkpoints(models, tmp_path):
    """RoBERTa's releases hold no pooler weights: transformers draws one at load, and `cls`
    must not copy that random layer and call it the checkpoint's."""
    from transformers import RobertaModel

    bare = RobertaModel.from_pretrained(models["roberta"], add_pooling_layer=False)
    bare.save_pretrained(tmp_path / "bare")
    encoder = load_encoder(str(tmp_path / "bare"))
    assert getattr(encoder, "pooler", None) is None
    assert build_model(encoder, "cls", LABELS).config.cls_pooler == "new"


def test_segment_ids_reach_only_an_encoder_with_rows_for_them(tmp_path):
    """A BERT with one segment row and a tokenizer that gives segment ids: they are dropped
    (the model knows segment 0 only) instead of failing with an IndexError."""
    folder = build("bert", tmp_path / "one-segment", type_vocab_size=1)
    inputs = pairs_batch(folder)
    assert inputs["token_type_ids"].max() == 1
    model = build_model(load_encoder(str(folder)), "mean", LABELS).eval()
    with torch.no_grad():
        given = model(**inputs).logits
        without = model(**{k: v for k, v in inputs.items() if k != "token_type_ids"}).logits
    torch.testing.assert_close(given, without)


def test_segment_ids_beyond_the_encoders_table_are_one_line(models):
    class ThreeSegments:  # a tokenizer whose pairs use segment ids 0 to 2
        model_input_names = ["input_ids", "token_type_ids", "attention_mask"]

        def __call__(self, a, b):
            return {"input_ids": [2, 5, 3, 6, 3], "token_type_ids": [0, 0, 0, 2, 2]}

    with pytest.raises(PoolbertError, match=r"segment ids up to 2, but the encoder has 2 "
                                             r"segment embeddings"):
        check_segments(load_encoder(str(models["bert"])), ThreeSegments(), "tiny")


def test_max_length_is_checked_against_the_models_own_limit(models):
    check_max_length(str(models["modernbert"]), 512)  # the tiny one: 512 positions
    with pytest.raises(PoolbertError) as error:
        check_max_length(str(models["roberta"]), 129)
    assert str(error.value) == (f"max_length 129 is above what {models['roberta']} takes: 128 "
                                "tokens (roberta, max_position_embeddings 130); use --max-length "
                                "128 or less")
    with torch.device("meta"):  # ModernBERT as released: 8192 positions, no table to offset
        released = AutoModel.from_config(ModernBertConfig())
    assert max_positions(released) == 8192


def test_a_run_above_the_models_limit_is_refused_before_training(models, tmp_path):
    from helpers import tiny_glue_dir

    from poolbert.cli import main

    out = tmp_path / "run"
    code = main(["train", "--model", str(models["bert"]), "--data-dir",
                 str(tiny_glue_dir(tmp_path / "data", 16, 8)), "--max-length", "256",
                 "--output-dir", str(out), "--quiet"])
    assert code == 2 and not out.exists()
