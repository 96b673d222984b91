"""The predict stage: a model (poolbert's or an exported one) applied to a file or a GLUE split.

`predict_file` streams a table in chunks (read by `poolbert.tables`, texts checked by
`data.texts_of`); `predict_split` scores a GLUE split and can write the GLUE server's submission
file. Models are found and loaded as `poolbert export` finds them (`exporting.sources`).

A backend runs the model and gives logits only: `TorchBackend` (the PyTorch model) or
`OnnxBackend` (an export's ONNX graph in ONNX Runtime, `--backend onnxruntime`);
`probabilities` turns logits into what predict writes, whichever backend made them.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedModel

from .config import DataConfig
from .data import (
    GLUE_TASKS,
    Encoded,
    TaskSpec,
    TextSplit,
    encode,
    load_data,
    task_spec,
    texts_of,
)
from .device import check_precision, resolve_device, resolve_precision
from .errors import PoolbertError
from .exporting.onnx import ONNX_FILE, OnnxClassifier, graph_logits, load_graph
from .exporting.sources import (
    Source,
    TrainingInfo,
    label_names,
    load_classifier,
    resolve_source,
    training_info,
)
from .files import atomic_open
from .metrics import probabilities
from .model import calibration_of, problem_of
from .scoring import ScoreOptions, predict_logits
from .tables import check_output_file, check_readable, check_writable, open_table, read_chunks

# the first of these in the input is copied into the predictions, so rows can be matched up
PASSED_ID_COLUMNS = ("id", "idx", "index", "guid")
# the GLUE server wants label names for these tasks and 0/1 (the label's index) for the others
SUBMISSION_BY_NAME = ("rte", "mnli", "qnli")
DEFAULT_MAX_LENGTH = 128  # when neither the flag nor the training run gives one
SPLIT_CHUNK = 1024  # rows scored between progress updates for a GLUE split


BACKENDS = ("torch", "onnxruntime")


class Backend(Protocol):
    """What runs the model: tokenised rows in, logits out. Turning logits into what predict
    writes (metrics.probabilities with the model's temperature) is the same for every backend."""

    def logits(self, enc: Encoded) -> np.ndarray:
        """(N, C) float32 logits of `enc`'s rows in their order."""
        ...


@dataclass
class TorchBackend:
    """The PyTorch model on a device, scored as evaluation scores it (scoring.predict_logits),
    in a resolved precision (fp32, or bf16 autocast over the float32 weights)."""

    model: PreTrainedModel
    device: torch.device
    batch_size: int
    pad_id: int
    precision: str = "fp32"

    def logits(self, enc: Encoded) -> np.ndarray:
        how = ScoreOptions(self.device, self.precision, self.pad_id, self.batch_size,
                           problem_type=problem_of(self.model.config))
        return predict_logits(self.model, enc, how)[0]


@dataclass
class OnnxBackend:
    """An exported ONNX graph (model.onnx or model.int8.onnx) run by ONNX Runtime."""

    graph: OnnxClassifier
    batch_size: int
    pad_id: int
    num_labels: int

    def logits(self, enc: Encoded) -> np.ndarray:
        return graph_logits(self.graph, enc, self.batch_size, self.pad_id, self.num_labels)


@dataclass
class Predictor:
    """A loaded classifier (any backend) plus what it needs to score texts: its labels, its
    problem type and the calibration stored in its config."""

    backend: Backend
    tokenizer: Any
    labels: list[str]
    max_length: int
    problem_type: str = "single_label"
    temperature: float = 1.0
    threshold: float = 0.5  # multi-label

    @classmethod
    def load(cls, source: Source, options: PredictOptions) -> Predictor:
        o = options
        length = o.max_length or training_info(source).max_length or DEFAULT_MAX_LENGTH
        if length < 8:
            raise PoolbertError(f"--max-length must be at least 8, got {length}")
        if o.batch_size < 1:
            raise PoolbertError(f"--batch-size must be positive, got {o.batch_size}")
        if o.backend not in BACKENDS:
            raise PoolbertError(f"--backend must be one of {', '.join(BACKENDS)}, got {o.backend!r}")
        if o.onnx_file and o.backend != "onnxruntime":
            raise PoolbertError("--onnx-file needs --backend onnxruntime")
        if o.precision != "auto" and o.backend == "onnxruntime":
            raise PoolbertError("--precision is for --backend torch (an ONNX graph computes in "
                                "the precision it was exported in)")
        dev = resolve_device(o.device)
        backend: Backend
        if o.backend == "onnxruntime":
            graph, tokenizer, config = load_graph(source.model_dir, o.onnx_file or ONNX_FILE, dev)
            backend = OnnxBackend(graph, o.batch_size, tokenizer.pad_token_id or 0,
                                  config.num_labels)
        else:
            precision = resolve_precision(o.precision, dev)
            check_precision(precision, dev)
            model, tokenizer = load_classifier(source.model_dir)
            config = model.config
            backend = TorchBackend(model.to(dev), dev, o.batch_size, tokenizer.pad_token_id or 0,
                                   precision)
        return cls(backend, tokenizer, label_names(config), length, problem_of(config),
                   *calibration_of(config))

    def probs(self, texts_a: list[str], texts_b: list[str] | None) -> np.ndarray:
        """(N, C) calibrated class probabilities (the model's temperature), or for regression
        the predicted values (N, 1), in input order."""
        unlabelled = {"multi_label": np.full((len(texts_a), len(self.labels)), -1.0),
                      "regression": np.full(len(texts_a), np.nan)}.get(
            self.problem_type, np.full(len(texts_a), -1, dtype=np.int64))
        split = TextSplit("predict", texts_a, texts_b, unlabelled, np.arange(len(texts_a)))
        logits = self.backend.logits(encode(self.tokenizer, split, self.max_length))
        return probabilities(logits, self.problem_type, self.temperature)

    def frame(self, probs: np.ndarray) -> pd.DataFrame:
        """The prediction (a label's name; the names of the labels at or above the model's
        threshold joined by `|` for multi-label; a number for regression) and one
        prob_<label> column per label."""
        if self.problem_type == "regression":
            return pd.DataFrame({"prediction": probs[:, 0].astype(np.float64).round(6)})
        if self.problem_type == "multi_label":
            chosen = ["|".join(n for n, p in zip(self.labels, row, strict=True)
                               if p >= self.threshold) for row in probs]
            out = pd.DataFrame({"prediction": chosen})
        else:
            out = pd.DataFrame({"prediction": [self.labels[i] for i in probs.argmax(axis=1)]})
        for j, name in enumerate(self.labels):
            out[f"prob_{name}"] = probs[:, j].astype(np.float64).round(6)
        return out


@dataclass(frozen=True)
class PredictOptions:
    """How to predict, whatever the input: `poolbert predict`'s shared flags."""

    text_columns: list[str] | None = None  # None: the training run's, else the task's
    batch_size: int = 64
    max_length: int | None = None  # None: the training run's, else 128
    device: str = "auto"
    head: str = "best"  # for a study directory
    overwrite: bool = False
    quiet: bool = False
    backend: str = "torch"  # or "onnxruntime": an export's ONNX graph
    onnx_file: str | None = None  # the graph in the folder (None: model.onnx)
    precision: str = "auto"  # torch backend: as a run's --precision (device.resolve_precision)


def predict_file(
    model: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    options: PredictOptions = PredictOptions(),
    chunk_size: int = 4096,
) -> int:
    """Predict every row of a table file into a csv/tsv/jsonl file; returns the number of rows."""
    o = options
    input_path, output_path = Path(input_path), Path(output_path)
    check_readable(input_path)  # before the model is read; read_chunks checks again, lazily
    if output_path.resolve() == input_path.resolve():
        raise PoolbertError(f"{output_path}: output would overwrite the input")
    check_writable(output_path, o.overwrite)
    source = resolve_source(model, o.head)
    chunks = read_chunks(input_path, chunk_size)
    first = next(chunks, None)  # columns are checked before the model is loaded
    if first is None or len(first) == 0:
        raise PoolbertError(f"{input_path}: no rows")
    columns = _file_text_columns(o.text_columns, training_info(source), first, input_path)
    id_column = next((c for c in PASSED_ID_COLUMNS if c in first.columns), None)
    predictor = Predictor.load(source, o)
    rows = 0
    with open_table(output_path) as write, _progress(o.quiet) as bar:
        for chunk in itertools.chain([first], chunks):
            texts = [texts_of(chunk[c], c, str(input_path), rows) for c in columns]
            out = predictor.frame(predictor.probs(texts[0], texts[1] if len(texts) > 1 else None))
            if id_column is not None:
                out.insert(0, id_column, chunk[id_column].to_numpy())
            write(out)
            rows += len(chunk)
            bar.update(len(chunk))
    return rows


def _file_text_columns(given: list[str] | None, info: TrainingInfo, chunk: pd.DataFrame,
                       path: Path) -> list[str]:
    """--text-columns, else the training columns, else the task preset's, else text / a pair."""
    columns = given or info.text_columns
    if not columns and info.task in GLUE_TASKS:
        columns = GLUE_TASKS[info.task].text_columns
    if not columns:
        found = set(chunk.columns)
        columns = (["text"] if "text" in found else
                   ["sentence1", "sentence2"] if {"sentence1", "sentence2"} <= found else None)
    present = ", ".join(map(str, chunk.columns))
    if not columns:
        raise PoolbertError(f"{path}: no text column found (columns present: {present}); "
                            "give --text-columns")
    if not 1 <= len(columns) <= 2:
        raise PoolbertError(f"--text-columns takes one or two columns, got {columns}")
    for column in columns:
        if column not in chunk.columns:
            raise PoolbertError(f"{path}: missing column {column!r} (columns present: {present});"
                                " give --text-columns")
    return list(columns)


def predict_split(
    model: str | os.PathLike,
    task: str,
    split: str = "test",
    output_path: str | os.PathLike | None = None,
    glue_submission: str | os.PathLike | None = None,
    data_dir: str | None = None,
    options: PredictOptions = PredictOptions(),
) -> int:
    """Predict a split of a GLUE task; writes predictions and/or a GLUE server submission file."""
    o = options
    spec = _check_split_outputs(task, split, output_path, glue_submission, o.overwrite)
    source = resolve_source(model, o.head)
    info = training_info(source)
    text_columns = o.text_columns
    if text_columns is None and info.task == spec.name and info.text_columns:
        text_columns = list(info.text_columns)  # the columns the model was trained on
    data = load_data(DataConfig(task=spec.name, data_dir=data_dir, text_columns=text_columns))
    rows = {"train": data.train, "validation": data.validation, "test": data.test}[split]
    if rows is None:
        raise PoolbertError(f"no {split} split for {spec.name} in {data.source}")
    predictor = Predictor.load(source, o)
    if glue_submission is not None:
        _check_submission_labels(predictor.labels, spec.name)
    out = predictor.frame(_probs_with_progress(predictor, rows, o.quiet))
    out.insert(0, "idx", rows.ids)
    if data.problem_type == "regression":
        if not np.isnan(rows.labels).all():
            out.insert(1, "label", rows.labels.astype(np.float64))
    elif (rows.labels >= 0).any():
        out.insert(1, "label", [data.label_names[i] if i >= 0 else "" for i in rows.labels])
    if output_path is not None:
        with open_table(Path(output_path)) as write:
            write(out)
    if glue_submission is not None:
        write_glue_submission(Path(glue_submission), spec.name, rows.ids, out["prediction"])
    return len(rows)


def _check_split_outputs(task: str, split: str, output_path: str | os.PathLike | None,
                         glue_submission: str | os.PathLike | None, overwrite: bool) -> TaskSpec:
    """The task's spec, once the requested outputs are known to be writable (before any work)."""
    if output_path is None and glue_submission is None:
        raise PoolbertError("nothing to write: give --output and/or --glue-submission")
    spec = task_spec(task)
    if spec is None:
        raise PoolbertError("--task: give a GLUE task to predict a split of")
    if glue_submission is not None and split != "test":
        raise PoolbertError("--glue-submission needs --split test (the server scores test only)")
    if output_path is not None:
        check_writable(Path(output_path), overwrite)
    if glue_submission is not None:
        check_output_file(Path(glue_submission), overwrite)
    return spec


def _probs_with_progress(predictor: Predictor, rows: TextSplit, quiet: bool,
                         chunk: int = SPLIT_CHUNK) -> np.ndarray:
    parts = []
    with _progress(quiet, total=len(rows)) as bar:
        for start in range(0, len(rows), chunk):
            stop = start + chunk
            texts_b = rows.texts_b[start:stop] if rows.texts_b is not None else None
            parts.append(predictor.probs(rows.texts_a[start:stop], texts_b))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0, len(predictor.labels)))


def _check_submission_labels(labels: list[str], task: str) -> None:
    expected = GLUE_TASKS[task].label_names
    if sorted(labels) != sorted(expected):
        raise PoolbertError(f"the model's labels ({', '.join(labels)}) are not {task}'s "
                            f"({', '.join(expected)}); cannot write a GLUE submission")


def write_glue_submission(path: Path, task: str, ids: np.ndarray, predictions: Any) -> None:
    """The GLUE server's format: `index<TAB>prediction`, one line per test row, in file order."""
    spec = GLUE_TASKS[task]
    if spec.problem_type == "regression":  # STS-B: the predicted similarity itself
        values = [f"{float(p):.3f}" for p in predictions]
    else:
        values = [p if task in SUBMISSION_BY_NAME else str(spec.label_names.index(p))
                  for p in predictions]
    with atomic_open(path) as handle:
        handle.write("index\tprediction\n")
        for index, value in zip(ids, values, strict=True):
            handle.write(f"{int(index)}\t{value}\n")


def _progress(quiet: bool, total: int | None = None) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="rows", desc="predict", disable=quiet, leave=False)
