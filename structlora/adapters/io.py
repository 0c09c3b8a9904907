"""Safe file output: atomic directories, safetensors only, no non-finite values."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it replaces ``path`` whole.

    A crash or exception inside the block leaves any previous ``path`` untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_finite(tensors: dict[str, Tensor], what: str) -> None:
    for key, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(
                f"refusing to write {what}: tensor {key!r} contains NaN or inf; "
                "the previous files are left as they were"
            )


def save_tensors(tensors: dict[str, Tensor], file: Path, what: str) -> None:
    check_finite(tensors, what)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(file))


def load_tensors(file: str | os.PathLike) -> dict[str, Tensor]:
    """Load a ``.safetensors`` file; pickle-based formats are refused, never unpickled."""
    file = Path(file)
    if file.suffix in PICKLE_SUFFIXES:
        raise ValueError(
            f"{file} looks like a pickle file; structlora only loads safetensors "
            "(pickle can run arbitrary code). Convert it with safetensors.torch.save_file."
        )
    if not file.exists():
        raise FileNotFoundError(f"no tensor file at {file}")
    return load_file(str(file))


def write_json(obj: dict, file: Path) -> None:
    file.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(file: str | os.PathLike) -> dict:
    file = Path(file)
    if not file.exists():
        raise FileNotFoundError(f"no JSON file at {file}")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{file} is not valid JSON: {e}") from None
