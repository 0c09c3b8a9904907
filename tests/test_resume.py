"""Checkpoints and resume: a killed run continues bit for bit; a crash while saving loses nothing.

Bit-for-bit equality needs a deterministic CPU: one thread and
``torch.use_deterministic_algorithms`` in every process that trains.
"""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, DistributedSampler

import structlora
import structlora.resume as resume
from structlora import StructLoRAConfig, make_optimizer, wrap
from structlora.cli import main
from structlora.resume import CheckpointManager, find_checkpoint, list_checkpoints, load_checkpoint
from structlora.training import fit
from tests.run_assets import REPO, make_assets, run_args, subprocess_env
from tests.tiny import tiny_batch, tiny_bert

# VIB noise (RNG), pruning and a learned coordinator: every kind of state a resume must restore
LORA = ["--bottleneck", "vib", "--coordinator", "gcn", "--refresh-every", "2", "--prune-after", "4",
        "--prune-every", "2", "--target-rank", "2", "--epochs", "2", "--batch-size", "8", "--threads", "1",
        "--checkpoint-every", "1"]

# `structlora train` that hangs while writing the checkpoint of step 4, after its model/
# part is on disk and before the rest: the test kills it there with SIGKILL
HANGING_WORKER = """
import sys, time, torch
import structlora.resume as resume
torch.use_deterministic_algorithms(True)
save_tensors = resume.save_tensors
def hanging(tensors, file, what):
    if file.parent.name.startswith(".step-00000004.tmp"):
        time.sleep(600)
    save_tensors(tensors, file, what)
resume.save_tensors = hanging
from structlora.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.fixture
def deterministic():
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.set_num_threads(threads)  # `--threads 1` sets it for the whole process
    torch.use_deterministic_algorithms(det)


def _tensors(run_dir: Path) -> dict:
    return {**load_file(str(run_dir / "checkpoint" / "structlora_state.safetensors")),
            **{f"peft.{k}": v for k, v in load_file(str(run_dir / "adapter" / "adapter_model.safetensors")).items()}}


def _wait_for(pattern: str, root: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not list(root.glob(pattern)):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < end, f"no {pattern} after {timeout}s"
        time.sleep(0.05)


def test_killed_run_resumes_bit_for_bit(tmp_path, deterministic):
    assets = make_assets(tmp_path)
    killed, ckpts = tmp_path / "killed", tmp_path / "killed-checkpoints"
    proc = subprocess.Popen([sys.executable, "-c", HANGING_WORKER, *run_args(assets, killed, *LORA)],
                            cwd=REPO, env=subprocess_env(), stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(".step-00000004.tmp-*/model/structlora_state.safetensors", ckpts, proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.stderr.close()
    assert not killed.exists()  # killed mid-run: no final artefacts
    assert [p.name for p in list_checkpoints(ckpts)] == ["step-00000002", "step-00000003"]
    assert list(ckpts.glob(".step-00000004.tmp-*"))  # the interrupted save, never renamed into place
    from transformers import AutoModelForSequenceClassification

    structlora.load(AutoModelForSequenceClassification.from_pretrained(assets / "model"), ckpts / "step-00000003" / "model")

    assert main(["train", "--resume", str(ckpts), "--output-dir", str(killed)]) == 0
    assert not list(ckpts.glob(".step-*"))  # the stale temporary is cleaned up
    reference = tmp_path / "reference"
    assert main(run_args(assets, reference, *LORA)) == 0
    ours, ref = _tensors(killed), _tensors(reference)
    assert ours.keys() == ref.keys()
    for key in ref:
        assert torch.equal(ours[key], ref[key]), key
    assert (killed / "train_log.jsonl").read_text() == (reference / "train_log.jsonl").read_text()
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["steps"] == 8 and metrics["effective_ranks"] == json.loads(
        (reference / "metrics.json").read_text())["effective_ranks"]


# --- the API: fit(..., checkpoints=..., resume=...) on a tiny model, in process ---

def _loader(kind: str = "set_epoch") -> DataLoader:
    """Three ways a loader's order comes about: set_epoch, its own generator, the global RNG."""
    batches = [tiny_batch("bert", n=4, seed=i) for i in range(5)]
    if kind == "set_epoch":
        return DataLoader(batches, batch_size=None, sampler=DistributedSampler(batches, 1, 0, shuffle=True, seed=0))
    generator = torch.Generator().manual_seed(0) if kind == "generator" else None
    return DataLoader(batches, batch_size=None, shuffle=True, generator=generator)


