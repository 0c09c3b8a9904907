"""Non-finite losses and gradients: skipped with a warning, counted, fatal only when they persist;
never written into a checkpoint, an export or a merge."""
import math

import pytest
import torch
from torch.utils.data import DataLoader

from structlora import StructLoRAConfig, make_optimizer, wrap
from structlora.cli import main
from structlora.resume import CheckpointManager, list_checkpoints, load_checkpoint
from structlora.training import fit
from tests.run_assets import make_assets, run_args
from tests.tiny import tiny_batch, tiny_bert


def _model():
    torch.manual_seed(0)
    cfg = StructLoRAConfig(r=4, target_modules=["query", "value"], modules_to_save=["classifier"], bottleneck="vib",
                           coordinator="gcn", refresh_every=1)  # every step captures gradient sketches
    return wrap(tiny_bert(), cfg)


def _loader(n: int = 6) -> DataLoader:
    return DataLoader([tiny_batch("bert", n=4, seed=i) for i in range(n)], batch_size=None)


def _poison_logits(model, steps: set[int]) -> None:
    """NaN logits (so a NaN loss) on the given 1-based forward calls."""
    calls = []

    def hook(module, inputs, output):
        calls.append(1)
        return output * float("nan") if len(calls) in steps else output

    model.base_model.classifier.register_forward_hook(hook)


def _all_finite(tensors: dict) -> bool:
    return all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_nan_loss_steps_are_skipped_and_nothing_non_finite_is_saved(tmp_path):
    model = _model()
    _poison_logits(model, {2, 3})
    with pytest.warns(RuntimeWarning, match=r"step 3: non-finite loss or gradient .* \(2 in a row, 2 in all"):
        history = fit(model, make_optimizer(model, 1e-2), _loader(), progress=False,
                      checkpoints=CheckpointManager(tmp_path, every=1, keep=None))
    assert [bool(r.get("skipped")) for r in history] == [False, True, True, False, False, False]
    assert model.global_step == 4  # skipped steps do not advance the model's schedules
    assert _all_finite(model.adapter_state()) and _all_finite(model.training_state()[0])
    assert len(list_checkpoints(tmp_path)) == 6
    fresh = _model()
    opt = make_optimizer(fresh, 1e-2)
    for ckpt in list_checkpoints(tmp_path):
        state = load_checkpoint(ckpt, fresh, opt)
        assert state.skipped == min(2, max(0, state.step - 1))
    model.export_peft(tmp_path / "peft")
    model.merge_and_unload()


def test_non_finite_gradient_with_finite_loss_is_skipped():
    model = _model()
    calls = []

    def poison_grad(grad):
        calls.append(1)
        return grad * float("nan") if len(calls) == 2 else grad

    next(iter(model.adapters.values())).lora_B.register_hook(poison_grad)
    with pytest.warns(RuntimeWarning, match="step 2: non-finite"):
        history = fit(model, make_optimizer(model, 1e-2), _loader(4), progress=False)
    assert [bool(r.get("skipped")) for r in history] == [False, True, False, False]
    assert all(math.isfinite(r["total"]) for r in history)  # the loss itself was fine
    # the skipped step's gradient sketches were discarded, not folded into the EMA
    assert model.coordination.grad_sketcher.num_updates == 3
    assert _all_finite(model.adapter_state()) and _all_finite(model.training_state()[0])


def test_persistent_nan_aborts_with_a_clear_message(tmp_path):
    model = _model()
    _poison_logits(model, set(range(3, 100)))
    with pytest.warns(RuntimeWarning), pytest.raises(FloatingPointError, match="3 steps in a row had a non-finite"):
        fit(model, make_optimizer(model, 1e-2), _loader(), progress=False, max_bad_steps=3,
            checkpoints=CheckpointManager(tmp_path, every=1, keep=None))
    last = list_checkpoints(tmp_path)[-1]  # written before the abort, finite, and loadable
    fresh = _model()
    assert load_checkpoint(last, fresh, make_optimizer(fresh, 1e-2)).bad_in_a_row == 2


def test_non_finite_values_are_never_written(tmp_path):
    model = _model()
    fit(model, make_optimizer(model, 1e-2), _loader(2), progress=False)
    model.save(tmp_path / "ckpt")
    before = (tmp_path / "ckpt" / "structlora_state.safetensors").read_bytes()
    with torch.no_grad():
        next(iter(model.adapters.values())).lora_B[0, 0] = float("inf")
    for write in (lambda: model.save(tmp_path / "ckpt"), lambda: model.export_peft(tmp_path / "peft"),
                  lambda: CheckpointManager(tmp_path / "ckpts", every=1).save(
                      model, make_optimizer(model), None, load_state_stub())):
        with pytest.raises(ValueError, match="contains NaN or inf"):
            write()
    with pytest.raises(ValueError, match="non-finite"):
        model.merge()
    assert (tmp_path / "ckpt" / "structlora_state.safetensors").read_bytes() == before
    assert not (tmp_path / "peft").exists() and not list_checkpoints(tmp_path / "ckpts")


def load_state_stub():
    from structlora.resume import LoopState

    return LoopState(step=1)


def test_cli_run_that_diverges_stops_with_one_line(tmp_path, capsys):
    assets = make_assets(tmp_path)
    out = tmp_path / "run"
    # lr 1e30: the first Adam step moves lora_B to ~1e30, so every later forward overflows
    code = main(run_args(assets, out, "--lr", "1e30", "--max-bad-steps", "2", "--epochs", "1", "--batch-size", "4"))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "structlora train: error: 2 steps in a row had a non-finite loss or gradient" in err.strip().splitlines()[-1]
    assert not out.exists()
