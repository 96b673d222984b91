"""`poolbert predict MODEL`: label a csv/tsv/jsonl file or a GLUE split with a trained model."""

from __future__ import annotations

import argparse

from ..config import PRECISIONS
from ..text import comma_list
from .common import quiet_libraries


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict labels for a file or a GLUE split",
        description="Predict with a run directory, a study directory (--head), a model folder or "
        "an exported folder. Either --input FILE --output FILE (csv, tsv or jsonl, by extension; "
        "the input may also be json or parquet, read in chunks) or --task TASK --split SPLIT. "
        "Output rows: the input's id column if any, the predicted label name and one "
        "prob_<label> column per label.",
    )
    parser.add_argument("model", help="run directory, study directory, model or exported folder")
    parser.add_argument("--head", default="best", help="for a study directory: which head "
                        "(default: best)")
    source = parser.add_argument_group("input")
    source.add_argument("--input", help="csv, tsv, jsonl, json or parquet file with one or two "
                        "text columns")
    source.add_argument("--task", help="GLUE task to predict a split of (rte, mnli, ...)")
    source.add_argument("--split", default="test", choices=["test", "validation", "train"],
                        help="split of --task (default: test)")
    source.add_argument("--data-dir", help="local folder with the task's files (default: "
                        "$POOLBERT_DATA_DIR/glue/<task>, else the Hub)")
    parser.add_argument("--output", help="predictions file (csv, tsv or jsonl, by extension)")
    parser.add_argument("--glue-submission", help="also write the GLUE server's file (e.g. "
                        "RTE.tsv: index<TAB>prediction); needs --task and --split test")
    parser.add_argument("--text-columns", help="one or two comma-separated columns (default: the "
                        "model's training columns, else the task preset's, else text or "
                        "sentence1,sentence2)")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per batch (default: 64)")
    parser.add_argument("--max-length", type=int, help="max tokens per example (default: the "
                        "training run's, else 128)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default: auto)")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                        help="what runs the model: torch (default), or onnxruntime with the ONNX "
                        "graph of a folder exported with --onnx")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="backend torch: auto (default: bf16 autocast on a GPU with bf16 and "
                        "on a CPU that computes bf16 natively, fp16 on other GPUs, else fp32), "
                        "fp32, bf16, fp16")
    parser.add_argument("--onnx-file", help="with --backend onnxruntime: the graph in the folder "
                        "(default: model.onnx; model.int8.onnx for the int8 one)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import api

    quiet_libraries(args.quiet)
    rows = api.predict(args.model, input=args.input, output=args.output, task=args.task,
                       split=args.split, data_dir=args.data_dir,
                       glue_submission=args.glue_submission,
                       text_columns=comma_list(args.text_columns) or None,
                       batch_size=args.batch_size, max_length=args.max_length,
                       device=args.device, head=args.head, backend=args.backend,
                       onnx_file=args.onnx_file, precision=args.precision,
                       overwrite=args.overwrite, quiet=args.quiet)
    if args.input:
        print(f"wrote {rows} predictions to {args.output}")
    else:
        written = " and ".join(str(p) for p in (args.output, args.glue_submission) if p)
        print(f"wrote {rows} {args.task} {args.split} predictions to {written}")
    return 0
