"""One benchmark cell: fine-tune one method on one setting, evaluate, analyse the update.

Every method goes through :func:`run_cell`, so all of them share the data
order (``text_loader(shuffle=True, seed=seed)``), the number of steps, the
optimiser (AdamW, no weight decay), the schedule (linear warm-up then linear
decay, ``structlora.run._linear_schedule``), the trained head
(``modules_to_save``) and the evaluation (``structlora.training.evaluate``).

A cell is a plain JSON-able dict (see :data:`CELL_DEFAULTS`); its canonical
JSON is its key in the results file, so a finished cell is never rerun.

Methods:

- ``peft-lora``, ``peft-dora`` (``LoraConfig(use_dora=True)``), ``peft-adalora``
  (``AdaLoraConfig(init_r=round(1.5 r), target_r=r)``: the *final* budget is r);
- ``structlora``: a :class:`~structlora.StructLoRAConfig` built from the cell's
  ``sl`` overrides (``{}`` with bottleneck/coordinator ``none`` is plain LoRA).
"""
from __future__ import annotations

import json
import math
import os
import platform
import time

import torch
from tqdm.auto import tqdm

CELL_DEFAULTS = {
    "task": "movie-reviews",
    "model": "minilm",
    "method": "peft-lora",
    "sl": {},  # StructLoRAConfig overrides (method "structlora" only)
    "r": 8,
    "modules": None,  # None: the model's default targets (query/value, q_proj/v_proj)
    "train_size": 512,
    "epochs": 3,
    "batch_size": 16,
    "max_length": 64,
    "lr": 2e-3,
    "warmup_ratio": 0.06,
    "seed": 0,
    "max_steps": None,
}
PEFT_METHODS = ("peft-lora", "peft-dora", "peft-adalora")
TRACE_EVERY = 8  # steps between drift-energy samples during training


def full_cell(cell: dict) -> dict:
    """``cell`` with every default filled in (unknown keys are an error)."""
    unknown = sorted(set(cell) - set(CELL_DEFAULTS) - {"name", "study"})
    if unknown:
        raise ValueError(f"unknown cell key(s) {unknown}; valid: {sorted(CELL_DEFAULTS)} + name, study")
    out = {**CELL_DEFAULTS, **cell}
    if out["method"] not in PEFT_METHODS + ("structlora",):
        raise ValueError(f"unknown method {out['method']!r}; use one of {PEFT_METHODS + ('structlora',)}")
    return out


def cell_key(cell: dict) -> str:
    """Canonical JSON of what determines the result (labels ``name`` / ``study`` excluded)."""
    c = {k: v for k, v in full_cell(cell).items() if k not in ("name", "study")}
    return json.dumps(c, sort_keys=True, separators=(",", ":"))


def environment() -> dict:
    return {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_avg_1min": os.getloadavg()[0],  # the CPU is shared: read timings with this
    }


# --- model construction -------------------------------------------------------------------------

def _targets(cell: dict) -> tuple[list[str] | str, list[str]]:
    from structlora.models import DEFAULT_HEADS, DEFAULT_TARGETS

    model = cell["model"]
    if cell["modules"] is None and model not in DEFAULT_TARGETS:
        raise ValueError(f"cell for model {model!r} needs 'modules' (defaults exist for {sorted(DEFAULT_TARGETS)})")
    # copies: PEFT extends a config's modules_to_save list in place (adds "classifier", "score")
    return list(cell["modules"] or DEFAULT_TARGETS[model]), list(DEFAULT_HEADS.get(model, ["classifier"]))


