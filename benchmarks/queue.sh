#!/usr/bin/env bash
# The accuracy studies in priority order (smallest useful first). Resumable: rerun it
# and finished cells are skipped. Run in the background:
#   nohup bash benchmarks/queue.sh > benchmarks/results/queue.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python}
A="$PY benchmarks/accuracy.py"
$A --study lr-grid --methods peft-lora,sl-default
$A --study main --seeds 3 --methods peft-lora,sl-default,sl-none
$A --study variants --seeds 1
$A --study lr-grid --methods sl-no-ib,sl-no-coord,peft-dora,peft-adalora
$A --study main --seeds 3
$A --study filters --seeds 3
$A --study rank --seeds 3
$A --study data --seeds 3
$A --study main --seeds 5
$A --study amazon --seeds 3
$A --study modules --seeds 3
$A --study llama --seeds 1
