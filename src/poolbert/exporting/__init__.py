"""A trained model as a Hub-ready folder, and that folder on the Hub.

`export_model` turns a run directory, a study directory (one head's best run) or a bare model
folder into a folder that plain transformers loads; `push` uploads such a folder. Applying a
model to new data is `poolbert.prediction`, which finds and loads models through `sources`.

Which module owns what:

- `sources`: what a model is taken from (`resolve_source`, `pick_head`, `Source`), what training
  recorded (`training_info`), loading a model folder or an export (`load_classifier`), and the
  export folder's own file, poolbert.json (`EXPORT_INFO`).
- `convert`: the export itself: BertForSequenceClassification for `cls` on BERT, remote code for
  the other heads, and the reload check (`verify_export`).
- `card`: the model card (README.md), rendered from `model_card_template.md`.
- `onnx`: model.onnx (the classifier as one ONNX graph, checked against PyTorch), the int8 graph
  and its validation accuracy, and running a graph with ONNX Runtime (predict's onnxruntime
  backend).
- `push`: the upload, and the file listing a dry run shows.
"""

from .convert import export_model, verify_export
from .onnx import INT8_FILE, ONNX_FILE, OnnxClassifier, export_onnx, quantize_onnx
from .onnx import describe as describe_onnx
from .push import folder_files, human_size, push
from .sources import (
    EXPORT_INFO,
    Source,
    TrainingInfo,
    label_names,
    load_classifier,
    pick_head,
    resolve_source,
    training_info,
)

__all__ = [
    "EXPORT_INFO", "INT8_FILE", "ONNX_FILE", "OnnxClassifier", "Source", "TrainingInfo",
    "describe_onnx", "export_model", "export_onnx", "folder_files", "human_size", "label_names",
    "load_classifier", "pick_head", "push", "quantize_onnx", "resolve_source", "training_info",
    "verify_export",
]
