"""``StructLoRAConfig``: every knob of a StructLoRA run, validated on creation."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, dict) else v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_names(v: Any, empty: bool) -> bool:
    """A pattern string, or a list / tuple of module names (non-empty unless ``empty``)."""
    if isinstance(v, str):
        return v != ""
    return isinstance(v, (list, tuple)) and (empty or len(v) > 0) and all(isinstance(n, str) and n for n in v)


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
    coord_normalize: bool = True  # divide the coupling losses by sg(mean ||x_i||^2): lam is then scale-free
    sketch_size: int = 16  # k: node sketches live in R^{k*k}
    refresh_every: int = 50  # K: layer-graph refresh period in steps
    tau: float = 0.3  # cosine threshold of semantic edges
    semantic_top_k: int = 2  # at most this many semantic edges per node
    grad_ema: float = 0.9  # EMA factor of the gradient sketches
    same_block_edges: bool = False  # structural edges between same-shape modules of one block
    # --- misc ---
    seed: int = 0  # seeds the sketches and seeded filters

    def __post_init__(self) -> None:
        _check(_is_int(self.r) and self.r > 0, "r", self.r, "use a positive integer")
        _check(self.alpha is None or (_is_number(self.alpha) and self.alpha > 0), "alpha", self.alpha,
               "use a positive finite number or None")
        _check(_is_number(self.dropout) and 0.0 <= self.dropout < 1.0, "dropout", self.dropout, "use 0 <= dropout < 1")
        _check(isinstance(self.use_rslora, bool), "use_rslora", self.use_rslora, "use true or false")
        _check(_is_names(self.target_modules, empty=False), "target_modules", self.target_modules,
               "use a non-empty list of names, a regex string or 'all-linear'")
        _check(self.exclude_modules is None or _is_names(self.exclude_modules, empty=True), "exclude_modules",
               self.exclude_modules, "use None, a list of names or a regex string")
        _check(self.modules_to_save is None or _is_names(self.modules_to_save, empty=True), "modules_to_save",
               self.modules_to_save, "use a list of module names")
        self.target_modules = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        if isinstance(self.exclude_modules, tuple):
            self.exclude_modules = list(self.exclude_modules)
        saved = self.modules_to_save or []
        self.modules_to_save = [saved] if isinstance(saved, str) else list(saved)  # one name or a list
        for name in ("bottleneck_kwargs", "coordinator_kwargs"):
            v = getattr(self, name)
            _check(isinstance(v, dict) and all(isinstance(k, str) for k in v), name, v,
                   "use a mapping of argument name to value")
        for name in ("beta", "lam", "denoise_c"):
            v = getattr(self, name)
            _check(_is_number(v) and v >= 0, name, v, "use a finite number >= 0")
        _check(_is_number(self.prune_threshold) and 0.0 <= self.prune_threshold <= 1.0, "prune_threshold",
               self.prune_threshold, "use a value in [0, 1]")
        _check(self.prune_after is None or (_is_int(self.prune_after) and self.prune_after >= 0), "prune_after",
               self.prune_after, "use None or an integer >= 0")
        _check(_is_int(self.prune_every) and self.prune_every >= 1, "prune_every", self.prune_every, "use an integer >= 1")
        _check(self.target_rank is None or (_is_int(self.target_rank) and 1 <= self.target_rank <= self.r),
               "target_rank", self.target_rank, f"use None or 1..r (r={self.r})")
        _check(self.keep_ratio is None or (_is_number(self.keep_ratio) and 0.0 < self.keep_ratio <= 1.0),
               "keep_ratio", self.keep_ratio, "use None or a value in (0, 1]")
        _check(_is_int(self.coord_warmup) and self.coord_warmup >= 0, "coord_warmup", self.coord_warmup,
               "use an integer >= 0")
        _check(isinstance(self.coord_normalize, bool), "coord_normalize", self.coord_normalize, "use true or false")
        _check(_is_int(self.sketch_size) and self.sketch_size >= 1, "sketch_size", self.sketch_size, "use an integer >= 1")
        _check(_is_int(self.refresh_every) and self.refresh_every >= 1, "refresh_every", self.refresh_every,
               "use an integer >= 1")
        _check(_is_number(self.tau) and -1.0 <= self.tau <= 1.0, "tau", self.tau, "a cosine threshold must lie in [-1, 1]")
        _check(_is_int(self.semantic_top_k) and self.semantic_top_k >= 0, "semantic_top_k", self.semantic_top_k,
               "use an integer >= 0")
        _check(_is_number(self.grad_ema) and 0.0 <= self.grad_ema < 1.0, "grad_ema", self.grad_ema, "use 0 <= grad_ema < 1")
        _check(isinstance(self.same_block_edges, bool), "same_block_edges", self.same_block_edges, "use true or false")
        _check(_is_int(self.seed) and 0 <= self.seed < 2**63, "seed", self.seed, "use an integer in [0, 2**63)")
        _check(self.bottleneck is not None, "bottleneck", self.bottleneck, "use a name, class or instance ('none' for plain LoRA)")
        _check(self.coordinator is not None, "coordinator", self.coordinator, "use a name, class or instance ('none' for no coordination)")

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
