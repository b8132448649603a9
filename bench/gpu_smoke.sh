#!/usr/bin/env bash
# GPU smoke run: the tiny DAG on CUDA (device auto -> cuda, bf16) and the throughput benchmarks,
# on a CUDA machine whose image has torch/transformers/accelerate but not snakemake, datasets,
# faiss or bm25s. Those (bench/gpu_requirements.txt) come as wheels brought along in
# bench/wheels/ (fill it on a machine with the registries: `make gpu-wheels`, for Python 3.12 by
# default: `make gpu-wheels GPU_PYTHON=3.11` for another). Meant to finish in < 8 minutes.
#
#   bash bench/gpu_smoke.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-/tmp/relift-gpu-smoke}}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD/src"
PY=${PYTHON:-python3}

nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
if [ -d bench/wheels ]; then
  $PY -m pip install -q --no-index --find-links bench/wheels -r bench/gpu_requirements.txt \
    2>&1 | tail -3
fi

# 1. the tiny DAG on CUDA
WD="$OUT/tiny"
mkdir -p "$WD"
$PY -c "import sys; sys.path.insert(0, 'tests'); from helpers import fixture_tm_wheels; from pathlib import Path; fixture_tm_wheels(Path('$WD/fixture_wheels'))"
start=$(date +%s)
$PY -m snakemake -s "$PWD/Snakefile" -d "$WD" --cores 8 --configfile tests/configs/tiny.yaml \
  --config device=cuda threads=8 > "$OUT/tiny_dag.log" 2>&1 || { tail -40 "$OUT/tiny_dag.log"; exit 1; }
echo "tiny DAG on CUDA: $(( $(date +%s) - start )) s" | tee "$OUT/summary.txt"
grep -h "cuda\|bf16\|bfloat16" "$WD"/results/logs/*/*.log | head -20 >> "$OUT/summary.txt" || true

# 2. throughput against in-run baselines and the anchors of bench/ANCHORS.md
$PY bench/bench_phrase_table.py --n 200000 --nq 200000 --threads 8 | tee -a "$OUT/summary.txt"
if [ -f bench/bench_regpt_train.py ]; then
  $PY bench/bench_regpt_train.py --size anchor | tee -a "$OUT/summary.txt"
fi
# candidate generation on the tiny run's generator (the demo's when results/ holds one)
GEN=results/selfmem/tm_ende/generator/joint
[ -d "$GEN" ] || GEN="$WD/results/selfmem/tm_ende/generator/joint"
DATA=$(dirname "$GEN")/../../../data/tm/dev.jsonl
$PY bench/bench_candidates.py --generator "$GEN" --data "$DATA" \
  --memory "$(dirname "$GEN")/../memory/dev.txt" --n 64 --num-beams 8 | tee -a "$OUT/summary.txt" || true
