"""Multi-process training with ``torch.distributed`` (see docs/distributed.md).

Data parallelism only: every rank holds the whole model, sees its own shard of
each global batch, and DistributedDataParallel averages the gradients of the
LoRA factors, gates and saved modules. The graph coordinator is left out of
DDP (:meth:`StructLoRAModel._ddp_params_and_buffers_to_ignore`): its losses are
computed outside the forward pass, where DDP cannot see them; its gradients are
averaged here instead (:func:`sync_coordinator_grads`). Gradient sketches are
averaged in ``GradientSketcher.update``, so every rank builds the same graph.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


def is_distributed() -> bool:
    """A process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that writes files and prints."""
    return rank() == 0


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group that ``torchrun`` describes in the environment.

    Returns True if this process is one of several ranks. Without ``WORLD_SIZE > 1``
    nothing happens. ``backend`` defaults to ``nccl`` with CUDA, ``gloo`` on CPU.
    """
    if dist.is_available() and dist.is_initialized():
        return is_distributed()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend)
    return is_distributed()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def default_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (downloads, cache conversions), then the others."""
    if not is_main_process():
        barrier()
    yield
    if is_main_process():
        barrier()


def all_ranks_agree(flag: bool, device: torch.device | None = None) -> bool:
    """True only if ``flag`` is True on every rank (one all-reduce; no-op on one process)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1 if flag else 0], device=device or _collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def _collective_device() -> torch.device:
    return default_device() if dist.get_backend() == "nccl" else torch.device("cpu")


def gather_objects(obj) -> list:
    """``obj`` from every rank, in rank order, on every rank."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


# --- the model under DDP ---

def unwrap(model: nn.Module) -> nn.Module:
    """The StructLoRAModel inside a DDP (or similar ``.module``) wrapper."""
    return getattr(model, "module", model)


def wrap_ddp(model: nn.Module, find_unused_parameters: bool = False, **ddp_kwargs) -> nn.Module:
    """``DistributedDataParallel(model)`` for a StructLoRAModel, coordinator left to this module.

    Broadcasts the coordinator's parameters from rank 0 (DDP does that for the
    rest). Returns ``model`` itself when not distributed. Set
    ``find_unused_parameters`` if some adapted module is never called in forward.
    """
    if not is_distributed():
        return model
    broadcast_coordinator(model)
    if next(model.parameters()).is_cuda:
        ddp_kwargs.setdefault("device_ids", [next(model.parameters()).device.index])
    return DistributedDataParallel(model, find_unused_parameters=find_unused_parameters, **ddp_kwargs)


def _coordinator_params(model: nn.Module) -> list[Tensor]:
    coordination = getattr(unwrap(model), "coordination", None)
    return [] if coordination is None else list(coordination.coordinator.parameters())


@torch.no_grad()
def broadcast_coordinator(model: nn.Module) -> None:
    """Copy rank 0's coordinator parameters to every rank."""
    if is_distributed():
        for p in _coordinator_params(model):
            dist.broadcast(p.data, src=0)


@torch.no_grad()
def sync_coordinator_grads(model: nn.Module) -> None:
    """Average the coordinator's gradients over ranks (after ``backward``, before the optimizer).

    Its loss depends only on replicated state, so the gradients already agree up
    to floating-point non-determinism; averaging makes them bit-identical.
    """
    grads = [p.grad for p in _coordinator_params(model) if p.grad is not None]
    if not is_distributed() or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))


@torch.no_grad()
def replica_divergence(model: nn.Module) -> float:
    """Largest absolute difference to rank 0 over every trained tensor and the training
    state (gradient-sketch EMA, layer graph); 0.0 means the replicas are identical."""
    if not is_distributed():
        return 0.0
    inner = unwrap(model)
    tensors = dict(inner.adapter_state())
    tensors.update(inner.training_state()[0])
    worst = torch.zeros(1, dtype=torch.float64, device=_collective_device())
    shapes = gather_objects({k: tuple(t.shape) for k, t in tensors.items()})
    if any(s != shapes[0] for s in shapes):
        worst.fill_(float("inf"))
    else:
        for key in sorted(tensors):
            ours = tensors[key].to(worst.device)
            ref = ours.clone()
            dist.broadcast(ref, src=0)
            diff = (ours.double() - ref.double()).abs().max() if ours.numel() else ours.new_zeros(())
            worst = torch.maximum(worst, diff.double().reshape(1))
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst.item())
