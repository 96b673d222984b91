"""The model as one ONNX graph with the pooling head inside, checked against PyTorch; int8 too.

`export_onnx` writes model.onnx: inputs input_ids, attention_mask (and token_type_ids when the
tokenizer gives them, as BERT's does), output logits, the batch and sequence axes dynamic. Before
the file is put in place ONNX Runtime runs it on real sentence pairs of different lengths, padded
as a batch and one row alone, and its logits must match PyTorch's to 1e-4, else nothing is
written.

The exporter is `torch.onnx.export(dynamo=True)` (torch.export, then onnxscript's translation),
the default and the supported one since torch 2.9. The TorchScript exporter (`dynamo=False`)
also traces BERT with the 4-D mask on torch 2.13, but it warns that it will be removed, and a
trace keeps whatever a tensor turned into a Python value (transformers' SDPA code does this)
as a constant without checking; torch.export treats the batch and sequence sizes as symbols and
fails at export time if the model specialises on them.

`quantize_onnx` writes model.int8.onnx: ONNX Runtime's dynamic quantisation (int8 weights,
activations quantised per batch at run time). `score_validation` puts both graphs on the
training run's validation split and `add_onnx` records it all in the export's poolbert.json.
`OnnxClassifier` is an ONNX Runtime session: padded token batches in, logits out;
`graph_logits` scores tokenised rows with it (predict's onnxruntime backend uses both).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from ..errors import PoolbertError
from ..files import read_json, write_json
from ..text import first_line
from .sources import EXPORT_INFO, Source, TrainingInfo, load_config_and_tokenizer

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
ONNX_ATOL = 1e-4  # ONNX Runtime's float32 logits against PyTorch's
SCORE_BATCH = 32  # rows per batch when scoring the validation split (a CPU's best, device.py)
EXTRA = 'pip install "poolbert[onnx]"'
# ONNX Runtime's SkipLayerNormalization fusion made MiniLM 10-20% slower on a 2-core CPU (onnxruntime
# 1.32, fp32 and int8 alike): its fused kernel is slower than the Add + LayerNormalization it replaces
SLOW_FUSIONS = ["SkipLayerNormFusion"]
# the check's real rows: pairs of very different lengths, so a batch of them is mostly padding
CHECK_PAIRS = [
    ("A man is playing a guitar on stage.", "Someone makes music."),
    ("No.", "Yes."),
    ("The cat sat on the mat while the dog slept by the fire and the rain went on all night, "
     "so nobody left the house until the morning came.", "It rained."),
    ("Paris is the capital of France.",
     "France has a capital city, and it is Paris, which lies on the Seine."),
    ("Three children are running through a park with a red kite.", "Kids play outside."),
    ("The company reported record profits for the third quarter in a row.",
     "The company lost money."),
]


def require_onnx() -> None:
    """onnx, onnxruntime and onnxscript (torch's exporter needs it), or one line saying how."""
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            raise PoolbertError(f"ONNX needs the {name} package: {EXTRA}") from None


def input_names(tokenizer: Any) -> list[str]:
    """The graph's inputs: token_type_ids only where the tokenizer gives them (BERT, not RoBERTa)."""
    names = ["input_ids", "attention_mask"]
    return [*names, "token_type_ids"] if "token_type_ids" in tokenizer.model_input_names else names


class _Logits(nn.Module):
    """The classifier with the logits as its one output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).logits


# ----------------------------------------------------------------------------- export + check


def export_onnx(model: nn.Module, tokenizer: Any, folder: str | os.PathLike, *, pairs: bool = True,
                max_length: int = 128) -> Path:
    """Write `folder`/model.onnx, checked against the model's logits; returns its path."""
    path = Path(folder) / ONNX_FILE
    write_checked(model, tokenizer, path, pairs, max_length)
    return path


def write_checked(model: nn.Module, tokenizer: Any, path: Path, pairs: bool,
                  max_length: int) -> float:
    """Export to `path` under a temporary name, check it, then rename it into place; returns the
    largest logit difference on the check rows (PoolbertError, nothing written, above 1e-4)."""
    require_onnx()
    model.eval()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        _export(model, tokenizer, tmp)
        gap = logit_gap(model, tokenizer, OnnxClassifier(tmp), pairs, max_length)
        if not gap <= ONNX_ATOL:  # NaN fails too
            raise PoolbertError(f"ONNX check failed, nothing written: ONNX Runtime's logits differ "
                                f"from PyTorch's by {gap:.2e} (more than {ONNX_ATOL:g}) on "
                                "the check rows")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return gap


def _export(model: nn.Module, tokenizer: Any, path: Path) -> None:
    names = input_names(tokenizer)
    example = tokenizer(*zip(*CHECK_PAIRS[:2], strict=True), padding=True, return_tensors="pt")
    example = {n: example[n].to(_device(model)) for n in names}
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                _Logits(model).eval(), (), kwargs=example, dynamo=True,
                input_names=names, output_names=["logits"], verbose=False,
                dynamic_shapes={n: {0: batch, 1: sequence} for n in names})
            assert program is not None  # dynamo=True returns the program
            program.save(str(path), external_data=False)  # one file (protobuf: up to 2 GB)
    except Exception as exc:  # torch.export and the translation raise many kinds
        raise PoolbertError(f"ONNX export failed: {first_line(exc)}") from None


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's and the quantiser's warnings and log lines are not the user's business."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def check_batches(tokenizer: Any, pairs: bool, max_length: int) -> list[dict[str, torch.Tensor]]:
    """The check rows padded as one batch, and the shortest row alone (batch 1, no padding)."""
    def encode(rows: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
        texts_a, texts_b = [a for a, _ in rows], [b for _, b in rows]
        return dict(tokenizer(texts_a, texts_b if pairs else None, padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt"))

    shortest = min(CHECK_PAIRS, key=lambda pair: len(pair[0]) + len(pair[1]))
    return [encode(CHECK_PAIRS), encode([shortest])]


@torch.no_grad()
def logit_gap(model: nn.Module, tokenizer: Any, graph: OnnxClassifier, pairs: bool,
              max_length: int) -> float:
    """The largest |ONNX Runtime - PyTorch| logit difference on the check rows."""
    gap = 0.0
    for batch in check_batches(tokenizer, pairs, max_length):
        expected = model(**{k: v.to(_device(model)) for k, v in batch.items()}).logits
        expected = expected.float().cpu().numpy()
        gap = max(gap, float(np.abs(graph.batch_logits(batch) - expected).max()))
    return gap


def quantize_onnx(folder: str | os.PathLike) -> Path:
    """`folder`/model.int8.onnx from model.onnx: dynamic int8 quantisation; returns its path."""
    require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, path = Path(folder) / ONNX_FILE, Path(folder) / INT8_FILE
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with _quiet():  # it asks for a pre-processing step that fails on torch.export's graphs
            quantize_dynamic(source, tmp, weight_type=QuantType.QInt8)
        os.replace(tmp, path)
    except Exception as exc:
        raise PoolbertError(f"int8 quantisation of {source} failed: {first_line(exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------- running a graph


class OnnxClassifier:
    """An ONNX Runtime session over an exported graph: padded token batches in, logits out."""

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None) -> None:
        require_onnx()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=providers or ["CPUExecutionProvider"],
                disabled_optimizers=SLOW_FUSIONS)
        except Exception as exc:  # onnxruntime's own exception types
            raise PoolbertError(f"{path}: ONNX Runtime cannot load it ({first_line(exc)})") from None
        self.path = Path(path)
        self.inputs = [node.name for node in self.session.get_inputs()]

    def batch_logits(self, batch: Mapping[str, torch.Tensor | np.ndarray]) -> np.ndarray:
        """(B, C) float32 logits of one padded batch; token_type_ids default to zeros."""
        ids = np.asarray(batch["input_ids"], dtype=np.int64)
        feed = {name: np.asarray(batch[name], dtype=np.int64) if name in batch
                else np.zeros_like(ids) for name in self.inputs}
        try:
            logits = self.session.run(["logits"], feed)[0]
        except Exception as exc:  # onnxruntime's own exception types (shapes, missing inputs)
            raise PoolbertError(f"{self.path}: ONNX Runtime failed on a batch of shape "
                                f"{ids.shape} ({first_line(exc)})") from None
        return np.asarray(logits, dtype=np.float32)


def load_graph(folder: Path, name: str = ONNX_FILE,
               device: torch.device | None = None) -> tuple[OnnxClassifier, Any, Any]:
    """The graph `name` in an export folder, its tokenizer and its model config (label names,
    problem type, calibration), without a PyTorch model.
    On a CUDA device ONNX Runtime's CUDA provider goes first where onnxruntime-gpu has it."""
    import onnxruntime as ort

    path = folder / name
    if not path.is_file():
        raise PoolbertError(f"{folder}: no ONNX graph {name} (write one with: poolbert export "
                            "SOURCE --to DIR --onnx)")
    providers = ["CPUExecutionProvider"]
    if device is not None and device.type == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    graph = OnnxClassifier(path, [p for p in providers if p in ort.get_available_providers()])
    config, tokenizer = load_config_and_tokenizer(folder, "tokenizer")
    return graph, tokenizer, config


def graph_logits(graph: OnnxClassifier, enc: Any, batch_size: int, pad_id: int,
                 num_labels: int) -> np.ndarray:
    """(N, C) float32 logits of tokenised rows (`data.Encoded`) in their order, from an ONNX
    Runtime session; batches go longest first (little padding)."""
    from ..data import collate, eval_batches

    out = np.zeros((len(enc), num_labels), dtype=np.float32)
    for indices in eval_batches(enc, batch_size):
        out[indices] = graph.batch_logits(collate(enc, indices, pad_id))
    return out


# ----------------------------------------------------------------------------- the export's hook


def add_onnx(folder: Path, model: PreTrainedModel, tokenizer: Any, src: Source, info: TrainingInfo,
             quantize: bool) -> dict[str, Any]:
    """model.onnx (and model.int8.onnx) into an export folder, recorded under "onnx" in its
    poolbert.json (written before by `write_export_info`); returns that record."""
    pairs = info.text_columns is None or len(info.text_columns) == 2
    max_length = info.max_length or 128
    gap = write_checked(model, tokenizer, folder / ONNX_FILE, pairs, max_length)
    record: dict[str, Any] = {
        "file": ONNX_FILE, "inputs": input_names(tokenizer), "outputs": ["logits"],
        "dynamic_axes": ["batch", "sequence"], "exporter": "torch.onnx.export(dynamo=True)",
        "opset": _opset(folder / ONNX_FILE), "torch": torch.__version__.split("+")[0],
        "check": {"rows": len(CHECK_PAIRS), "max_abs_logit_diff": gap, "atol": ONNX_ATOL},
    }
    if quantize:
        quantize_onnx(folder)
        # one session per graph for the check and the scoring (each parses and optimises it)
        int8 = OnnxClassifier(folder / INT8_FILE)
        int8_gap = logit_gap(model, tokenizer, int8, pairs, max_length)
        record["int8"] = {
            "file": INT8_FILE, "quantization": "dynamic int8 (onnxruntime quantize_dynamic)",
            "check": {"rows": len(CHECK_PAIRS), "max_abs_logit_diff": int8_gap},
            **score_validation(src, folder, int8, tokenizer, max_length, model.config),
        }
    export_info = read_json(folder / EXPORT_INFO)
    write_json(folder / EXPORT_INFO, {**export_info, "onnx": record})
    return record


def _opset(path: Path) -> int | None:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def score_validation(src: Source, folder: Path, int8: OnnxClassifier, tokenizer: Any,
                     max_length: int, config: Any) -> dict[str, Any]:
    """{"validation": the metric (accuracy; Pearson for regression) of `folder`'s model.onnx
    and of `int8` (model.int8.onnx's session) on the run's validation split and the change},
    or {"validation": None, "validation_note": why not}."""
    from ..config import RunConfig
    from ..data import encode, load_data
    from ..metrics import METRIC_KEYS
    from ..metrics import labelled as labelled_rows
    from ..model import calibration_of, problem_of
    from ..scoring import ScoreOptions, score_logits

    run = src.run_config()
    if not run:
        return {"validation": None, "validation_note": "no training run behind this model, so "
                "no validation split to score"}
    try:
        data = load_data(RunConfig.from_dict({"data": run.get("data", {})}).data)
    except (PoolbertError, OSError) as exc:
        return {"validation": None,
                "validation_note": f"the validation split could not be loaded: {first_line(exc)}"}
    enc = encode(tokenizer, data.validation, max_length)
    labels = enc.labels
    labelled = labelled_rows(labels)
    if not labelled.any():
        return {"validation": None, "validation_note": "the validation split has no labels"}
    problem = problem_of(config)
    metric = "pearson" if problem == "regression" else "accuracy"
    how = ScoreOptions(torch.device("cpu"), problem_type=problem, temperature=1.0,
                  threshold=calibration_of(config)[1])
    value = {}
    for name, graph in (("fp32", OnnxClassifier(folder / ONNX_FILE)), ("int8", int8)):
        logits = graph_logits(graph, enc, SCORE_BATCH, tokenizer.pad_token_id or 0,
                              config.num_labels)
        scores = score_logits(labels[labelled], logits[labelled], 0.0, 0, 0.0, how)
        value[name] = float(scores.metrics[METRIC_KEYS[metric]])
    return {"validation": {
        "split": "validation", "source": data.source, "rows": int(labelled.sum()),
        "metric": metric, f"{metric}_fp32": value["fp32"], f"{metric}_int8": value["int8"],
        f"{metric}_change": value["int8"] - value["fp32"]}}


def describe(record: dict[str, Any]) -> list[str]:
    """What export prints about the graphs it wrote (from the poolbert.json record)."""
    check = record["check"]
    lines = [f"ONNX: {record['file']} (inputs {', '.join(record['inputs'])}; ONNX Runtime vs "
             f"PyTorch: max |logit diff| {check['max_abs_logit_diff']:.1e} on {check['rows']} "
             "rows)"]
    int8 = record.get("int8")
    if int8:
        lines.append(f"int8: {int8['file']} (max |logit diff| vs PyTorch "
                     f"{int8['check']['max_abs_logit_diff']:.3f})")
        val = int8.get("validation")
        if val:
            m = val["metric"]
            lines.append(f"validation {m} on {val['rows']} rows: fp32 graph "
                         f"{val[m + '_fp32']:.4f}, int8 graph {val[m + '_int8']:.4f} "
                         f"(change {val[m + '_change']:+.4f})")
        else:
            lines.append(f"int8 change not measured: {int8.get('validation_note')}")
    return lines
