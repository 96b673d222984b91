"""A trained model as a Hub-ready folder, and that folder on the Hub.

`export_model` turns a run directory, a study directory (one head's best run) or a bare model
folder into a folder that plain transformers loads; `push` uploads such a folder. Applying a
model to new data is `poolbert.predict`, which finds and loads models through `sources`.

Which module owns what:

- `sources`: what a model is taken from (`resolve_source`, `pick_head`, `Source`), what training
  recorded (`training_info`), loading a model folder or an export (`load_classifier`), and the
  export folder's own file, poolbert.json (`EXPORT_INFO`).
- `convert`: the export itself: BertForSequenceClassification for `cls` on BERT, remote code for
  the other heads, and the reload check (`verify_export`).
- `card`: the model card (README.md), rendered from `model_card_template.md`.
- `push`: the upload, and the file listing a dry run shows.
"""

from .convert import export_model, verify_export
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
    "EXPORT_INFO", "Source", "TrainingInfo", "export_model", "folder_files", "human_size",
    "label_names", "load_classifier", "pick_head", "push", "resolve_source", "training_info",
    "verify_export",
]
