"""Gated LoRA layers, injection, merge / fold, PEFT export and safe file I/O."""
from .export import export_peft, peft_state_and_config
from .fold import FoldedFactors, fold
from .gate import Gate, IdentityGate
from .inject import find_targets, freeze_base, inject_adapters, unload
from .layer import SUPPORTED_LAYERS, GatedLoRALayer

__all__ = [
    "FoldedFactors", "Gate", "GatedLoRALayer", "IdentityGate", "SUPPORTED_LAYERS",
    "export_peft", "find_targets", "fold", "freeze_base", "inject_adapters",
    "peft_state_and_config", "unload",
]
