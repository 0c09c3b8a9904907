"""Gates: eval masks in [0, 1], pruned directions exactly 0, inits, noise, domain errors."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from structlora.adapters import IdentityGate
from structlora.bottleneck import FixedMaskGate, GaussianGate, HardConcreteGate, SigmoidGate, resolve_gate

R = 6
params = st.lists(st.floats(-30, 30), min_size=R, max_size=R)  # logits far into both saturations
pruned_sets = st.lists(st.booleans(), min_size=R, max_size=R)


def set_params(gate, values, other):
    with torch.no_grad():
        for p, v in zip(gate.parameters(), (values, other)):
            p.copy_(torch.tensor(v))


def learnable_gates():
    return [SigmoidGate(R), GaussianGate(R), HardConcreteGate(R)]


@given(values=params, other=params, pruned=pruned_sets)
def test_eval_masks_lie_in_unit_interval_and_pruned_are_zero(values, other, pruned):
    for gate in learnable_gates():
        set_params(gate, values, other)
        gate.prune(torch.tensor(pruned))
        m = gate.mask()
        assert m.shape == (R,)
        assert bool(((m >= 0) & (m <= 1)).all()), type(gate).__name__
        assert bool((m[torch.tensor(pruned)] == 0).all())


@given(values=params, other=params, pruned=pruned_sets)
def test_pruned_directions_are_exactly_zero_in_train_and_eval(values, other, pruned):
    z = torch.randn(3, 5, R, generator=torch.Generator().manual_seed(0))
    for gate in learnable_gates():
        set_params(gate, values, other)
        gate.prune(torch.tensor(pruned))
        for training in (True, False):
            out = gate.train(training)(z)
            assert out.shape == z.shape
            assert bool((out[..., torch.tensor(pruned)] == 0).all())


@given(init=st.floats(0.01, 0.99))
def test_inits_set_the_eval_gate(init):
    # float32 logit / sigmoid round trip: relative error a few ulps
    # log_sigma2_init=-9 keeps log alpha = -9 - 2 log(init) below the threshold 3 for init >= 0.01
    gaussian = GaussianGate(R, init_mean=init, log_sigma2_init=-9.0)
    for gate in (SigmoidGate(R, init), gaussian, HardConcreteGate(R, init)):
        torch.testing.assert_close(gate.mask(), torch.full((R,), init), rtol=1e-5, atol=1e-6)


def test_sigmoid_gate_is_deterministic_in_training():
    gate = SigmoidGate(R, 0.7).train()
    z = torch.randn(4, R)
    assert torch.equal(gate(z), gate.eval()(z))


def test_gaussian_gate_noise_has_the_stated_moments():
    gate = GaussianGate(2, init_mean=0.8, log_sigma2_init=math.log(0.25)).train()
    torch.manual_seed(0)
    samples = gate(torch.ones(40_000, 2))  # z = 1: samples are mu + sigma * eps
    # 40k draws: the standard errors of mean and std are 0.5/200 = 0.0025 and ~0.0018; 4 SE margins
    torch.testing.assert_close(samples.mean(0), torch.full((2,), 0.8), rtol=0, atol=0.01)
    torch.testing.assert_close(samples.std(0), torch.full((2,), 0.5), rtol=0, atol=0.01)


def test_gaussian_gate_that_would_start_closed_is_rejected():
    # log alpha0 = -1 - 2 log(0.1) = 3.61 >= 3
    with pytest.raises(ValueError, match=r"GaussianGate: init_mean=0.1 with log_sigma2_init=-1.0 gives log alpha=3.61 >= threshold=3.0"):
        GaussianGate(2, init_mean=0.1, log_sigma2_init=-1.0)


def test_gaussian_gate_eval_mask_closes_above_the_threshold():
    gate = GaussianGate(3, init_mean=0.5, threshold=3.0)
    with torch.no_grad():
        # log alpha = log sigma2 - 2 log 0.5 = log sigma2 + 1.386
        gate.log_sigma2.copy_(torch.tensor([0.0, 1.6, 2.0]))
    assert gate.log_alpha()[1] < 3.0 < gate.log_alpha()[2]
    torch.testing.assert_close(gate.mask(), torch.tensor([0.5, 0.5, 0.0]))


def test_hard_concrete_samples_hit_exact_zeros_and_ones():
    gate = HardConcreteGate(1, init=0.5).train()
    torch.manual_seed(0)
    m = gate(torch.ones(20_000, 1))
    assert bool(((m >= 0) & (m <= 1)).all())
    assert (m == 0).any() and (m == 1).any()
    # empirical P(m != 0) vs the closed form; 20k draws: SE <= 0.0036, 4 SE margin
    assert abs(float((m != 0).float().mean()) - float(gate.prob_nonzero().detach())) < 0.015


def test_fixed_mask_gate_sets_and_keeps():
    gate = FixedMaskGate(4, keep=[1, 0, 0.5, 1])
    torch.testing.assert_close(gate.mask(), torch.tensor([1, 0, 0.5, 1.0]))
    gate.keep_only([2])
    torch.testing.assert_close(gate.mask(), torch.tensor([0, 0, 1, 0.0]))
    assert list(gate.parameters()) == [] and "fixed_mask" in gate.state_dict()


@pytest.mark.parametrize("make", [
    lambda v: SigmoidGate(4, init=v),
    lambda v: GaussianGate(4, init_mean=v),
    lambda v: HardConcreteGate(4, init=v),
])
@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, -0.2, float("nan")])
def test_init_outside_the_open_unit_interval_is_rejected(make, value):
    with pytest.raises(ValueError, match=r"Gate: init(_mean)?=.* outside the allowed range \(0, 1\)"):
        make(value)


@pytest.mark.parametrize("value", [1.5, -0.1, float("nan"), float("inf")])
def test_fixed_mask_value_outside_unit_interval_is_rejected(value):
    gate = FixedMaskGate(3)
    with pytest.raises(ValueError, match=r"FixedMaskGate: mask value .* at direction 1 is outside the allowed range \[0, 1\]"):
        gate.set_mask([1.0, value, 0.0])
    assert torch.equal(gate.mask(), torch.ones(3))  # a rejected mask changes nothing


def test_other_bad_gate_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"FixedMaskGate: the mask must have shape \(3,\), got \(2,\)"):
        FixedMaskGate(3, keep=[1, 0])
    with pytest.raises(ValueError, match=r"FixedMaskGate.keep_only: direction indices must lie in \[0, 3\)"):
        FixedMaskGate(3).keep_only([3])
    with pytest.raises(ValueError, match="GaussianGate: log_sigma2_init=inf must be a finite number"):
        GaussianGate(3, log_sigma2_init=float("inf"))
    with pytest.raises(ValueError, match=r"HardConcreteGate: .* limits \(gamma, zeta\) with gamma < 0 and zeta > 1"):
        HardConcreteGate(3, limits=(0.1, 1.1))
    with pytest.raises(ValueError, match="SigmoidGate: r must be a positive integer"):
        SigmoidGate(0)


def test_reprs():
    assert repr(SigmoidGate(4)) == "SigmoidGate(r=4, init=0.95)"
    assert repr(GaussianGate(4)) == "GaussianGate(r=4, init_mean=0.95, log_sigma2_init=-1, threshold=3)"
    assert repr(HardConcreteGate(2)) == "HardConcreteGate(r=2, init=0.95, temperature=0.666667, limits=(-0.1, 1.1))"
    assert repr(FixedMaskGate(3, keep=[1, 0, 1])) == "FixedMaskGate(r=3, kept=2)"


@pytest.mark.parametrize("query, cls", [
    ("sigmoid", SigmoidGate), ("GaussianGate", GaussianGate), ("hard_concrete", HardConcreteGate),
    ("fixed-mask", FixedMaskGate), ("identity", IdentityGate), (SigmoidGate, SigmoidGate),
])
def test_resolve_gate(query, cls):
    gate = resolve_gate(query, r=3)
    assert type(gate) is cls and gate.r == 3
