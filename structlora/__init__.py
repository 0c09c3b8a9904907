"""structlora: LoRA with an Information-Bottleneck direction filter and a graph
coordinator over layers, both training-only (arXiv 2603.14228)."""
from .config import StructLoRAConfig
from .model import StructLoRAModel, load, wrap
from .training import evaluate, fit, make_optimizer

__version__ = "0.1.0"
__all__ = ["StructLoRAConfig", "StructLoRAModel", "evaluate", "fit", "load", "make_optimizer", "wrap", "__version__"]
