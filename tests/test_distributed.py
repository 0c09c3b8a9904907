"""Two-process DDP (gloo, CPU) under torchrun: `structlora train`, train_run, HF Trainer, Accelerate.

One torchrun launch runs, on 2 ranks of 4 examples each, a tiny BERT through
`structlora train` (learned gates, Laplacian coordinator), then `train_run` with
VIB gates, pruning and a GCN coordinator, then StructLoRATrainer and an
Accelerate loop (GCN with a warm-up, so its parameters are unused at first).
Every rank dumps its final tensors. A single process then trains the first
configuration on the same global batches (8 examples per step).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from structlora.run import RunConfig
from structlora import StructLoRAConfig
from tests.run_assets import REPO, make_assets, run_args, subprocess_env

# learned gates (sigmoid, no IB penalty: its HSIC estimate depends on the batch split)
# and the parameter-free coordinator: what one process computes on the global batch
CLI_LORA = ["--bottleneck", "hsic", "--beta", "0", "--coordinator", "laplacian", "--lam", "0.1",
            "--refresh-every", "2", "--lr", "0.01", "--epochs", "2"]
# everything stateful at once: noisy VIB gates, pruning, a learned GCN coordinator
GCN_LORA = dict(r=4, target_modules=["query", "value"], modules_to_save=["classifier"], bottleneck="vib",
                coordinator="gcn", lam=0.1, refresh_every=2, prune_after=4, prune_every=2, target_rank=2)


def _dump(model, out: Path, name: str) -> None:
    from structlora.adapters.io import save_tensors

    tensors = {**model.adapter_state(), **model.training_state()[0]}
    save_tensors(tensors, out / f"{name}-rank{os.environ['RANK']}.safetensors", "a test dump")


def _worker(assets: Path, out: Path) -> int:
    """Run under torchrun: `structlora train`, then a GCN run through train_run; each rank dumps its state."""
    import structlora.run as run_module
    from structlora.cli import main
    from structlora.distributed import init_from_env

    init_from_env()
    train_run_ = run_module.train_run

    def dumping(*args, **kwargs):
        metrics = train_run_(*args, **kwargs)
        _dump(metrics["model"], out, "cli")
        return metrics

    run_module.train_run = dumping
    code = main(run_args(assets, out / "run", "--batch-size", "4", "--checkpoint-every", "4", *CLI_LORA))
    run = RunConfig(model=str(assets / "model"), data=str(assets / "data.jsonl"), train_size=32, max_length=8,
                    batch_size=4, epochs=2, lr=0.01, progress=False, eval_test=False)
    _dump(train_run_(run, StructLoRAConfig(**GCN_LORA))["model"], out, "gcn")
    _dump(_hf_trainer_run(assets, out), out, "trainer")
    _dump(_accelerate_run(assets), out, "accelerate")
    _dump(_nan_on_rank1_run(assets, out), out, "nan")
    return code


def _nan_on_rank1_run(assets: Path, out: Path):
    """fit() with a NaN loss on rank 1 only, at step 3: every rank must skip that step."""
    from structlora import make_optimizer
    from structlora.distributed import rank, wrap_ddp
    from structlora.training import fit

    model = _gcn_model(assets)
    calls = []

    def poison(module, inputs, output):
        calls.append(1)
        if rank() == 1 and len(calls) == 3:
            return output * float("nan")

    model.base_model.classifier.register_forward_hook(poison)
    loader = torch.utils.data.DataLoader(_rows(48), batch_size=4,
                                         sampler=torch.utils.data.DistributedSampler(_rows(48), shuffle=False))
    history = fit(wrap_ddp(model), make_optimizer(model, 1e-2), loader, epochs=1, progress=False)
    (out / f"nan-history-rank{rank()}.json").write_text(json.dumps([bool(r.get("skipped")) for r in history]))
    return model


def _gcn_model(assets: Path):
    from transformers import AutoModelForSequenceClassification

    from structlora import wrap

    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(assets / "model")
    return wrap(base, StructLoRAConfig(**{**GCN_LORA, "coord_warmup": 2}))  # coordinator unused at first


def _rows(n: int = 32) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(2, 14, (5,), generator=g), "attention_mask": torch.ones(5, dtype=torch.long),
             "labels": torch.tensor(i % 2)} for i in range(n)]


def _hf_trainer_run(assets: Path, out: Path):
    from transformers import TrainingArguments

    from structlora.trainer import StructLoRATrainer

    model = _gcn_model(assets)
    args = TrainingArguments(output_dir=str(out / "hf"), per_device_train_batch_size=4, max_steps=6, learning_rate=1e-2,
                             use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True)
    StructLoRATrainer(model=model, args=args, train_dataset=_rows()).train()
    return model


def _accelerate_run(assets: Path):
    from accelerate import Accelerator

    from structlora import make_optimizer
    from structlora.distributed import sync_coordinator_grads

    accelerator = Accelerator(cpu=True)
    model = _gcn_model(assets)
    loader = torch.utils.data.DataLoader(_rows(), batch_size=4)
    ddp, opt, loader = accelerator.prepare(model, make_optimizer(model, 1e-2), loader)
    for batch in loader:
        loss = model.loss(ddp(**batch).loss, batch)
        accelerator.backward(loss)
        sync_coordinator_grads(model)
        opt.step(); model.step(); opt.zero_grad()
    return model


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    assets = make_assets(root)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tests.test_distributed", str(assets), str(root)]
    done = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return assets, root


def _load(root: Path, name: str, rank: int) -> dict:
    return load_file(str(root / f"{name}-rank{rank}.safetensors"))


@pytest.mark.parametrize("name", ["cli", "gcn", "trainer", "accelerate", "nan"])
def test_ranks_hold_identical_parameters_gates_and_graph(two_ranks, name):
    _, root = two_ranks
    r0, r1 = _load(root, name, 0), _load(root, name, 1)
    assert r0.keys() == r1.keys()
    assert any(".gate." in k for k in r0) and "coordination.graph.edge_index" in r0
    assert "coordination.grad_sketches" in r0
    if name != "cli":
        assert any(k.startswith("__coordinator__.") for k in r0)
        assert any(k.endswith("gate.pruned") and bool(r0[k].any()) for k in r0)  # pruning happened
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key  # bit for bit: DDP averages, then identical updates
    if name == "nan":  # a non-finite loss on one rank is skipped by all
        skipped = [json.loads((root / f"nan-history-rank{r}.json").read_text()) for r in (0, 1)]
        assert skipped[0] == skipped[1] == [False, False, True, False, False, False]
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 8 and metrics["replica_max_abs_diff"] == 0.0


def _one_process_reference(assets: Path):
    """train_run's recipe in one process, with a 1-replica DistributedSampler: epoch by epoch
    the same order as the two ranks' shards, so each batch is the union of theirs."""
    from torch.utils.data import DataLoader, DistributedSampler

    from structlora import make_optimizer, wrap
    from structlora.data import load_text_data
    from structlora.models import load_classifier
    from structlora.run import _linear_schedule, seed_everything
    from structlora.training import TextClassificationCollator, fit

    data = load_text_data(str(assets / "data.jsonl"), 32)
    seed_everything(0)
    base, tok = load_classifier(str(assets / "model"), 2)
    model = wrap(base, StructLoRAConfig(r=4, target_modules=["query", "value"], modules_to_save=["classifier"],
                                        bottleneck="hsic", beta=0.0, coordinator="laplacian", lam=0.1,
                                        refresh_every=2))
    items = list(zip(*data.train))
    loader = DataLoader(items, batch_size=8, sampler=DistributedSampler(items, 1, 0, shuffle=True, seed=0),
                        collate_fn=TextClassificationCollator(tok, 8))
    opt = make_optimizer(model, 0.01)
    fit(model, opt, loader, epochs=2, scheduler=_linear_schedule(opt, 8, 0.06), progress=False)
    return model


