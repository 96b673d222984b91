"""Data: the task's splits read and checked, tokenised once per max_length, batched.

    tasks    GLUE presets (text columns, label names, split names)
    sources  where the splits come from: files, a folder, $POOLBERT_DATA_DIR or the Hub
    labels   labels as files give them, to indices into the label names
    load     load_data: the splits checked row by row, subsampled; the holdout split
    tokens   TokenCache: each split tokenised once per max_length
    batches  batch order, padding widths, collation, the copy to the device
"""

from .batches import (
    bucket_width,
    collate,
    collate_blocks,
    eval_batches,
    to_device,
    train_batches,
)
from .load import ID_COLUMNS, LoadedData, TextSplit, load_data, stratified_holdout, texts_of
from .tasks import GLUE_TASKS, HUB_DATASET, TaskSpec, task_spec
from .tokens import Encoded, TokenCache, encode

__all__ = [
    "GLUE_TASKS", "HUB_DATASET", "ID_COLUMNS", "Encoded", "LoadedData", "TaskSpec", "TextSplit",
    "TokenCache", "bucket_width", "collate", "collate_blocks", "encode", "eval_batches", "load_data",
    "stratified_holdout", "task_spec", "texts_of", "to_device", "train_batches",
]
