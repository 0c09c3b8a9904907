"""Crash-safe checkpoints of a training run, and resuming from them bit for bit.

A checkpoint ``step-00000120/`` holds everything that determines the rest of the run::

    model/                        a structlora checkpoint (``structlora.load`` reads it):
                                  factors, gates, pruning masks, saved modules, coordinator
    training_state.safetensors    optimizer moments, gradient-sketch EMA, layer graph,
                                  torch / CUDA / NumPy RNG states of every rank
    training_state.json           step, data position (epoch, batch), skipped-step counters,
                                  optimizer groups, scheduler, Python RNG states, world size
    train_log.jsonl               one line of loss terms per step so far
    run_config.json               (``train_run`` only) the RunConfig and StructLoRAConfig

The directory is written under a temporary name and renamed into place when
complete (``atomic_directory``), so a crash while saving leaves the previous
checkpoint as it was; tensors go through safetensors only, after a finiteness check.
"""
from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .adapters.io import atomic_directory, load_tensors, read_json, save_tensors, write_json
from .distributed import all_ranks_agree, gather_objects, is_main_process, rank, world_size

FORMAT_VERSION = 1
PREFIX = "step-"
MODEL_DIR = "model"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
LOG_FILE = "train_log.jsonl"


@dataclass
class LoopState:
    """Where a training loop stands; saved with every checkpoint."""

    step: int = 0  # batches processed so far, skipped ones included
    epoch: int = 0  # current epoch
    batch: int = 0  # batches of `epoch` already processed
    bad_in_a_row: int = 0  # consecutive skipped (non-finite) steps
    skipped: int = 0  # skipped steps in all
    history: list[dict] = field(default_factory=list)  # one record per step
    epoch_rng: dict | None = None  # this rank's RNG states when `epoch` began (the loader's order)
    rng: dict | None = None  # resuming: this rank's RNG states to restore at (epoch, batch)


class CheckpointManager:
    """Saves a checkpoint every ``every`` steps into ``directory/step-NNNNNNNN``, keeping the newest ``keep``.

    Every rank calls :meth:`save` (the RNG states are gathered); rank 0 writes.
    ``extra_json`` maps file names to JSON objects written into every checkpoint.
    """

    def __init__(self, directory, every: int, keep: int | None = 2, extra_json: dict[str, dict] | None = None):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"CheckpointManager: every={every!r} is invalid; use an integer >= 1")
        self.directory, self.every, self.keep = Path(directory), every, keep
        self.extra_json = dict(extra_json or {})
        if is_main_process() and self.directory.exists():
            for stale in self.directory.glob(f".{PREFIX}*"):  # temporaries of a crashed save
                shutil.rmtree(stale, ignore_errors=True)

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def save(self, model, optimizer, scheduler, state: LoopState, loader=None) -> Path:
        """Save after step ``state.step``; ``loader``: the training loader (its generators are saved)."""
        rngs = gather_objects({"now": rng_state(loader), "epoch": state.epoch_rng})
        path = self.directory / f"{PREFIX}{state.step:08d}"
        error = None
        if is_main_process():
            try:
                write_checkpoint(path, model, optimizer, scheduler, state, rngs, self.extra_json)
                self._remove_old()
            except Exception as e:  # noqa: BLE001 - re-raised below, after telling the other ranks
                error = e
        if not all_ranks_agree(error is None):
            if error is not None:
                raise error
            raise RuntimeError(f"rank 0 could not write the checkpoint {path}; see its error")
        return path

    def _remove_old(self) -> None:
        if self.keep is None:
            return
        for old in list_checkpoints(self.directory)[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)


def list_checkpoints(directory) -> list[Path]:
    """Complete checkpoints under ``directory``, oldest first."""
    found = [d for d in Path(directory).glob(f"{PREFIX}*") if d.is_dir() and (d / STATE_JSON).exists()]
    return sorted(found, key=lambda d: int(d.name[len(PREFIX):]) if d.name[len(PREFIX):].isdigit() else -1)


