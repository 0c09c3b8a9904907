"""``StructLoRAModel``: a Hugging Face (or any torch) model with gated LoRA adapters,
an IB filter over their directions and a graph coordinator over the layers."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from .adapters.export import export_peft as _export_peft
from .adapters.gate import Gate
from .adapters.inject import find_targets, freeze_base, inject_adapters, unload
from .adapters.io import atomic_directory, load_tensors, read_json, save_tensors, write_json
from .adapters.layer import GatedLoRALayer
from .config import StructLoRAConfig
from .coordination import GraphCoordination
from .strategies import resolve_strategies

CONFIG_FILE = "structlora_config.json"
TENSOR_FILE = "structlora_state.safetensors"
FORMAT_VERSION = 1
COORDINATOR_PREFIX = "__coordinator__."


def _make_pruner(config: StructLoRAConfig):
    if config.prune_after is None:
        return None
    from .bottleneck import Pruner

    return Pruner(after=config.prune_after, every=config.prune_every, threshold=config.prune_threshold,
                  target_rank=config.target_rank, keep_ratio=config.keep_ratio)


class StructLoRAModel(nn.Module):
    """The wrapped model. Attribute access falls through to the base model.

    Args:
        model (nn.Module): the model to adapt (frozen in place, except ``modules_to_save``).
        config (StructLoRAConfig): what to adapt and how.
    """

    def __init__(self, model: nn.Module, config: StructLoRAConfig):
        super().__init__()
        if isinstance(model, StructLoRAModel) or any(isinstance(m, GatedLoRALayer) for m in model.modules()):
            raise ValueError(
                "this model already holds structlora adapters; wrap the original model once, "
                "or call merge_and_unload() first"
            )
        names = find_targets(model, config.target_modules, config.exclude_modules)
        self.bottleneck, coordinator = resolve_strategies(config)
        self.base_model = model
        self.config = config
        self.adapters: dict[str, GatedLoRALayer] = inject_adapters(model, names, self._make_layer)
        self.saved_modules = freeze_base(model, config.modules_to_save)
        for layer in self.adapters.values():
            layer.recording = self.bottleneck.needs_stats
        self.pruner = _make_pruner(config)
        self.coordination = None
        if self.coordinated(coordinator):
            self.coordination = GraphCoordination(self.adapters, config, coordinator)
        self.global_step = 0
        self.loss_terms: dict[str, float] = {}

    def _make_layer(self, name: str, base: nn.Module) -> GatedLoRALayer:
        c = self.config
        return GatedLoRALayer(base, c.r, c.alpha, c.dropout, c.use_rslora, gate=self.make_gate(name, c.r))

    def make_gate(self, name: str, r: int) -> Gate:
        """The gate of the adapter at ``name``, chosen by the bottleneck strategy."""
        return self.bottleneck.make_gate(r, name)

    @staticmethod
    def coordinated(coordinator) -> bool:
        from .graph import NoCoordinator

        return not isinstance(coordinator, NoCoordinator)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model":
                raise
            return getattr(self.base_model, name)

    def forward(self, *args, **kwargs):
        if self.bottleneck.needs_stats and self.training:
            mask = kwargs.get("attention_mask")
            for layer in self.adapters.values():
                layer.token_mask = mask
        return self.base_model(*args, **kwargs)

    # --- training ---
    def loss(self, task_loss: Tensor, batch: dict | None = None) -> Tensor:
        r"""``task + beta * L_IB + lam * L_coord (+ L_den)``; each term is kept in ``loss_terms``."""
        c = self.config
        labels = batch.get("labels") if isinstance(batch, Mapping) else None  # dict or BatchEncoding
        ib = self.bottleneck.penalty(self.adapters, labels) if c.beta > 0 else task_loss.new_zeros(())
        total = task_loss + c.beta * ib
        terms = {"task": task_loss, "ib": ib}
        if self.coordination is not None and self.global_step >= c.coord_warmup:
            coord, den = self.coordination.losses()
            total = total + c.lam * coord + den
            terms.update(coord=coord, denoise=den)
        terms["total"] = total
        self.loss_terms = {k: float(v.detach()) for k, v in terms.items()}
        return total

    def step(self) -> dict[str, float]:
        """After ``optimizer.step()``: filter schedules, pruning and layer-graph refresh."""
        self.global_step += 1
        info: dict[str, float] = {}
        self.bottleneck.step(self.adapters, self.global_step)
        if self.pruner is not None and self.pruner.step(self.adapters, self.global_step) is not None:
            info["effective_rank"] = float(sum(self.effective_ranks().values()))
        if self.coordination is not None:
            info["graph_refreshed"] = float(self.coordination.after_step(self.global_step))
        return info

    def discard_step(self) -> None:
        """Instead of :meth:`step` when a step is skipped: forget what its backward pass captured."""
        if self.coordination is not None:
            self.coordination.discard_pending()

    def training_state(self) -> tuple[dict[str, Tensor], dict]:
        """``(tensors, meta)``: what besides :meth:`adapter_state` determines the rest of a run
        (step counter, gradient-sketch EMA, layer graph). Optimizer and RNG are the loop's."""
        tensors, meta = {}, {"global_step": self.global_step}
        if self.coordination is not None:
            coord_tensors, meta["coordination"] = self.coordination.training_state()
            tensors = {f"coordination.{k}": t for k, t in coord_tensors.items()}
        return tensors, meta

    def load_training_state(self, tensors: dict[str, Tensor], meta: dict) -> None:
        """Restore what :meth:`training_state` returned."""
        if (self.coordination is None) != ("coordination" not in meta):
            raise ValueError(
                "training state does not match the model: it was saved "
                f"{'with' if 'coordination' in meta else 'without'} a graph coordinator; "
                "resume with the same StructLoRAConfig"
            )
        self.global_step = int(meta["global_step"])
        if self.coordination is not None:
            prefix = "coordination."
            own = {k[len(prefix):]: t for k, t in tensors.items() if k.startswith(prefix)}
            self.coordination.load_training_state(own, meta["coordination"])

    @property
    def _ddp_params_and_buffers_to_ignore(self) -> list[str]:
        """What ``DistributedDataParallel`` must leave alone: the coordination module.

        Its losses are computed outside ``forward``, where DDP cannot track them;
        ``structlora.distributed.sync_coordinator_grads`` averages its gradients instead.
        """
        return [n for n, _ in self.named_parameters() if n.startswith("coordination.")] + [
            n for n, _ in self.named_buffers() if n.startswith("coordination.")
        ]

    def layer_graph(self):
        """The current layer graph, a ``torch_geometric.data.Data`` (see docs/graph.md)."""
        if self.coordination is not None:
            return self.coordination.current_graph()
        from .graph import LayerGraphBuilder, Sketcher

        c = self.config
        builder = LayerGraphBuilder.from_layers(self.adapters, tau=c.tau, top_k=c.semantic_top_k,
                                                same_block_edges=c.same_block_edges)
        with torch.no_grad():
            return builder.build(Sketcher(self.adapters, c.sketch_size, c.seed).node_sketches())

    def param_groups(self, lr: float, gate_lr: float | None = None, coord_lr: float | None = None,
                     weight_decay: float = 0.0) -> list[dict]:
        """Optimizer groups: LoRA factors and saved modules, gates (no decay), coordinator."""
        gate_ids = {id(p) for l in self.adapters.values() for p in l.gate.parameters()}
        main = [p for p in self.base_model.parameters() if p.requires_grad and id(p) not in gate_ids]
        gates = [p for l in self.adapters.values() for p in l.gate.parameters() if p.requires_grad]
        groups = [{"params": main, "lr": lr, "weight_decay": weight_decay, "name": "lora"}]
        if gates:
            groups.append({"params": gates, "lr": gate_lr or lr, "weight_decay": 0.0, "name": "gates"})
        coord = list(self.coordination.coordinator.parameters()) if self.coordination is not None else []
        if coord:
            groups.append({"params": coord, "lr": coord_lr or lr, "weight_decay": 0.0, "name": "coordinator"})
        return groups

    # --- inspection ---
    def trainable_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts of the adapted model (gates included).

        The training-only coordinator is counted apart: :meth:`coordinator_parameter_count`.
        """
        trainable = sum(p.numel() for p in self.base_model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.base_model.parameters())
        return trainable, total

    def coordinator_parameter_count(self) -> int:
        if self.coordination is None:
            return 0
        return sum(p.numel() for p in self.coordination.coordinator.parameters())

    def summary(self) -> str:
        trainable, total = self.trainable_parameters()
        lines = [
            f"structlora: {len(self.adapters)} adapted modules, r={self.config.r}, "
            f"bottleneck={self.config.bottleneck}, coordinator={self.config.coordinator}",
            f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}",
        ]
        if self.saved_modules:
            lines.append(f"modules_to_save: {', '.join(self.saved_modules)}")
        if self.coordinator_parameter_count():
            lines.append(f"training-only coordinator params: {self.coordinator_parameter_count():,}")
        return "\n".join(lines)

    def print_trainable_parameters(self) -> None:
        print(self.summary())

    def effective_ranks(self) -> dict[str, int]:
        """Directions with a non-zero eval gate, per adapted module."""
        return {name: layer.gate.effective_rank() for name, layer in self.adapters.items()}

    # --- merge / export ---
    def merge(self, safe: bool = True) -> None:
        merged = []
        try:
            for layer in self.adapters.values():
                layer.merge(safe=safe)
                merged.append(layer)
        except ValueError:
            for layer in merged:  # leave the model exactly as it was
                layer.unmerge()
            raise

    def unmerge(self) -> None:
        for layer in self.adapters.values():
            layer.unmerge()

    def merge_and_unload(self, safe: bool = True) -> nn.Module:
        """Merge every adapter into its base weight and return the plain base model."""
        self.merge(safe=safe)
        if self.coordination is not None:
            self.coordination.remove_hooks()
        model = unload(self.base_model, merge=False)
        self.adapters = {}
        return model

    def export_peft(self, path: str | os.PathLike) -> Path:
        """Write a PEFT LoRA adapter (gates folded, zero directions dropped)."""
        name = getattr(getattr(self.base_model, "config", None), "_name_or_path", None) or None
        return _export_peft(
            self.base_model, self.adapters, path, self.saved_modules, self.config.dropout, name
        )

    # --- checkpoints ---
    def adapter_state(self) -> dict[str, Tensor]:
        """Every tensor that is not part of the frozen base: factors, gates, saved modules."""
        state = {}
        for name, layer in self.adapters.items():
            for key, t in layer.state_dict().items():
                if not key.startswith("base_layer."):
                    state[f"{name}.{key}"] = t
        for name in self.saved_modules:
            for key, t in self.base_model.get_submodule(name).state_dict().items():
                state[f"{name}.{key}"] = t
        if self.coordination is not None:
            for key, t in self.coordination.coordinator.state_dict().items():
                state[f"{COORDINATOR_PREFIX}{key}"] = t
        return state

    def save(self, path: str | os.PathLike) -> Path:
        """Write the config (JSON) and the adapter tensors (safetensors), atomically."""
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "adapted_modules": {n: [l.in_features, l.out_features] for n, l in self.adapters.items()},
        }
        with atomic_directory(path) as tmp:
            save_tensors(self.adapter_state(), tmp / TENSOR_FILE, "the structlora checkpoint")
            write_json(meta, tmp / CONFIG_FILE)
        return Path(path)

    @torch.no_grad()
    def load_adapter_state(self, state: dict[str, Tensor]) -> None:
        """Copy ``state`` in, after checking every key and shape (names the first offender)."""
        own = self.adapter_state()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            key = (missing or unexpected)[0]
            kind = "is missing from the checkpoint" if missing else "is not in the model"
            raise ValueError(
                f"checkpoint does not match the model: key {key!r} {kind} "
                f"({len(missing)} missing, {len(unexpected)} unexpected). "
                "Load it into the same architecture with the same target_modules."
            )
        for key, t in own.items():
            if t.shape != state[key].shape:
                raise ValueError(
                    f"checkpoint does not match the model: {key!r} has shape "
                    f"{tuple(state[key].shape)} in the checkpoint but {tuple(t.shape)} in the model"
                )
        for key, t in own.items():
            t.copy_(state[key])


def wrap(model: nn.Module, config: StructLoRAConfig | None = None, **overrides) -> StructLoRAModel:
    """Inject gated LoRA adapters into ``model`` and freeze its base weights."""
    if config is None:
        config = StructLoRAConfig(**overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    return StructLoRAModel(model, config)


def load(model: nn.Module, path: str | os.PathLike) -> StructLoRAModel:
    """Wrap ``model`` with the config saved at ``path`` and load the adapter tensors."""
    path = Path(path)
    if path.is_file():
        load_tensors(path)  # refuses pickle files with a clear message
        raise ValueError(f"{path} is a file; pass the checkpoint directory written by model.save()")
    meta = read_json(path / CONFIG_FILE)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path / CONFIG_FILE} has format_version={meta.get('format_version')!r}; "
            f"this structlora reads version {FORMAT_VERSION}"
        )
    state = load_tensors(path / TENSOR_FILE)
    wrapped = wrap(model, StructLoRAConfig.from_dict(meta["config"]))
    try:
        wrapped.load_adapter_state(state)
    except ValueError:
        unload(model, merge=False)  # hand the user's model back as it was
        raise
    return wrapped
