"""`poolbert push SOURCE --repo-id user/name`: export and upload to the Hugging Face Hub.

The token comes from HF_TOKEN or the saved login (`hf auth login`), never from a flag: a flag
would land in the shell history.
"""

from __future__ import annotations

import argparse

from .common import quiet_libraries
from .export_cmd import add_source_flags


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push", help="export a model and upload it to the Hugging Face Hub",
        description="Export SOURCE (a run, a study head or a model folder; an exported folder is "
        "uploaded as it is) into a temporary folder, create the Hub repo if needed and upload "
        "it. The token is read from HF_TOKEN or the saved login (`hf auth login`).",
    )
    add_source_flags(parser)
    parser.add_argument("--repo-id", required=True, help="Hub repository, e.g. user/bert-rte")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", help="branch to push to (created if missing; default main)")
    parser.add_argument("--commit-message", help="commit message (default: Upload model with "
                        "poolbert)")
    parser.add_argument("--dry-run", action="store_true", help="build and check the folder, list "
                        "the files that would be uploaded; no token or network needed")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import api

    quiet_libraries(True)
    api.push(args.source, repo_id=args.repo_id, private=args.private, revision=args.revision,
             commit_message=args.commit_message, dry_run=args.dry_run, head=args.head,
             license=args.license)
    return 0
