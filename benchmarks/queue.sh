#!/usr/bin/env bash
# The accuracy studies in priority order (smallest useful first). Resumable: rerun it
# and finished cells are skipped; several copies may run at once (per-cell lock files).
#   nohup bash benchmarks/queue.sh > benchmarks/results/queue.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python}
A="$PY benchmarks/accuracy.py"
# first: isolate the IB filter and the coupling at the fixed lr (see BENCHMARKS.md, "Findings")
$A --study pilot --seeds 1 --methods sl-no-coord
$A --study variants --names vib+laplacian@0.1+warmup
$A --study pilot --seeds 1 --methods sl-no-ib
$A --study lr-grid --methods peft-lora
$A --study pilot --seeds 2 --methods peft-lora,sl-no-coord,sl-none
$A --study pilot --seeds 3
$A --study lr-grid --methods sl-default,sl-no-coord
$A --study variants --seeds 1
$A --study main --seeds 3 --methods peft-lora,sl-default,sl-none
$A --study lr-grid --methods sl-no-ib,peft-dora,peft-adalora
$A --study main --seeds 3
$A --study filters --seeds 3
$A --study rank --seeds 3
$A --study data --seeds 3
$A --study main --seeds 5
$A --study amazon --seeds 3
$A --study modules --seeds 3
$A --study llama --seeds 1