def build_model(cell: dict, base, total_steps: int):
    """(model, optimizer param groups, after_step hook, loss fn) for the cell's method."""
    targets, heads = _targets(cell)
    r, method = cell["r"], cell["method"]
    if method == "structlora":
        from structlora import StructLoRAConfig, wrap

        cfg = StructLoRAConfig(r=r, target_modules=targets, modules_to_save=heads, seed=cell["seed"],
                               **_resolve_sl(cell["sl"], total_steps))
        model = wrap(base, cfg)
        groups = model.param_groups(lr=cell["lr"])
        return model, groups, lambda step: model.step(), lambda out, batch: model.loss(out.loss, batch)
    from peft import AdaLoraConfig, LoraConfig, TaskType, get_peft_model

    common = dict(task_type=TaskType.SEQ_CLS, target_modules=targets, modules_to_save=heads, lora_dropout=0.0)
    if method == "peft-adalora":
        init_r = round(1.5 * r)
        pcfg = AdaLoraConfig(init_r=init_r, target_r=r, lora_alpha=2 * init_r, total_step=total_steps,
                             tinit=int(0.1 * total_steps), tfinal=int(0.2 * total_steps), deltaT=5, **common)
    else:
        pcfg = LoraConfig(r=r, lora_alpha=2 * r, use_dora=method == "peft-dora", **common)
    model = get_peft_model(base, pcfg)
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cell["lr"], "weight_decay": 0.0}]

    def after_step(step: int) -> dict:
        if method == "peft-adalora":
            model.base_model.update_and_allocate(step)
        return {}

    return model, groups, after_step, lambda out, batch: out.loss


def _resolve_sl(sl: dict, total_steps: int) -> dict:
    """Overrides may give warm-ups / prune steps as fractions of the run (``*_frac`` keys)."""
    out = dict(sl)
    for key in ("coord_warmup", "prune_after"):
        frac = out.pop(f"{key}_frac", None)
        if frac is not None:
            out[key] = int(frac * total_steps)
    return out


# --- update analysis ----------------------------------------------------------------------------

def base_weights(model: torch.nn.Module, targets) -> dict[str, torch.Tensor]:
    """Copies of the weights that will be adapted, keyed by their module path."""
    from structlora.adapters.inject import find_targets

    return {n: model.get_submodule(n).weight.detach().clone() for n in find_targets(model, targets, None)}


def live_deltas(model, method: str) -> dict[str, torch.Tensor] | None:
    """Per-layer updates during training (None for DoRA: its update is not B A alone)."""
    if method == "structlora":
        return {n: l.delta_weight().detach() for n, l in model.adapters.items()}
    if method == "peft-dora":
        return None
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "lora_A") and "default" in module.lora_A:
            out[name.split("base_model.model.", 1)[-1]] = module.get_delta_weight("default").detach()
    return out


def structural_edges(names: list[str]) -> torch.Tensor:
    """Depth-chain edges (same stack and type, consecutive blocks), both directions: (2, E)."""
    from structlora.graph import parse_block

    parsed = [parse_block(n) for n in names]
    pairs = []
    for i, a in enumerate(parsed):
        for j, b in enumerate(parsed):
            if a and b and a[0] == b[0] and a[2] == b[2] and b[1] == a[1] + 1:
                pairs += [(i, j), (j, i)]
    return torch.tensor(pairs, dtype=torch.long).T.reshape(2, -1)


def drift(deltas: dict[str, torch.Tensor]) -> dict:
    """Exact drift energy of the updates over the depth chain, and its scale-free version.

    ``sum over chain edges of ||dW_i - dW_j||_F^2`` (each undirected edge once, as
    :func:`structlora.theory.layer_drift_energy` counts it). Chain edges join layers of one
    type, hence one shape; layers of different shapes (q_proj/v_proj in a GQA model, the
    MLP next to attention) are never compared with each other.
    """
    names = list(deltas)
    edges = structural_edges(names).T.tolist()
    energy = 0.5 * sum(float((deltas[names[i]].float() - deltas[names[j]].float()).pow(2).sum()) for i, j in edges)
    norm2 = sum(float(d.float().pow(2).sum()) for d in deltas.values())
    return {"drift_energy": energy, "update_norm2": norm2, "relative_drift": energy / norm2 if norm2 else 0.0}


