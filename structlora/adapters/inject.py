"""Finding target modules and swapping them for gated LoRA layers."""
from __future__ import annotations

import re
from typing import Callable, Iterable, Sequence

from torch import nn

from .layer import SUPPORTED_LAYERS, GatedLoRALayer

# Output heads that "all-linear" never adapts (they are usually trained in full
# through modules_to_save, as PEFT does).
HEAD_NAMES = ("lm_head", "classifier", "score", "qa_outputs", "cls", "head")

TargetSpec = str | Sequence[str]


def _matches(name: str, spec: TargetSpec) -> bool:
    if isinstance(spec, str):
        return re.fullmatch(spec, name) is not None
    return any(name == t or name.endswith("." + t) for t in spec)


def _is_head(model: nn.Module, name: str, module: nn.Module) -> bool:
    get_out = getattr(model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    if out is not None and module is out:
        return True
    return any(part in HEAD_NAMES for part in name.split("."))


def find_targets(
    model: nn.Module,
    target_modules: TargetSpec,
    exclude_modules: TargetSpec | None = None,
) -> list[str]:
    """Names of the modules to adapt, in module order.

    Args:
        target_modules: a list of exact names or dotted suffixes (``["query",
            "value"]``), a regex string matched against the full name, or
            ``"all-linear"`` (every Linear / Conv1D except the output head).
        exclude_modules: same forms as ``target_modules``; matches are skipped.
    """
    names = []
    for name, module in model.named_modules():
        if not name or isinstance(module, GatedLoRALayer) or _inside_adapter(name):
            continue
        if target_modules == "all-linear":
            hit = isinstance(module, SUPPORTED_LAYERS) and not _is_head(model, name, module)
        else:
            hit = _matches(name, target_modules)
        if hit and not (exclude_modules and _matches(name, exclude_modules)):
            names.append(name)
    if not names:
        raise ValueError(
            f"target_modules={target_modules!r} matched no module of {type(model).__name__}. "
            f"Some module names that exist: {_sample_linear_names(model)}. "
            "Pass exact names, dotted suffixes such as ['query', 'value'], a regex, or 'all-linear'."
        )
    return names


ADAPTER_PARTS = {"base_layer", "lora_A", "lora_B", "gate", "lora_dropout"}


def _inside_adapter(name: str) -> bool:
    """Is ``name`` a submodule of a GatedLoRALayer (its base layer, gate, ...)?"""
    return any(part in ADAPTER_PARTS for part in name.split("."))


def _sample_linear_names(model: nn.Module, limit: int = 6) -> str:
    linear = [n for n, m in model.named_modules() if isinstance(m, SUPPORTED_LAYERS)]
    pool = linear or [n for n, _ in model.named_modules() if n]
    suffixes = list(dict.fromkeys(n.split(".")[-1] for n in pool))
    return ", ".join(repr(s) for s in suffixes[:limit]) + (", ..." if len(suffixes) > limit else "")


def set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def inject_adapters(
    model: nn.Module,
    names: Iterable[str],
    make_layer: Callable[[str, nn.Module], GatedLoRALayer],
) -> dict[str, GatedLoRALayer]:
    """Replace each named module by ``make_layer(name, module)``; returns the new layers."""
    layers = {}
    for name in names:
        base = model.get_submodule(name)
        layer = make_layer(name, base)
        set_submodule(model, name, layer)
        layers[name] = layer
    return layers


def freeze_base(model: nn.Module, modules_to_save: Sequence[str] = ()) -> list[str]:
    """Freeze everything but LoRA factors, gates and ``modules_to_save``.

    Returns the names of the modules kept trainable through ``modules_to_save``;
    raises when one of them matches nothing.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, GatedLoRALayer):
            module.lora_A.requires_grad_(True)
            module.lora_B.requires_grad_(True)
            for p in module.gate.parameters():
                p.requires_grad_(True)
    saved = []
    for pattern in modules_to_save:
        hits = [n for n, _ in model.named_modules() if n and _matches(n, [pattern]) and not _inside_adapter(n)]
        if not hits:
            raise ValueError(
                f"modules_to_save entry {pattern!r} matched no module; "
                f"some module names that exist: {_sample_linear_names(model)}"
            )
        for n in hits:
            for p in model.get_submodule(n).parameters():
                p.requires_grad_(True)
        saved.extend(hits)
    return saved


def unload(model: nn.Module, merge: bool = True) -> nn.Module:
    """Replace every adapter by its base layer (merged first when ``merge``)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, GatedLoRALayer):
            if merge:
                module.merge()
            set_submodule(model, name, module.base_layer)
    return model
