import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from transformers.pytorch_utils import Conv1D

from structlora.adapters import Gate, GatedLoRALayer, IdentityGate, fold


class FixedGate(Gate):
    """A gate with a fixed mask, for tests."""

    def __init__(self, m):
        super().__init__(len(m))
        self.register_buffer("m", torch.as_tensor(m, dtype=torch.float64))

    def open_mask(self):
        return self.m


def make_layer(d_in=6, d_out=5, r=3, gate=None, conv=False, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    base = Conv1D(d_out, d_in) if conv else nn.Linear(d_in, d_out)
    base = base.to(dtype)
    with torch.no_grad():
        base.weight.normal_()
    layer = GatedLoRALayer(base, r=r, alpha=2.0 * r, gate=gate).to(dtype)
    with torch.no_grad():
        layer.lora_B.normal_()
    return layer


def test_init_matches_loralib_convention():
    layer = GatedLoRALayer(nn.Linear(10, 7), r=4, alpha=8)
    assert layer.lora_A.shape == (4, 10) and layer.lora_B.shape == (7, 4)
    assert torch.count_nonzero(layer.lora_B) == 0
    assert layer.scaling == 2.0
    bound = 1 / math.sqrt(10)  # kaiming_uniform(a=sqrt(5)) bound = 1/sqrt(fan_in)
    assert layer.lora_A.abs().max() <= bound


def test_rslora_scaling():
    assert GatedLoRALayer(nn.Linear(10, 7), r=4, alpha=8, use_rslora=True).scaling == 4.0


@pytest.mark.parametrize("conv", [False, True])
def test_forward_equals_dense_delta(conv):
    layer = make_layer(conv=conv).eval()
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    w = layer.base_layer.weight.T if conv else layer.base_layer.weight
    expected = layer.base_layer(x) + x @ layer.delta_weight().T
    assert torch.allclose(layer(x), expected, atol=1e-12)  # float64: only rounding
    assert w.shape == (5, 6)


@pytest.mark.parametrize("conv", [False, True])
def test_merge_unmerge_roundtrip(conv):
    layer = make_layer(conv=conv).eval()
    x = torch.randn(3, 6, dtype=torch.float64)
    before, w0 = layer(x), layer.base_layer.weight.clone()
    layer.merge()
    assert layer.merged and torch.allclose(layer(x), before, atol=1e-12)
    layer.unmerge()
    assert torch.allclose(layer(x), before, atol=1e-12)
    assert torch.allclose(layer.base_layer.weight, w0, atol=1e-12)


def test_eval_does_not_merge():
    layer = make_layer()
    layer.eval()
    assert not layer.merged


def test_zero_gate_or_zero_B_is_base():
    x = torch.randn(3, 6, dtype=torch.float64)
    layer = make_layer(gate=FixedGate([0.0, 0.0, 0.0])).eval()
    assert torch.equal(layer(x), layer.base_layer(x))
    layer = make_layer().eval()
    with torch.no_grad():
        layer.lora_B.zero_()
    assert torch.equal(layer(x), layer.base_layer(x))


def test_unsafe_merge_refused_and_weight_kept():
    layer = make_layer()
    with torch.no_grad():
        layer.lora_B[0, 0] = float("nan")
    w0 = layer.base_layer.weight.clone()
    with pytest.raises(ValueError, match="refusing to merge.*NaN or inf"):
        layer.merge()
    assert torch.equal(layer.base_layer.weight, w0) and not layer.merged


@pytest.mark.parametrize("r", [0, -1, 6])
def test_bad_rank(r):
    with pytest.raises(ValueError, match=rf"r={r} is invalid.*1 <= r <= 5"):
        GatedLoRALayer(nn.Linear(6, 5), r=r)


def test_unsupported_layer_is_named():
    with pytest.raises(TypeError, match="Conv2d"):
        GatedLoRALayer(nn.Conv2d(3, 3, 1), r=1)


def test_prune_keeps_direction_zero_in_train_and_eval():
    gate = IdentityGate(3)
    gate.prune([1])
    z = torch.ones(2, 3)
    assert gate.train()(z)[:, 1].abs().sum() == 0
    assert gate.eval()(z)[:, 1].abs().sum() == 0
    assert gate.mask().tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\)"):
        gate.prune([3])


def test_recording_only_in_training():
    layer = make_layer()
    layer.recording = True
    x = torch.randn(4, 7, 6, dtype=torch.float64)
    layer.train()(x)
    assert layer.recorded["z"].shape == (4, 3) and layer.recorded["x"].shape == (4, 6)
    assert not layer.recorded["x"].requires_grad and layer.recorded["z"].requires_grad
    layer.recorded = {}
    layer.eval()(x)
    assert layer.recorded == {}


def test_token_mask_pools_only_real_tokens():
    layer = make_layer().train()
    layer.recording = True
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    layer.token_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    layer(x)
    assert torch.allclose(layer.recorded["x"][0], x[0, :2].mean(0))
    assert torch.allclose(layer.recorded["x"][1], x[1].mean(0))


gate_vectors = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6)


@given(m=gate_vectors, d_in=st.integers(6, 9), d_out=st.integers(6, 9), conv=st.booleans())
def test_fold_changes_no_output_and_bounds_rank(m, d_in, d_out, conv):
    layer = make_layer(d_in=d_in, d_out=d_out, r=len(m), gate=FixedGate(m), conv=conv).eval()
    x = torch.randn(3, d_in, dtype=torch.float64)
    f = fold(layer)
    folded = layer.base_layer(x) + f.scaling * x @ f.lora_A.T @ f.lora_B.T
    assert torch.allclose(layer(x), folded, atol=1e-10)  # float64 rounding over a few products
    nonzero = sum(v > 0 for v in m)
    assert f.rank == nonzero
    assert torch.linalg.matrix_rank(layer.delta_weight()) <= nonzero
    if nonzero:  # alpha' reproduces the scaling at the new rank
        assert math.isclose(f.alpha / f.rank, layer.scaling)