def test_two_processes_match_one_process_on_the_same_global_batch(two_ranks):
    assets, root = two_ranks
    ranked = _load(root, "cli", 0)
    model = _one_process_reference(assets)
    single = {**model.adapter_state(), **model.training_state()[0]}
    assert single.keys() == ranked.keys()
    for key in ("coordination.graph.edge_index", "coordination.graph.edge_type"):
        assert torch.equal(single[key], ranked[key]), key  # the same layer graph
    diffs = {k: (single[k].double() - ranked[k].double()).abs().max().item() for k in single if single[k].numel()}
    print(f"2-process vs 1-process, max abs diff: {max(diffs.values()):.3g} ({max(diffs, key=diffs.get)})")
    # float32; the runs differ in summation order only (two per-rank means averaged
    # by all-reduce vs one mean of 8). Adam's first steps scale a gradient element
    # by 1/(|g|+eps), so rounding in near-zero elements grows to ~1e-6 (measured
    # 3e-6 after 8 steps); 1e-4 is still 100x below one step of lr=1e-2.
    assert max(diffs.values()) < 1e-4, diffs


def test_checkpoint_of_two_ranks_is_refused_by_one_process(two_ranks):
    _, root = two_ranks
    from structlora.resume import find_checkpoint
    from structlora.training import make_optimizer
    from structlora.resume import load_checkpoint
    from structlora.model import load

    ckpt = find_checkpoint(root / "run-checkpoints")
    assert ckpt.name == "step-00000008"
    meta = json.loads((ckpt / "training_state.json").read_text())
    assert meta["world_size"] == 2 and set(meta["rng"]) == {"0", "1"}
    from transformers import AutoModelForSequenceClassification

    model = load(AutoModelForSequenceClassification.from_pretrained(root / "model"), ckpt / "model")
    with pytest.raises(ValueError, match="written by 2 process"):
        load_checkpoint(ckpt, model, make_optimizer(model))


if __name__ == "__main__":
    raise SystemExit(_worker(Path(sys.argv[1]), Path(sys.argv[2])))
