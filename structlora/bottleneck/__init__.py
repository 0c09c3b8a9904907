r"""Stage 1 of StructLoRA: gates over LoRA directions and IB estimators behind one
strategy interface (DESIGN.md, "Stage 1").

    from structlora.bottleneck import Pruner, resolve_bottleneck
    strategy = resolve_bottleneck("hsic", gamma=1.0)   # or "vib", "l0", "none", "random", "topk-norm"
    gate = strategy.make_gate(r)                        # one per adapter
    loss = task_loss + beta * strategy.penalty(layers, labels)
    strategy.step(layers, step); Pruner(after=200).step(layers, step)

Adding an estimator is one :class:`Bottleneck` subclass and one
``@register_bottleneck("name")``.
"""
from .base import Bottleneck, gate_terms, zero_penalty
from .baselines import NoBottleneck, RandomBottleneck, TopKNormBottleneck
from .fixed_mask_gate import FixedMaskGate
from .gaussian_gate import GaussianGate
from .hard_concrete_gate import HardConcreteGate
from .hsic import center, gaussian_kernel, hsic, linear_kernel, median_bandwidth, nhsic, pairwise_sq_dists
from .hsic_bottleneck import HSICBottleneck
from .l0 import L0Bottleneck
from .labels import label_features
from .pruner import Pruner
from .registry import (
    BOTTLENECKS,
    GATES,
    Registry,
    register_bottleneck,
    register_gate,
    resolve_bottleneck,
    resolve_gate,
)
from .sigmoid_gate import SigmoidGate
from .vib import VIBBottleneck

__all__ = [
    "BOTTLENECKS", "Bottleneck", "FixedMaskGate", "GATES", "GaussianGate", "HSICBottleneck",
    "HardConcreteGate", "L0Bottleneck", "NoBottleneck", "Pruner", "RandomBottleneck", "Registry",
    "SigmoidGate", "TopKNormBottleneck", "VIBBottleneck", "center", "gate_terms", "gaussian_kernel",
    "hsic", "label_features", "linear_kernel", "median_bandwidth", "nhsic", "pairwise_sq_dists",
    "register_bottleneck", "register_gate", "resolve_bottleneck", "resolve_gate", "zero_penalty",
]
