#!/usr/bin/env bash
# The accuracy studies in priority order. Resumable: rerun it and finished cells are
# skipped; several copies may run at once (per-cell lock files), e.g. one per core:
#   for w in 1 2; do nohup bash benchmarks/queue.sh > benchmarks/results/queue$w.log 2>&1 & done
# A study that needs a learning rate the lr-grid has not chosen yet skips those methods;
# the second pass picks them up.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python}
A="$PY benchmarks/accuracy.py"
for pass in 1 2; do
  $A --study variants                       # choose the StructLoRA default (1 seed, lr 2e-3)
  $A --study lr-grid                         # every method, same grid, seed 0, validation chooses
  $A --study main --seeds 5 --methods peft-lora,sl-default,sl-none,sl-no-ib,sl-no-coord  # the headline table
  $A --study main --seeds 3 --methods peft-dora,peft-adalora
  $A --study filters --seeds 3
  $A --study rank --seeds 3
  $A --study lr-grid-r16                     # r = 16 gets its own lr grid (seed 0)
  $A --study rank16-tuned --seeds 3
  $A --study amazon --seeds 3
  $A --study data --seeds 3
  $A --study data --seeds 3 --methods sl-no-coord,sl-no-ib   # which part costs at low data
  $A --study modules --seeds 3
  $A --study lr-grid-modules                 # the larger module sets get their own lr grid
  $A --study modules-tuned --seeds 3
  $A --study llama-lr-grid                   # SmolLM2's own lr grid (seed 0)
  $A --study llama --seeds 5
  $A --study llama-ablation --seeds 5          # sl-none, w/o coordinator, w/o IB at StructLoRA's SmolLM2 lr
done
