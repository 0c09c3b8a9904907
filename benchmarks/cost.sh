#!/usr/bin/env bash
# Every cost benchmark, in sequence, on an otherwise idle machine (timings!):
#   nohup bash benchmarks/cost.sh > benchmarks/results/cost.log 2>&1 &
# Appends to refresh_cost.jsonl / step_time.jsonl / inference.jsonl; delete a file
# first to re-measure it from scratch.
set -eu
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python}
$PY benchmarks/sketch_batching.py
$PY benchmarks/refresh_cost.py --reps 10
$PY benchmarks/step_time.py --model minilm --rounds 12 --block 8
$PY benchmarks/inference.py --model minilm
$PY benchmarks/step_time.py --model smollm2-135m --rounds 8 --block 4 --mem-steps 3 --methods peft-lora,sl-default