def find_checkpoint(path) -> Path:
    """``path`` itself if it is a checkpoint, else its newest ``step-*`` checkpoint."""
    p = Path(path)
    if p.is_file():
        load_tensors(p)  # refuses pickle files with a clear message
        raise ValueError(f"{p} is a file; pass a checkpoint directory written with --checkpoint-every")
    if (p / STATE_JSON).exists():
        return p
    found = list_checkpoints(p) if p.is_dir() else []
    if not found:
        raise FileNotFoundError(
            f"no checkpoint at {p}: expected {STATE_JSON} or {PREFIX}* directories written by "
            "`structlora train --checkpoint-every N`"
        )
    return found[-1]


# --- writing ---

def write_checkpoint(path, model, optimizer, scheduler, state: LoopState, rngs: list[dict],
                     extra_json: dict[str, dict] | None = None) -> Path:
    """Write one checkpoint atomically (rank 0's job).

    ``rngs`` holds every rank's RNG states, ``{"now": ..., "epoch": ...}``: at
    this step and when the current epoch began.
    """
    model_tensors, model_meta = model.training_state()
    opt_tensors, opt_meta = _optimizer_to_files(optimizer)
    rng_tensors, rng_meta = _rngs_to_files(rngs)
    tensors = {**{f"model.{k}": t for k, t in model_tensors.items()}, **opt_tensors, **rng_tensors}
    meta = {
        "format_version": FORMAT_VERSION, "world_size": len(rngs),
        "step": state.step, "epoch": state.epoch, "batch": state.batch,
        "bad_in_a_row": state.bad_in_a_row, "skipped": state.skipped,
        "model": model_meta, "optimizer": opt_meta, "rng": rng_meta,
        "scheduler": None if scheduler is None else scheduler.state_dict(),
    }
    with atomic_directory(path) as tmp:
        model.save(tmp / MODEL_DIR)
        save_tensors(tensors, tmp / STATE_TENSORS, "the training checkpoint")
        write_json(meta, tmp / STATE_JSON)
        with open(tmp / LOG_FILE, "w") as f:
            f.writelines(json.dumps(record) + "\n" for record in state.history)
        for name, obj in (extra_json or {}).items():
            write_json(obj, tmp / name)
    return Path(path)


