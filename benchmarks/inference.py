"""Inference checks: the merged StructLoRA model costs what the base model costs, and the
exported PEFT adapter gives the structlora logits.

    python benchmarks/inference.py --train-steps 20 --rounds 10

A StructLoRA model (the recommended default: VIB gate + Laplacian coupling) is
trained for ``--train-steps`` steps on movie reviews, so factors and gates are
non-trivial. Then, on ``--eval-examples`` test sentences:

- ``export_max_abs_diff``: max |logits| difference between the structlora model
  (eval mode) and ``peft.PeftModel.from_pretrained(fresh base, exported adapter)``;
- ``merge_max_abs_diff``: the same against ``merge_and_unload()``;
- latency: the merged model and a fresh base model, forward passes on the same
  batch, interleaved in ``--rounds`` rounds of ``--block`` passes; ratio of
  medians per round, reported as median and IQR.

Appends one JSON line to ``benchmarks/results/inference.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.accuracy import DEFAULT_SL  # noqa: E402
from benchmarks.harness import environment  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "inference.jsonl"


@torch.no_grad()
def logits(model, loader) -> torch.Tensor:
    model.eval()
    return torch.cat([model(**{k: v for k, v in b.items() if k != "labels"}).logits for b in loader])


def trained_structlora(model_name: str, steps: int):
    from structlora import StructLoRAConfig, wrap
    from structlora.data import load_sentiment
    from structlora.models import DEFAULT_HEADS, DEFAULT_TARGETS, load_classifier
    from structlora.training import fit, make_optimizer, text_loader

    torch.manual_seed(0)
    base, tok = load_classifier(model_name, 2)
    cfg = StructLoRAConfig(r=8, target_modules=DEFAULT_TARGETS[model_name], modules_to_save=DEFAULT_HEADS[model_name],
                           **DEFAULT_SL)
    model = wrap(base, cfg)
    data = load_sentiment("movie-reviews", steps * 16)
    fit(model, make_optimizer(model, 5e-3), text_loader(tok, *data.train, 16, 64, shuffle=True), 1, progress=False)
    return model, tok, data


def latency(a, b, batch: dict, rounds: int, block: int) -> dict:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    times = {"a": [[] for _ in range(rounds)], "b": [[] for _ in range(rounds)]}
    with torch.no_grad():
        for m in (a, b):
            m.eval()
            m(**inputs)  # warm-up
        for rnd in range(rounds):
            for key, m in (("a", a), ("b", b)) if rnd % 2 == 0 else (("b", b), ("a", a)):
                for _ in range(block):
                    t0 = time.perf_counter()
                    m(**inputs)
                    times[key][rnd].append(time.perf_counter() - t0)
    ratios = [statistics.median(x) / statistics.median(y) for x, y in zip(times["a"], times["b"])]
    q = statistics.quantiles(ratios, n=4)
    return {"latency_ratio_median": statistics.median(ratios), "latency_ratio_q1": q[0], "latency_ratio_q3": q[2],
            "merged_median_s": statistics.median(sum(times["a"], [])),
            "base_median_s": statistics.median(sum(times["b"], []))}


def main(argv: list[str] | None = None) -> int:
    from peft import PeftModel

    from structlora.models import load_classifier
    from structlora.training import text_loader

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm")
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--eval-examples", type=int, default=256)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--block", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok, data = trained_structlora(args.model, args.train_steps)
    texts, labels = (x[:args.eval_examples] for x in data.test)
    loader = text_loader(tok, texts, labels, 64, 64)
    ref = logits(model, loader)
    with tempfile.TemporaryDirectory() as tmp:
        model.export_peft(tmp)
        peft_model = PeftModel.from_pretrained(load_classifier(args.model, 2)[0], tmp)
        exported = logits(peft_model, loader)
    ranks = sum(model.effective_ranks().values())
    merged = model.merge_and_unload()
    row = {"model": args.model, "train_steps": args.train_steps, "eval_examples": len(texts),
           "effective_rank_total": ranks,
           "export_max_abs_diff": float((exported - ref).abs().max()),
           "merge_max_abs_diff": float((logits(merged, loader) - ref).abs().max()),
           "logit_scale": float(ref.abs().max()),
           **latency(merged, load_classifier(args.model, 2)[0], next(iter(loader)), args.rounds, args.block),
           "env": environment()}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "env"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
