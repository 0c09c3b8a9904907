"""Cost of StructLoRA's graph machinery against the number of adapted layers N and width d.

    python benchmarks/refresh_cost.py            # full grid + the LLaMA-7B shape, ~2 min
    python benchmarks/refresh_cost.py --smoke    # one tiny point

Synthetic factors: N layers holding only LoRA factors ``A (r, d_in)``, ``B (d_out, r)``
(no base weight, so a LLaMA-7B shape fits in memory), r = 8, sketch k = 16, with
the library's own ``Sketcher``, ``GradientSketcher``, ``LayerGraphBuilder``
and coordinators. Timed parts (median of ``--reps`` after one warm-up):

- ``step_coord_ms``: what every training step adds: node sketches from the factors,
  coordinator forward, ``L_coord`` (+ ``L_den``), backward into the factors;
- ``refresh_ms``: what a refresh step adds: gradient-sketch EMA update + graph build
  (structural + semantic edges) from the node sketches the step already computed
  (as ``GraphCoordination.after_step`` does) and the gradient sketches; it works on
  ``(N, k^2)`` tensors only, so it does not depend on d;
- ``capture_ms``: the gradient-sketch hooks on a refresh step (extra forward/backward
  time with the hooks armed vs unarmed, T tokens); it is O(T k d) per layer by
  construction, and is paid once every ``refresh_every`` steps.

Appends one JSON line per point to ``benchmarks/results/refresh_cost.jsonl``
(finished points are skipped).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import environment  # noqa: E402
from structlora.adapters.gate import IdentityGate  # noqa: E402
from structlora.graph import (GradientSketcher, LayerGraphBuilder, Sketcher, coupling_losses,  # noqa: E402
                              resolve_coordinator)

RESULTS = Path(__file__).resolve().parent / "results" / "refresh_cost.jsonl"
LLAMA_TYPES = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
LAYOUTS = {12: (6, LLAMA_TYPES[0:3:2]), 56: (8, LLAMA_TYPES), 224: (32, LLAMA_TYPES)}  # N: (blocks, types)


class FactorLayer(nn.Module):
    """Only the adapter path ``s B A x`` of a LoRA layer (no frozen base weight)."""

    def __init__(self, d_in: int, d_out: int, r: int = 8):
        super().__init__()
        self.in_features, self.out_features, self.scaling = d_in, d_out, 2.0
        self.lora_A = nn.Parameter(torch.randn(r, d_in) / d_in**0.5)
        self.lora_B = nn.Parameter(torch.randn(d_out, r) * 1e-2)
        self.gate = IdentityGate(r)

    def forward(self, x):
        return self.scaling * (x @ self.lora_A.T) @ self.lora_B.T


def make_layers(n: int, d: int, d_ff: int | None, r: int) -> dict[str, FactorLayer]:
    blocks, types = LAYOUTS[n]
    layers = {}
    for b in range(blocks):
        for t in types:
            d_in, d_out = (d, d_ff) if d_ff and t in ("mlp.gate_proj", "mlp.up_proj") else \
                (d_ff, d) if d_ff and t == "mlp.down_proj" else (d, d)
            layers[f"model.layers.{b}.{t}"] = FactorLayer(d_in, d_out, r)
    return layers


def median_ms(fn, reps: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
    q = statistics.quantiles(times, n=4) if len(times) >= 4 else [min(times), 0, max(times)]
    return statistics.median(times), q[2] - q[0]


def measure(n: int, d: int, d_ff: int | None, coordinator: str, reps: int, tokens: int, k: int = 16, r: int = 8) -> dict:
    torch.manual_seed(0)
    layers = make_layers(n, d, d_ff, r)
    sketcher = Sketcher(layers, k=k)
    builder = LayerGraphBuilder.from_layers(layers)
    grads = GradientSketcher(layers, sketcher)
    coord = resolve_coordinator(coordinator, in_channels=k * k)
    learned = any(True for _ in coord.parameters())
    with torch.no_grad():
        graph = builder.build(sketcher.node_sketches())

    def step():
        x = sketcher.node_sketches()
        out = coupling_losses(x, coord, graph.edge_index, graph.edge_weight, 1.0 if learned else 0.0)
        scale = x.detach().pow(2).sum(1).mean() + 1e-12
        ((0.1 * out.coord + (out.denoise if learned else 0)) / scale).backward()

    with torch.no_grad():
        x_step = sketcher.node_sketches()  # the refresh reuses the step's sketches (GraphCoordination.after_step)
    captured = {i: torch.randn(k, k) for i in range(n)}  # what the hooks left (timed apart: capture_ms)

    def refresh():
        with torch.no_grad():
            grads._pending = dict(captured)
            grads.update()
            builder.build(x_step, grads.sketches())

    x_in = torch.randn(tokens, d)

    def fwd_bwd(armed: bool):
        grads.armed = armed
        sum(layer(x_in if layer.in_features == d else x_in.new_ones(tokens, layer.in_features)).sum()
            for layer in layers.values()).backward()
        grads._pending = {}

    step_ms, step_iqr = median_ms(step, reps)
    refresh_ms, refresh_iqr = median_ms(refresh, reps)
    on, _ = median_ms(lambda: fwd_bwd(True), max(3, reps // 4))
    off, _ = median_ms(lambda: fwd_bwd(False), max(3, reps // 4))
    grads.remove()
    return {"N": n, "d": d, "d_ff": d_ff, "r": r, "k": k, "coordinator": coordinator, "tokens": tokens,
            "edges": int(graph.edge_index.shape[1]), "step_coord_ms": step_ms, "step_coord_iqr_ms": step_iqr,
            "refresh_ms": refresh_ms, "refresh_iqr_ms": refresh_iqr, "capture_ms": on - off,
            "coordinator_params": sum(p.numel() for p in coord.parameters())}


def grid(smoke: bool) -> list[tuple]:
    if smoke:
        return [(12, 64, None, "laplacian")]
    points = [(n, d, None, c) for c in ("laplacian", "gat") for n in (12, 56, 224) for d in (384, 1024, 4096)]
    return points + [(224, 4096, 11008, c) for c in ("laplacian", "gat")]  # the LLaMA-7B shape


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--tokens", type=int, default=256, help="tokens per batch for the capture cost")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = args.results.with_name("smoke_refresh.jsonl") if args.smoke else args.results
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {line for line in path.read_text().splitlines()} if path.exists() else set()
    done_keys = {tuple(json.loads(l)[k] for k in ("N", "d", "d_ff", "coordinator")) for l in done if l.strip()}
    for n, d, d_ff, coord in tqdm(grid(args.smoke), desc="refresh cost"):
        if (n, d, d_ff, coord) in done_keys:
            continue
        row = {**measure(n, d, d_ff, coord, 3 if args.smoke else args.reps, 16 if args.smoke else args.tokens),
               "env": environment()}
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
        tqdm.write(f"N={n:4d} d={d:5d} d_ff={d_ff} {coord:9s} step {row['step_coord_ms']:.2f} ms  "
                   f"refresh {row['refresh_ms']:.2f} ms  capture {row['capture_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
