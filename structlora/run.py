"""A complete fine-tuning run: data, model, StructLoRA, training, evaluation, artefacts.

Used by ``structlora train`` and the benchmarks. Everything a run writes goes
into one output directory, written atomically:

    metrics.json        test / validation accuracy, effective ranks, timings
    run_config.json     the RunConfig and the StructLoRAConfig
    train_log.jsonl     one line of loss terms per step
    checkpoint/         structlora checkpoint (structlora.load)
    adapter/            PEFT LoRA adapter (peft.PeftModel.from_pretrained)

With ``checkpoint_every`` the run also saves resumable checkpoints (structlora.resume)
into ``<output_dir>-checkpoints/`` (or ``checkpoint_dir``); ``train_run(..., resume=dir)``
continues from the newest one exactly as if the run had never stopped.
"""
from __future__ import annotations

import dataclasses
import json
import os
import math
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


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_at_least(lo: int, optional: bool = False):
    return lambda v: (optional and v is None) or (_is_int(v) and v >= lo)


# field -> (test, what is allowed)
_RULES = {
    "model": (lambda v: isinstance(v, str) and v != "", "use a model name, a local path or a hub id"),
    "data": (lambda v: isinstance(v, str) and v != "", "use a data set name or a local .jsonl/.csv/.tsv file"),
    "train_size": (_int_at_least(1, optional=True), "use None or an integer >= 1"),
    "epochs": (_int_at_least(1), "use an integer >= 1"),
    "max_steps": (_int_at_least(1, optional=True), "use None or an integer >= 1"),
    "batch_size": (_int_at_least(1), "use an integer >= 1"),
    "max_length": (_int_at_least(2), "use an integer >= 2"),
    "lr": (lambda v: _is_number(v) and v > 0, "use a positive finite learning rate"),
    "gate_lr": (lambda v: v is None or (_is_number(v) and v > 0), "use None or a positive finite learning rate"),
    "coord_lr": (lambda v: v is None or (_is_number(v) and v > 0), "use None or a positive finite learning rate"),
    "weight_decay": (lambda v: _is_number(v) and v >= 0, "use a finite number >= 0"),
    "warmup_ratio": (lambda v: _is_number(v) and 0 <= v < 1, "use 0 <= warmup_ratio < 1"),
    "seed": (lambda v: _is_int(v) and 0 <= v < 2**63, "use an integer in [0, 2**63)"),
    "threads": (_int_at_least(1, optional=True), "use None or an integer >= 1"),
    "eval_test": (lambda v: isinstance(v, bool), "use true or false"),
    "progress": (lambda v: isinstance(v, bool), "use true or false"),
    "checkpoint_every": (_int_at_least(1, optional=True), "use None (no checkpoints) or an integer >= 1"),
    "checkpoint_dir": (lambda v: v is None or (isinstance(v, str) and v != ""), "use None or a directory path"),
    "keep_checkpoints": (_int_at_least(1, optional=True), "use None (keep all) or an integer >= 1"),
    "max_bad_steps": (_int_at_least(1), "use an integer >= 1"),
    "device": (lambda v: v is None or _is_device(v), "use None (CUDA if available), 'cpu', 'cuda' or 'cuda:N'"),
}


def _is_device(v) -> bool:
    if not isinstance(v, str):
        return False
    try:
        torch.device(v)
    except (RuntimeError, ValueError):
        return False
    return True


