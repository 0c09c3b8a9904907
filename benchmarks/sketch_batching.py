"""Before/after of batching the node sketches: the per-node loop vs ``Sketcher.node_sketches``.

    python benchmarks/sketch_batching.py

Synthetic LoRA factors (``refresh_cost.make_layers``: N adapted layers, r = 8, k = 16),
one torch thread. Times forward + backward of ``sum(x)`` for the per-node loop
(``torch.stack([sketcher.sketch(i) ...])``, what ``node_sketches`` did before) and
for the batched ``node_sketches``; median and IQR of ``--reps`` after a warm-up, the
two interleaved. Also records their max abs difference. Appends to
``benchmarks/results/sketch_batching.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import environment  # noqa: E402
from benchmarks.refresh_cost import make_layers, median_ms  # noqa: E402
from structlora.graph import Sketcher  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "sketch_batching.jsonl"
POINTS = [(12, 384, None), (224, 384, None), (224, 4096, None), (224, 4096, 11008)]


def measure(n: int, d: int, d_ff: int | None, reps: int) -> dict:
    torch.manual_seed(0)
    sketcher = Sketcher(make_layers(n, d, d_ff, 8), k=16)

    def loop():
        torch.stack([sketcher.sketch(i) for i in range(n)]).sum().backward()

    def batched():
        sketcher.node_sketches().sum().backward()

    with torch.no_grad():
        diff = (sketcher.node_sketches() - torch.stack([sketcher.sketch(i) for i in range(n)])).abs().max()
    loop_ms, loop_iqr = median_ms(loop, reps)
    batched_ms, batched_iqr = median_ms(batched, reps)
    return {"N": n, "d": d, "d_ff": d_ff, "loop_ms": loop_ms, "loop_iqr_ms": loop_iqr, "batched_ms": batched_ms,
            "batched_iqr_ms": batched_iqr, "speedup": loop_ms / batched_ms, "max_abs_diff": float(diff)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for n, d, d_ff in POINTS:
        row = {**measure(n, d, d_ff, args.reps), "env": environment()}
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"N={n} d={d} d_ff={d_ff}: loop {row['loop_ms']:.1f} ms, batched {row['batched_ms']:.1f} ms "
              f"({row['speedup']:.2f}x), max |diff| {row['max_abs_diff']:.1e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
