#!/usr/bin/env bash
# Every GPU row of the README's speed table in one command, on a bare GPU machine: one that has
# python3 with torch, transformers and accelerate, no network, and none of optuna, sqlalchemy,
# alembic, mako, colorlog or datasets. Prints one table (ratios, device, versions) at the end.
# It runs from a plain checkout with nothing carried: optuna and colorlog come from
# bench/wheels (pure Python; studies then use Optuna's journal file, no SQLAlchemy needed),
# without the embedded model a random stand-in of its shape is built, and without RTE pairs of
# its shape are written (speed only).
#
#   POOLBERT_WHEELS=DIR        wheels to install first (default .carry/wheels, if present, else
#                              bench/wheels where optuna is missing); bench/prepare_carry.sh
#                              fetches them where there is a network
#   POOLBERT_MODEL_DIR=DIR     the embedded model's folder, e.g. a float16 copy (loaded in
#                              float32); default .carry/minilm-f16, else the installed package;
#                              a folder without a config.json and tokenizer files is passed
#                              over, and with none left a random stand-in of its shape is built
#   POOLBERT_DATA_DIR=DIR      a folder holding glue/rte/*.parquet (default: shared/data, found
#                              beside or above this checkout; where there is none, pairs of
#                              RTE's sizes and lengths with random words, bench/rte_shaped.py)
#   POOLBERT_BENCH_ROWS, POOLBERT_BENCH_BUDGET_S   see bench/gpu.py (default: seven rows, most
#                              telling first, within 400 s: 8 minutes on an H100 with a minute
#                              to spare); exit status 1 when a row failed, the table written
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

wheels=${POOLBERT_WHEELS:-}
if [ -z "$wheels" ]; then
    if compgen -G ".carry/wheels/*.whl" >/dev/null; then
        wheels=.carry/wheels
    elif ! "$PY" -c "import optuna" 2>/dev/null; then
        wheels=bench/wheels
    fi
fi
if [ -n "$wheels" ]; then
    if ! compgen -G "$wheels/*.whl" >/dev/null; then
        echo "gpu.sh: POOLBERT_WHEELS=$wheels holds no .whl files" >&2
        exit 2
    fi
    site=$(mktemp -d)
    if "$PY" -m pip --version >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
            "$wheels"/*.whl || { echo "gpu.sh: cannot install the wheels in $wheels" >&2; exit 2; }
    else
        # no pip in this Python: a wheel is a zip of site-packages, so unpacking it installs it
        for wheel in "$wheels"/*.whl; do
            "$PY" -m zipfile -e "$wheel" "$site" ||
                { echo "gpu.sh: cannot unpack $wheel" >&2; exit 2; }
        done
    fi
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # poolbert from this checkout
export TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error HF_HUB_OFFLINE=1

data=""
if [ -n "${POOLBERT_DATA_DIR:-}" ] && [ ! -f "$POOLBERT_DATA_DIR/glue/rte/train.parquet" ]; then
    echo "gpu.sh: POOLBERT_DATA_DIR=$POOLBERT_DATA_DIR holds no glue/rte/train.parquet" >&2
    exit 2
fi
for root in "${POOLBERT_DATA_DIR:-}" shared/data ../shared/data ../../shared/data; do
    if [ -n "$root" ] && [ -f "$root/glue/rte/train.parquet" ]; then
        data="$root/glue/rte"
        break
    fi
done
# without RTE, bench/rte_shaped.py writes pairs of its sizes and lengths (speed only)
[ -n "$data" ] || echo "gpu.sh: no RTE data found: timing pairs shaped like RTE's instead" >&2

"$PY" -c "import optuna" 2>/dev/null || echo "gpu.sh: optuna is missing: the study rows will fail (set POOLBERT_WHEELS)" >&2
# gpu.py picks the model (POOLBERT_MODEL_DIR, .carry/minilm-f16, the package: the first with a
# config.json and tokenizer files, else a stand-in), runs the rows within the budget and exits
# 1 when a row failed
exec "$PY" bench/gpu.py ${data:+--data-dir "$(cd "$data" && pwd)"} "$@"
