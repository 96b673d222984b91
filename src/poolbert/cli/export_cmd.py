"""`poolbert export SOURCE --to DIR`: a Hub-ready folder that plain transformers loads."""

from __future__ import annotations

import argparse

from .common import quiet_libraries


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="write a Hub-ready model folder (weights, config, tokenizer, code, card)",
        description="Export a run directory, a study directory (one head's best run) or a model "
        "folder as a folder that AutoModelForSequenceClassification loads: safetensors weights, "
        "config with label names, tokenizer, model card (README.md) and, for heads other than "
        "cls on BERT, the modelling code (trust_remote_code=True). The export is reloaded and "
        "checked weight by weight before it is put in place.",
    )
    add_source_flags(parser)
    parser.add_argument("--to", required=True, help="folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --to folder")
    parser.add_argument("--repo-id", help="Hub repo id (user/name) for the card's usage snippet")
    parser.add_argument("--onnx", action="store_true",
                        help="also write model.onnx: the whole classifier as one ONNX graph "
                        "(dynamic batch and sequence axes), checked against PyTorch to 1e-4")
    parser.add_argument("--quantize", action="store_true",
                        help="with --onnx: also model.int8.onnx (dynamic int8), and both graphs' "
                        "accuracy on the training run's validation split")
    parser.set_defaults(handler=run)


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    """SOURCE, --head and --license: shared with `push`."""
    parser.add_argument("source", help="run directory (poolbert train), study directory "
                        "(poolbert tune) or model folder")
    parser.add_argument("--head", default="best",
                        help="for a study: the head to export; 'best' (default) picks the best "
                        "seed mean in summary.json, else the best tuning value")
    parser.add_argument("--license", default="apache-2.0",
                        help="license in the model card metadata (default: apache-2.0)")


def run(args: argparse.Namespace) -> int:
    from .. import api
    from ..exporting import EXPORT_INFO, describe_onnx, folder_files, human_size
    from ..files import read_json

    quiet_libraries(True)
    out = api.export(args.source, to=args.to, head=args.head, overwrite=args.overwrite,
                     license=args.license, repo_id=args.repo_id, onnx=args.onnx,
                     quantize=args.quantize)
    files = folder_files(out)
    total = human_size(sum(size for _, size in files))
    print(f"exported {len(files)} files ({total}) to {out}: {', '.join(n for n, _ in files)}")
    if args.onnx:
        for line in describe_onnx(read_json(out / EXPORT_INFO)["onnx"]):
            print(line)
    return 0
