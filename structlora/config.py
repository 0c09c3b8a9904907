"""``StructLoRAConfig``: every knob of a StructLoRA run, validated on creation."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, dict) else v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_names(v: Any, empty: bool) -> bool:
    """A regex string (or 'all-linear'), or a list / tuple of module names (non-empty unless ``empty``)."""
    if isinstance(v, str):
        try:
            re.compile(v)
        except re.error:
            return False
        return v != ""
    return isinstance(v, (list, tuple)) and (empty or len(v) > 0) and all(isinstance(n, str) and n for n in v)


def _is_strategy(v: Any, base: type) -> bool:
    """A registry name, a ``base`` subclass or a ``base`` instance."""
    return (isinstance(v, str) and v != "") or (isinstance(v, type) and issubclass(v, base)) or isinstance(v, base)


def _check(cond: bool, name: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ValueError(f"StructLoRAConfig.{name}={value!r} is invalid: {allowed}")


@dataclass
class StructLoRAConfig:
    """Configuration of a StructLoRA model.

    ``bottleneck="none"`` and ``coordinator="none"`` give exactly vanilla LoRA.
    """

    # --- LoRA ---
    r: int = 8  # rank of every adapter
    alpha: float | None = None  # scaling numerator; None means 2 * r (scaling = alpha / r)
    dropout: float = 0.0  # dropout on the adapter input
    use_rslora: bool = False  # scaling alpha / sqrt(r) instead of alpha / r
    target_modules: list[str] | str = field(default_factory=lambda: ["query", "value"])  # names, suffixes, regex or "all-linear"
    exclude_modules: list[str] | str | None = None  # same forms; matches are not adapted
    modules_to_save: list[str] = field(default_factory=list)  # fully trained extra modules (e.g. the head)
    # --- Stage 1: IB filter ---
    bottleneck: str = "none"  # estimator / filter by name: none, vib, hsic, random, topk-norm
    bottleneck_kwargs: dict = field(default_factory=dict)  # passed to the estimator / gate
    beta: float = 1e-2  # weight of the IB penalty
    prune_after: int | None = None  # step after which low gates are pruned; None disables pruning
    prune_every: int = 50  # pruning period (steps) once prune_after is reached
    prune_threshold: float = 0.05  # eval gates below this are pruned
    target_rank: int | None = None  # per-adapter budget: keep at most this many directions
    keep_ratio: float | None = None  # global budget: keep this fraction of all directions
    # --- Stage 2: graph coordination ---
    coordinator: str = "none"  # none, laplacian, gcn, gat
    coordinator_kwargs: dict = field(default_factory=dict)  # passed to the coordinator
    lam: float = 1e-2  # weight of the coordination loss L_coord
    denoise_c: float = 1.0  # c in the denoising loss of learned coordinators
    coord_warmup: int = 0  # steps before L_coord is switched on
    coord_normalize: bool = False  # divide the coupling losses by sg(mean ||x_i||^2); off: measured to stall training (docs/design-choices.md)
    sketch_size: int = 16  # k: node sketches live in R^{k*k}
    refresh_every: int = 50  # K: layer-graph refresh period in steps
    tau: float = 0.3  # cosine threshold of semantic edges
    semantic_top_k: int = 2  # at most this many semantic edges per node
    grad_ema: float = 0.9  # EMA factor of the gradient sketches
    same_block_edges: bool = False  # structural edges between same-shape modules of one block
    # --- misc ---
    seed: int = 0  # seeds the sketches and seeded filters

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # in field order: r is checked before target_rank
            test, allowed = _RULES[f.name]
            value = getattr(self, f.name)
            _check(test(value, self), f.name, value, allowed.format(r=self.r))
        self.target_modules = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        if isinstance(self.exclude_modules, tuple):
            self.exclude_modules = list(self.exclude_modules)
        saved = self.modules_to_save or []
        self.modules_to_save = [saved] if isinstance(saved, str) else list(saved)  # one name or a list

    def to_dict(self) -> dict:
        """A JSON-ready dict; strategies given as classes or instances are stored by registry name."""
        from .strategies import strategy_name

        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["bottleneck"] = strategy_name(self.bottleneck)
        d["coordinator"] = strategy_name(self.coordinator)
        return {k: _plain(v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "StructLoRAConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"StructLoRAConfig has no field(s) {unknown}; valid fields: {sorted(known)}"
            )
        return cls(**d)


def _int_at_least(lo: int, optional: bool = False):
    return lambda v, cfg: (optional and v is None) or (_is_int(v) and v >= lo)


def _number_in(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False, optional: bool = False):
    def test(v, cfg) -> bool:
        if optional and v is None:
            return True
        return _is_number(v) and (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi)
    return test


def _is_bool(v, cfg) -> bool:
    return isinstance(v, bool)


def _is_kwargs(v, cfg) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) for k in v)


def _bottleneck(v, cfg) -> bool:
    from .bottleneck import Bottleneck

    return _is_strategy(v, Bottleneck)


def _coordinator(v, cfg) -> bool:
    from .graph import Coordinator

    return _is_strategy(v, Coordinator)


INF = math.inf
BOOL = (_is_bool, "use true or false")
# field -> (test(value, config), what is allowed; "{r}" is filled in)
_RULES = {
    "r": (_int_at_least(1), "use a positive integer"),
    "alpha": (_number_in(0, INF, lo_open=True, optional=True), "use a positive finite number or None"),
    "dropout": (_number_in(0, 1, hi_open=True), "use 0 <= dropout < 1"),
    "use_rslora": BOOL,
    "target_modules": (lambda v, cfg: _is_names(v, empty=False),
                       "use a non-empty list of names, a valid regex string or 'all-linear'"),
    "exclude_modules": (lambda v, cfg: v is None or _is_names(v, empty=True),
                        "use None, a list of names or a valid regex string"),
    "modules_to_save": (lambda v, cfg: v is None or _is_names(v, empty=True), "use a list of module names"),
    "bottleneck": (_bottleneck, "use a name, Bottleneck class or instance ('none' for plain LoRA)"),
    "bottleneck_kwargs": (_is_kwargs, "use a mapping of argument name to value"),
    "beta": (_number_in(0, INF), "use a finite number >= 0"),
    "prune_after": (_int_at_least(0, optional=True), "use None or an integer >= 0"),
    "prune_every": (_int_at_least(1), "use an integer >= 1"),
    "prune_threshold": (_number_in(0, 1), "use a value in [0, 1]"),
    "target_rank": (lambda v, cfg: v is None or (_is_int(v) and 1 <= v <= cfg.r), "use None or 1..r (r={r})"),
    "keep_ratio": (_number_in(0, 1, lo_open=True, optional=True), "use None or a value in (0, 1]"),
    "coordinator": (_coordinator, "use a name, Coordinator class or instance ('none' for no coordination)"),
    "coordinator_kwargs": (_is_kwargs, "use a mapping of argument name to value"),
    "lam": (_number_in(0, INF), "use a finite number >= 0"),
    "denoise_c": (_number_in(0, INF), "use a finite number >= 0"),
    "coord_warmup": (_int_at_least(0), "use an integer >= 0"),
    "coord_normalize": BOOL,
    "sketch_size": (_int_at_least(1), "use an integer >= 1"),
    "refresh_every": (_int_at_least(1), "use an integer >= 1"),
    "tau": (_number_in(-1, 1), "a cosine threshold must lie in [-1, 1]"),
    "semantic_top_k": (_int_at_least(0), "use an integer >= 0"),
    "grad_ema": (_number_in(0, 1, hi_open=True), "use 0 <= grad_ema < 1"),
    "same_block_edges": BOOL,
    "seed": (lambda v, cfg: _is_int(v) and 0 <= v < 2**63, "use an integer in [0, 2**63)"),
}