@dataclass
class RunConfig:
    """What to train on and how long; the adapter itself is a StructLoRAConfig."""

    model: str = "minilm"  # offline default (minilm, smollm2-135m), local path or hub id
    data: str = "movie-reviews"  # movie-reviews, amazon-reviews, or a `datasets` name
    train_size: int | None = 2048  # first N training examples (None: the whole split)
    epochs: int = 2
    max_steps: int | None = None  # stop early after this many steps
    batch_size: int = 16  # per process: the global batch is world_size * batch_size
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
    checkpoint_every: int | None = None  # save a resumable checkpoint every N steps (None: never)
    checkpoint_dir: str | None = None  # where (None: <output_dir>-checkpoints)
    keep_checkpoints: int | None = 2  # newest checkpoints kept (None: all)
    max_bad_steps: int = 10  # consecutive non-finite steps (skipped) before the run stops
    device: str | None = None  # None: cuda:LOCAL_RANK when CUDA is available, else cpu

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            test, allowed = _RULES[f.name]
            _check(test(getattr(self, f.name)), f.name, getattr(self, f.name), allowed)


# fields a resumed run may change: they do not alter what is computed
RESUME_MUTABLE = {"threads", "progress", "eval_test", "checkpoint_every", "checkpoint_dir", "keep_checkpoints",
                  "max_bad_steps", "device"}


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
        # copies: PEFT appends to a config's modules_to_save in place
        return {"target_modules": list(DEFAULT_TARGETS[model_name]), "modules_to_save": list(DEFAULT_HEADS[model_name])}
    return {}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def train_run(run: RunConfig, lora: StructLoRAConfig, output_dir: str | os.PathLike | None = None,
              resume: str | os.PathLike | None = None) -> dict:
    """Fine-tune, evaluate and (if ``output_dir``) write every artefact; returns the metrics.

    Under ``torchrun`` every rank calls this (DDP, see docs/distributed.md); only
    rank 0 writes files. ``resume`` (a checkpoint, or a directory of them: the
    newest) continues an interrupted run with the same configuration.
    """
    from .distributed import init_from_env

    started = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    started = init_from_env() and started
    try:
        return _train_run(run, lora, output_dir, resume)
    finally:
        if started:
            torch.distributed.destroy_process_group()


def _train_run(run: RunConfig, lora: StructLoRAConfig, output_dir, resume) -> dict:
    from . import wrap
    from .data import load_text_data
    from .distributed import default_device, is_main_process, main_process_first, rank, world_size, wrap_ddp
    from .models import load_classifier
    from .training import evaluate, fit, make_optimizer, text_loader

    if resume is not None:
        resume = check_resume_config(resume, run, lora)
    if run.threads:
        torch.set_num_threads(run.threads)
    with main_process_first():  # rank 0 fills the download / conversion caches first
        data = load_text_data(run.data, run.train_size)
        seed_everything(run.seed)
        base, tok = load_classifier(run.model, data.num_labels)
    model = wrap(base, lora).to(torch.device(run.device) if run.device else default_device())
    if run.progress and is_main_process():
        model.print_trainable_parameters()
    if rank() > 0:  # every rank its own gate-noise / dropout stream; rank 0 matches one process
        torch.manual_seed(run.seed + rank())
    train = text_loader(tok, *data.train, run.batch_size, run.max_length, shuffle=True, seed=run.seed,
                        rank=rank(), world_size=world_size())
    opt = make_optimizer(model, run.lr, run.gate_lr, run.coord_lr, run.weight_decay)
    steps = run.epochs * len(train) if run.max_steps is None else min(run.max_steps, run.epochs * len(train))
    sched = _linear_schedule(opt, steps, run.warmup_ratio)
    t0 = time.perf_counter()
    history = fit(wrap_ddp(model), opt, train, run.epochs, sched, progress=run.progress, max_steps=run.max_steps,
                  max_bad_steps=run.max_bad_steps, checkpoints=_checkpoints(run, lora, output_dir, resume),
                  resume=resume)
    train_s = time.perf_counter() - t0
    metrics = _metrics(model, history, train_s)
    metrics["validation_accuracy"] = evaluate(model, text_loader(tok, *data.validation, 64, run.max_length))["accuracy"]
    test = text_loader(tok, *data.test, 64, run.max_length)
    metrics["test_accuracy"] = evaluate(model, test, progress=run.progress)["accuracy"] if run.eval_test else None
    if output_dir is not None and is_main_process():
        write_artifacts(model, run, lora, metrics, history, Path(output_dir))
    metrics["model"] = model; metrics["history"] = history
    return metrics