def _build():
    torch.manual_seed(0)
    cfg = StructLoRAConfig(r=4, target_modules=["query", "value"], modules_to_save=["classifier"], bottleneck="vib",
                           coordinator="gcn", refresh_every=2, prune_after=3, prune_every=2, target_rank=3)
    model = wrap(tiny_bert(), cfg)
    opt = make_optimizer(model, 1e-2)
    return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / (k + 1))


@pytest.mark.parametrize("kind", ["set_epoch", "generator", "global_rng"])
def test_resume_from_any_step_continues_exactly(tmp_path, deterministic, kind):
    torch.set_num_threads(1)
    model, opt, sched = _build()
    history = fit(model, opt, _loader(kind), epochs=3, scheduler=sched, progress=False,
                  checkpoints=CheckpointManager(tmp_path, every=1, keep=None))
    final = {k: v.clone() for k, v in model.adapter_state().items()}
    for step in (3, 5, 14):  # mid-epoch, end of an epoch, one step before the end
        model, opt, sched = _build()
        resumed = fit(model, opt, _loader(kind), epochs=3, scheduler=sched, progress=False,
                      resume=tmp_path / f"step-{step:08d}")
        assert resumed == history
        for key, t in model.adapter_state().items():
            assert torch.equal(t, final[key]), (step, key)


def test_keeps_newest_checkpoints_and_finds_the_latest(tmp_path):
    model, opt, sched = _build()
    fit(model, opt, _loader(), epochs=1, scheduler=sched, progress=False,
        checkpoints=CheckpointManager(tmp_path, every=2, keep=2))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002", "step-00000004"]
    assert find_checkpoint(tmp_path).name == "step-00000004"


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, sched = _build()
    fit(model, opt, _loader(), epochs=1, scheduler=sched, progress=False, max_steps=2,
        checkpoints=CheckpointManager(tmp_path, every=2))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def crash(tensors, file, what):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(resume, "save_tensors", crash)
    with pytest.raises(OSError, match="injected"):
        fit(model, opt, _loader(), epochs=1, scheduler=sched, progress=False,
            checkpoints=CheckpointManager(tmp_path, every=1))
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    monkeypatch.undo()
    model, opt, sched = _build()
    assert load_checkpoint(tmp_path, model, opt, sched).step == 2


def test_resume_refuses_bad_checkpoints_and_changed_options(tmp_path, capsys):
    assets = make_assets(tmp_path)
    run = tmp_path / "run"
    assert main(run_args(assets, run, "--epochs", "1", "--batch-size", "16", "--checkpoint-every", "1")) == 0
    ckpts = tmp_path / "run-checkpoints"
    capsys.readouterr()
    (tmp_path / "weights.pt").write_bytes(b"not really a pickle")
    cases = [(["--resume", str(tmp_path / "weights.pt")], "pickle"),
             (["--resume", str(tmp_path / "nothing")], "no checkpoint"),
             (["--resume", str(ckpts), "--lr", "0.5"], "lr=0.5 but the checkpoint was trained with lr=0.002"),
             (["--resume", str(ckpts), "--r", "2"], "r=2 but the checkpoint was trained with r=4")]
    for extra, message in cases:
        assert main(["train", "--output-dir", str(tmp_path / "other"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "other").exists()
