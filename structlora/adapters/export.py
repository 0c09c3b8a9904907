"""Export to PEFT's LoRA format (``adapter_model.safetensors`` + ``adapter_config.json``).

The gate is folded into the factors first (:mod:`.fold`); directions with eval
gate 0 are dropped, per-module ranks go to ``rank_pattern`` and the matching
``alpha_pattern`` keeps every scaling unchanged. A module with no direction
left is left out of ``target_modules``.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from torch import Tensor, nn

from .fold import FoldedFactors, fold
from .io import atomic_directory, save_tensors
from .layer import GatedLoRALayer

PREFIX = "base_model.model."


def peft_state_and_config(
    model: nn.Module,
    layers: dict[str, GatedLoRALayer],
    modules_to_save: list[str],
    dropout: float = 0.0,
) -> tuple[dict[str, Tensor], dict]:
    """The tensors and LoraConfig keyword arguments PEFT needs to rebuild the adapter."""
    folded: dict[str, FoldedFactors] = {n: fold(layer) for n, layer in layers.items()}
    folded = {n: f for n, f in folded.items() if f.rank > 0}
    if not folded:
        raise ValueError("every direction of every adapter is pruned: there is nothing to export")
    tensors = {}
    for name, f in folded.items():
        tensors[f"{PREFIX}{name}.lora_A.weight"] = f.lora_A
        tensors[f"{PREFIX}{name}.lora_B.weight"] = f.lora_B
    for name in modules_to_save:
        for pname, p in model.get_submodule(name).named_parameters():
            tensors[f"{PREFIX}{name}.{pname}"] = p
    r, alpha = Counter((f.rank, f.alpha) for f in folded.values()).most_common(1)[0][0]
    odd = {n: f for n, f in folded.items() if (f.rank, f.alpha) != (r, alpha)}
    any_layer = next(iter(layers.values()))
    config = dict(
        r=r,
        lora_alpha=alpha,
        target_modules=sorted(folded),
        rank_pattern={re.escape(n): f.rank for n, f in odd.items()},
        alpha_pattern={re.escape(n): f.alpha for n, f in odd.items()},
        lora_dropout=dropout,
        use_rslora=any_layer.use_rslora,
        fan_in_fan_out=any_layer.fan_in_fan_out,
        modules_to_save=list(modules_to_save) or None,
        bias="none",
    )
    return tensors, config


def export_peft(
    model: nn.Module,
    layers: dict[str, GatedLoRALayer],
    path: str | os.PathLike,
    modules_to_save: list[str],
    dropout: float = 0.0,
    base_model_name_or_path: str | None = None,
) -> Path:
    """Write a PEFT LoRA adapter that ``PeftModel.from_pretrained(base, path)`` loads.

    Writing is atomic: a failure leaves an existing ``path`` untouched.
    """
    from peft import LoraConfig

    fan = {layer.fan_in_fan_out for layer in layers.values()}
    if len(fan) > 1:
        raise ValueError(
            "cannot export to PEFT: the adapted modules mix nn.Linear and Conv1D, "
            "and PEFT's fan_in_fan_out flag is global; adapt one kind only"
        )
    tensors, kwargs = peft_state_and_config(model, layers, modules_to_save, dropout)
    config = LoraConfig(base_model_name_or_path=base_model_name_or_path, **kwargs)
    with atomic_directory(path) as tmp:
        save_tensors(tensors, tmp / "adapter_model.safetensors", "the PEFT export")
        config.save_pretrained(str(tmp))
    return Path(path)
