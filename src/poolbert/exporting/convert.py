"""A poolbert model as a folder that plain transformers loads, checked before it is put in place.

`cls` on a BERT encoder becomes a stock `BertForSequenceClassification`; every other head ships
`modeling_poolbert.py` + `pooling.py` as remote code (`trust_remote_code=True`). Every export is
reloaded and checked weight by weight before it is put in place.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from ..errors import PoolbertError
from ..files import atomic_dir, check_output_dir
from ..model import calibration_of
from ..text import first_line
from .card import build_card, public_model_name
from .onnx import add_onnx, require_onnx
from .sources import (
    MODEL_CARD,
    label_names,
    load_classifier,
    resolve_source,
    training_info,
    write_export_info,
)

POOLBERT_DIR = Path(__file__).resolve().parent.parent  # where model.py and pooling.py live
REMOTE_CODE = {"modeling_poolbert.py": "model.py", "pooling.py": "pooling.py"}  # exported: source
AUTO_MAP = {
    "AutoConfig": "modeling_poolbert.PoolbertConfig",
    "AutoModelForSequenceClassification": "modeling_poolbert.PoolbertForSequenceClassification",
}
CHECK_ATOL = 1e-5
LOSS_CURVE = "loss_curve.png"  # copied from the run under the same name


def export_model(
    source: str | os.PathLike,
    to: str | os.PathLike,
    head: str = "best",
    overwrite: bool = False,
    license: str = "apache-2.0",
    repo_id: str | None = None,
    onnx: bool = False,
    quantize: bool = False,
) -> Path:
    """Write a Hub-ready folder at `to` (atomically); returns it. See the module docstring.
    `onnx`: also model.onnx, `quantize`: and model.int8.onnx (`exporting.onnx.add_onnx`)."""
    if quantize and not onnx:
        raise PoolbertError("--quantize needs --onnx (it quantises the ONNX graph)")
    if onnx:
        require_onnx()  # before any work
    src = resolve_source(source, head)
    if src.exported:
        raise PoolbertError(f"{source} is already an exported folder: push it as it is")
    check_output_dir(to, overwrite)  # before the model is read
    model, tokenizer = load_classifier(src.model_dir)
    if getattr(model.config, "model_type", None) != "poolbert":
        raise PoolbertError(f"{src.model_dir}: not a poolbert model (model_type "
                            f"{model.config.model_type!r}); nothing to export")
    _drop_local_paths(model.config)
    with atomic_dir(to, overwrite) as tmp:
        plain_bert = is_plain_bert(model)
        saved = to_bert_classifier(model) if plain_bert else with_remote_code(model, tmp)
        saved.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        verify_export(tmp, saved, tokenizer, remote_code=not plain_bert)
        info = training_info(src)
        write_export_info(tmp, info, model.config.pooling, label_names(model.config), not plain_bert)
        graphs = add_onnx(tmp, model, tokenizer, src, info, quantize) if onnx else None
        if src.run is not None and src.run.loss_curve.is_file():
            shutil.copyfile(src.run.loss_curve, tmp / LOSS_CURVE)
        card = build_card(src, model, info, plain_bert, license, repo_id,
                          has_curve=(tmp / LOSS_CURVE).is_file(), onnx=graphs)
        card.save(tmp / MODEL_CARD)
    return Path(to)


def _drop_local_paths(config: Any) -> None:
    """Local folders are meaningless (and private) on the Hub: keep public names only."""
    config.encoder_config.pop("_name_or_path", None)
    base = getattr(config, "base_model_name_or_path", None)
    if base:
        config.base_model_name_or_path = public_model_name(base) or ""


def is_plain_bert(model: PreTrainedModel) -> bool:
    """`cls` on a BERT encoder is exactly BertForSequenceClassification: no remote code needed."""
    return model.config.pooling == "cls" and model.config.encoder_config.get("model_type") == "bert"


def to_bert_classifier(model: PreTrainedModel) -> PreTrainedModel:
    """The same weights as a stock BertForSequenceClassification (encoder.* -> bert.*)."""
    from transformers import BertConfig, BertForSequenceClassification

    values = {k: v for k, v in model.config.encoder_config.items()
              if k not in ("id2label", "label2id", "architectures", "_name_or_path")}
    temperature, threshold = calibration_of(model.config)
    config = BertConfig.from_dict({
        **values, "id2label": dict(model.config.id2label), "label2id": dict(model.config.label2id),
        "classifier_dropout": model.config.classifier_dropout,
        "problem_type": model.config.problem_type,  # so transformers computes the same loss
        "calibration_temperature": temperature, "decision_threshold": threshold,
        "architectures": ["BertForSequenceClassification"],
    })
    bert = BertForSequenceClassification(config)
    state = {_bert_key(key): value for key, value in model.state_dict().items()}
    result = bert.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise PoolbertError(f"cannot map the cls head onto BertForSequenceClassification: missing "
                            f"{result.missing_keys}, unexpected {result.unexpected_keys}")
    return bert.eval()


def _bert_key(key: str) -> str:
    if key.startswith("encoder."):
        return "bert." + key.removeprefix("encoder.")
    if key.startswith("pooler.dense."):
        return "bert." + key  # bert.pooler.dense.*
    return key  # classifier.*; anything else shows up as unexpected


def with_remote_code(model: PreTrainedModel, folder: Path) -> PreTrainedModel:
    """Copy model.py and pooling.py next to the weights and point the config's auto_map at them."""
    for exported, source in REMOTE_CODE.items():
        shutil.copyfile(POOLBERT_DIR / source, folder / exported)
    model.config.auto_map = dict(AUTO_MAP)
    return model