def _optimizer_to_files(optimizer) -> tuple[dict[str, Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optimizer.{pid}.{key}"] = v
            else:
                scalars[f"{pid}.{key}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def rng_state(loader=None) -> dict:
    """This process's RNG states: torch (CPU and current CUDA device), Python, NumPy,
    and the generators of ``loader`` (a DataLoader's and its sampler's)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "loader": [g.get_state() for g in _loader_generators(loader)]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    try:
        import numpy as np
    except ImportError:
        return state
    state["numpy"] = np.random.get_state()
    return state


def _loader_generators(loader) -> list[torch.Generator]:
    found: list[torch.Generator] = []
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (loader, getattr(loader, "sampler", None), getattr(batch_sampler, "sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not f for f in found):
            found.append(g)
    return found


def _rngs_to_files(rngs: list[dict]) -> tuple[dict[str, Tensor], dict]:
    tensors, meta = {}, {}
    for r, states in enumerate(rngs):
        meta[str(r)] = {}
        for which, state in states.items():
            if state is None:  # no epoch start recorded (a save outside fit)
                continue
            prefix = f"rng.{r}.{which}."
            tensors[prefix + "torch"] = state["torch"]
            tensors.update({f"{prefix}loader.{i}": t for i, t in enumerate(state["loader"])})
            if "cuda" in state:
                tensors[prefix + "cuda"] = state["cuda"]
            entry = {"python": state["python"], "loaders": len(state["loader"])}
            if "numpy" in state:
                kind, keys, pos, has_gauss, cached = state["numpy"]
                tensors[prefix + "numpy"] = torch.from_numpy(keys.astype("int64"))
                entry["numpy"] = [kind, int(pos), int(has_gauss), float(cached)]
            meta[str(r)][which] = entry
    return tensors, meta


# --- reading ---

def load_checkpoint(path, model, optimizer, scheduler=None) -> LoopState:
    """Restore ``model`` (a StructLoRAModel), ``optimizer`` and ``scheduler`` in place.

    The returned :class:`LoopState` carries this rank's RNG states; the training
    loop sets them once it has reached the saved data position (:func:`set_rng_state`).
    """
    path = find_checkpoint(path)
    meta = read_json(path / STATE_JSON)
    _check_meta(path, meta)
    _check_model_config(path / MODEL_DIR, model)
    model.load_adapter_state(load_tensors(path / MODEL_DIR / "structlora_state.safetensors"))
    tensors = load_tensors(path / STATE_TENSORS)
    model.load_training_state(_part(tensors, "model."), meta["model"])
    optimizer.load_state_dict(_optimizer_from_files(_part(tensors, "optimizer."), meta["optimizer"]))
    if (scheduler is None) != (meta["scheduler"] is None):
        raise ValueError(f"{path} was saved {'without' if scheduler is not None else 'with'} an LR scheduler; "
                         "resume with the same training setup")
    if scheduler is not None:
        scheduler.load_state_dict(meta["scheduler"])
    lines = (path / LOG_FILE).read_text().splitlines() if (path / LOG_FILE).exists() else []
    ours = {which: _rng_from_files(tensors, m, f"rng.{rank()}.{which}.") for which, m in meta["rng"][str(rank())].items()}
    return LoopState(step=meta["step"], epoch=meta["epoch"], batch=meta["batch"],
                     bad_in_a_row=meta["bad_in_a_row"], skipped=meta["skipped"],
                     history=[json.loads(line) for line in lines if line.strip()],
                     epoch_rng=ours.get("epoch"), rng=ours["now"])


def _check_meta(path: Path, meta: dict) -> None:
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path / STATE_JSON} has format_version={meta.get('format_version')!r}; "
                         f"this structlora reads version {FORMAT_VERSION}")
    if meta["world_size"] != world_size():
        raise ValueError(
            f"{path} was written by {meta['world_size']} process(es) but this run has {world_size()}; "
            f"resume with the same number (torchrun --nproc_per_node {meta['world_size']}): "
            "the data shards and RNG streams depend on it"
        )


def _check_model_config(model_dir: Path, model) -> None:
    saved = read_json(model_dir / "structlora_config.json")["config"]
    own = model.config.to_dict()
    for key in sorted(set(saved) | set(own)):
        if saved.get(key) != own.get(key):
            raise ValueError(
                f"checkpoint {model_dir.parent} was trained with StructLoRAConfig.{key}={saved.get(key)!r} "
                f"but this model has {key}={own.get(key)!r}; resume with the same configuration"
            )


def _part(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: t for k, t in tensors.items() if k.startswith(prefix)}


def _optimizer_from_files(tensors: dict[str, Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, t in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = t
    for key, v in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _rng_from_files(tensors: dict[str, Tensor], meta: dict, prefix: str) -> dict:
    state = {"torch": tensors[prefix + "torch"], "python": _tuples(meta["python"]),
             "loader": [tensors[f"{prefix}loader.{i}"] for i in range(meta["loaders"])]}
    if prefix + "cuda" in tensors:
        state["cuda"] = tensors[prefix + "cuda"]
    if "numpy" in meta:
        kind, pos, has_gauss, cached = meta["numpy"]
        state["numpy"] = (kind, tensors[prefix + "numpy"].numpy().astype("uint32"), pos, has_gauss, cached)
    return state


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def set_rng_state(state: dict, loader=None) -> None:
    """Restore what :func:`rng_state` returned (for the same kind of ``loader``)."""
    generators = _loader_generators(loader)
    if len(generators) != len(state["loader"]):
        raise ValueError(
            f"the training data loader has {len(generators)} random generator(s) but the checkpoint saved "
            f"{len(state['loader'])}; resume with the same kind of DataLoader (shuffle, sampler, generator)"
        )
    for g, saved in zip(generators, state["loader"]):
        g.set_state(saved)
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