def analyse(deltas: dict[str, torch.Tensor], top: int = 16) -> dict:
    """Drift, per-layer norms and singular values, pairwise cosines of the final updates
    (``None`` between layers of different shapes: no cosine is defined there)."""
    names = list(deltas)
    flat = [deltas[n].flatten().float() for n in names]
    norms = [float(v.norm()) for v in flat]
    cosine = [[float(a @ b) / max(na * nb, 1e-30) if a.shape == b.shape else None
               for b, nb in zip(flat, norms)] for a, na in zip(flat, norms)]
    svals = [torch.linalg.svdvals(deltas[n].float())[:top].tolist() for n in names]
    return {**drift(deltas), "layers": names, "norms": norms, "singular_values": svals, "cosine": cosine}


# --- the cell -----------------------------------------------------------------------------------

def run_cell(cell: dict, progress: bool = True, threads: int | None = None) -> dict:
    """Fine-tune and evaluate one cell; returns a JSON-able record (cell, metrics, analysis, trace)."""
    from structlora.data import load_text_data
    from structlora.models import load_classifier
    from structlora.run import _linear_schedule, seed_everything
    from structlora.training import evaluate, text_loader

    cell = full_cell(cell)
    if threads:
        torch.set_num_threads(threads)
    data = load_text_data(cell["task"], cell["train_size"])
    seed_everything(cell["seed"])
    base, tok = load_classifier(cell["model"], data.num_labels)
    targets, _ = _targets(cell)
    w0 = base_weights(base, targets)
    train = text_loader(tok, *data.train, cell["batch_size"], cell["max_length"], shuffle=True, seed=cell["seed"])
    steps = cell["epochs"] * len(train)
    steps = steps if cell["max_steps"] is None else min(steps, cell["max_steps"])
    model, groups, after_step, loss_fn = build_model(cell, base, steps)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    coord_params = model.coordinator_parameter_count() if cell["method"] == "structlora" else 0
    trainable -= coord_params  # the training-only coordinator is listed apart
    opt = torch.optim.AdamW(groups, lr=cell["lr"], weight_decay=0.0)
    sched = _linear_schedule(opt, steps, cell["warmup_ratio"])
    trace, losses = [], []
    model.train()
    bar = tqdm(total=steps, desc=cell.get("name", cell["method"]), disable=not progress, leave=False)
    t0 = time.perf_counter()
    step = 0
    while step < steps:
        for batch in train:
            out = model(**batch)
            loss = loss_fn(out, batch)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"non-finite loss at step {step} in cell {cell_key(cell)}")
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            after_step(step)
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.update(1)
            if step % TRACE_EVERY == 0 or step == steps:
                deltas = live_deltas(model, cell["method"])
                if deltas:
                    trace.append({"step": step, **drift(deltas)})
            if step >= steps:
                break
    train_s = time.perf_counter() - t0
    bar.close()
    val = text_loader(tok, *data.validation, 64, cell["max_length"])
    test = text_loader(tok, *data.test, 64, cell["max_length"])
    metrics = {
        "validation_accuracy": evaluate(model, val)["accuracy"],
        "test_accuracy": evaluate(model, test)["accuracy"],
        "steps": step,
        "train_seconds": train_s,
        "seconds_per_step": train_s / max(step, 1),
        "trainable_params": trainable,
        "coordinator_params": coord_params,
        "final_rank": _final_rank(model, cell),
        "final_loss": sum(losses[-8:]) / max(len(losses[-8:]), 1),
    }
    merged = model.merge_and_unload()
    final = {n: merged.get_submodule(n).weight.detach() - w for n, w in w0.items()}
    return {"key": cell_key(cell), "cell": cell, "metrics": metrics, "analysis": analyse(final),
            "trace": trace, "env": environment(), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


def _final_rank(model, cell: dict) -> int:
    """Total kept directions over all adapters at the end (AdaLoRA: its allocated budget)."""
    if cell["method"] == "structlora":
        return int(sum(model.effective_ranks().values()))
    if cell["method"] == "peft-adalora":
        total = 0
        for module in model.modules():
            if hasattr(module, "lora_E") and "default" in module.lora_E:
                total += int((module.lora_E["default"].detach().abs() > 0).sum())
        return total
    return cell["r"] * sum(1 for m in model.modules() if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {}))