def verify_export(folder: Path, saved: PreTrainedModel, tokenizer: Any, remote_code: bool) -> None:
    """Reload `folder` as a user would and demand the very same weights and logits."""
    from transformers import AutoModelForSequenceClassification

    kwargs = {"trust_remote_code": True} if remote_code else {}
    try:
        reloaded, info = AutoModelForSequenceClassification.from_pretrained(
            folder, dtype=torch.float32, output_loading_info=True, **kwargs)
    except Exception as exc:  # any failure to load means the export is broken
        raise PoolbertError(f"export check failed: the folder does not load with "
                            f"transformers ({first_line(exc)})") from None
    problems = [f"{kind}: {sorted(keys)[:5]}" for kind, keys in info.items()
                if kind in ("missing_keys", "unexpected_keys", "mismatched_keys") and keys]
    expected, got = saved.state_dict(), reloaded.state_dict()
    if expected.keys() != got.keys():
        problems.append(f"weights differ in names: {sorted(expected.keys() ^ got.keys())[:5]}")
    changed = [k for k in expected.keys() & got.keys() if not torch.equal(expected[k], got[k])]
    if changed:
        problems.append(f"weights changed on reload (re-initialised?): {sorted(changed)[:5]}")
    if not problems:
        gap = _logit_gap(saved, reloaded.eval(), tokenizer)
        if gap > CHECK_ATOL:
            problems.append(f"logits differ by {gap:.2e} after reload")
    if problems:
        raise PoolbertError("export check failed, nothing written: " + "; ".join(problems))


@torch.no_grad()
def _logit_gap(a: PreTrainedModel, b: PreTrainedModel, tokenizer: Any) -> float:
    """The largest logit difference on two fixed pairs, `a` evaluated in eval mode."""
    inputs = tokenizer(["A man is playing a guitar on stage.", "Nothing."],
                       ["Someone makes music.", "A very long second text, padded or not."],
                       padding=True, return_tensors="pt")
    was_training = a.training
    a.eval()
    gap = (a(**inputs).logits - b(**inputs).logits).abs().max().item()
    a.train(was_training)
    return gap