def _metrics(model, history: list[dict], train_s: float) -> dict:
    from .distributed import replica_divergence, world_size

    trainable, total = model.trainable_parameters()
    return {
        "steps": len(history),
        "skipped_steps": sum(1 for r in history if r.get("skipped")),
        "world_size": world_size(),
        "replica_max_abs_diff": replica_divergence(model),  # 0.0: every rank holds the same model
        "train_seconds": train_s,
        "seconds_per_step": train_s / max(len(history), 1),
        "trainable_params": trainable,
        "coordinator_params": model.coordinator_parameter_count(),
        "total_params": total,
        "effective_ranks": model.effective_ranks(),
        "final_loss_terms": history[-1] if history else {},
    }


def _checkpoints(run: RunConfig, lora: StructLoRAConfig, output_dir, resume):
    from .resume import CheckpointManager

    if run.checkpoint_every is None:
        return None
    directory = run.checkpoint_dir or (resume.parent if resume is not None else None)
    if directory is None and output_dir is None:
        raise ValueError("RunConfig.checkpoint_every is set but there is no checkpoint_dir and no output_dir; "
                         "give one of them")
    directory = directory or f"{output_dir}-checkpoints"
    return CheckpointManager(directory, run.checkpoint_every, run.keep_checkpoints,
                             extra_json={RUN_CONFIG_FILE: _run_config_json(run, lora)})


def _run_config_json(run: RunConfig, lora: StructLoRAConfig) -> dict:
    return {"run": dataclasses.asdict(run), "structlora": lora.to_dict()}


def read_run_config(checkpoint) -> dict:
    """``{"run": ..., "structlora": ...}`` saved with a checkpoint (or the newest in a directory)."""
    from .adapters.io import read_json
    from .resume import find_checkpoint

    path = find_checkpoint(checkpoint) / RUN_CONFIG_FILE
    if not path.exists():
        raise ValueError(f"{path.parent} has no {RUN_CONFIG_FILE}: it was not written by `structlora train`")
    return read_json(path)


def check_resume_config(checkpoint, run: RunConfig, lora: StructLoRAConfig) -> Path:
    """The checkpoint to resume; raises ``ValueError`` naming the first option that differs
    from the checkpoint's (except :data:`RESUME_MUTABLE`: they do not change the results)."""
    from .resume import find_checkpoint

    path = find_checkpoint(checkpoint)
    saved = read_run_config(path)
    for kind, ours in (("run", dataclasses.asdict(run)), ("structlora", lora.to_dict())):
        for key, value in ours.items():
            if kind == "run" and key in RESUME_MUTABLE:
                continue
            if key not in saved[kind] or saved[kind][key] != value:
                raise ValueError(
                    f"cannot resume {path}: {key}={value!r} but the checkpoint was trained with "
                    f"{key}={saved[kind].get(key)!r}; drop the option (resuming must not change the run) "
                    "or start a new run"
                )
    return path


def _linear_schedule(opt, steps: int, warmup_ratio: float):
    warm = max(1, int(steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


RUN_CONFIG_FILE = "run_config.json"


def write_artifacts(model, run: RunConfig, lora: StructLoRAConfig, metrics: dict, history: list[dict],
                    output_dir: Path) -> None:
    """Write everything into ``output_dir`` atomically (a failure keeps an older run intact)."""
    with atomic_directory(output_dir) as tmp:
        model.save(tmp / "checkpoint")
        model.export_peft(tmp / "adapter")
        write_json(_run_config_json(run, lora), tmp / RUN_CONFIG_FILE)
        write_json({k: v for k, v in metrics.items() if k != "model"}, tmp / "metrics.json")
        with open(tmp / "train_log.jsonl", "w") as f:
            for record in history:
                f.write(json.dumps(record) + "\n")
