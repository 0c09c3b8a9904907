"""The 'vib' and 'l0' estimators: closed-form terms, averaging, wrong gates."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from structlora.bottleneck import GaussianGate, HardConcreteGate, L0Bottleneck, SigmoidGate, VIBBottleneck
from tests.bottleneck.helpers import single_layer

logits = st.floats(-15, 15)
log_sigma2 = st.floats(-15, 15)


def gaussian_gate(phi, ls2):
    gate = GaussianGate(len(phi), log_sigma2_init=-9.0)
    with torch.no_grad():
        gate.gate_logits.copy_(torch.tensor(phi, dtype=torch.float32))
        gate.log_sigma2.copy_(torch.tensor(ls2, dtype=torch.float32))
    return gate.double()


@given(st.lists(st.tuples(logits, log_sigma2), min_size=1, max_size=6))
def test_kl_is_nonnegative_and_matches_the_formula(params):
    phi, ls2 = zip(*params)
    gate = gaussian_gate(phi, ls2)
    mu2 = torch.sigmoid(gate.gate_logits) ** 2
    sigma2 = gate.log_sigma2.exp()
    expected = 0.5 * torch.log1p(mu2 / sigma2)
    kl = gate.kl()
    assert bool((kl >= 0).all())
    torch.testing.assert_close(kl, expected, rtol=1e-9, atol=1e-12)  # float64; softplus form is the stable one


@given(logits, log_sigma2, st.floats(0.01, 5))
def test_kl_increases_with_signal_to_noise(phi, ls2, step):
    # raising mu (phi up) or lowering sigma raises mu^2 / sigma^2 and with it the KL
    base = gaussian_gate([phi], [ls2]).kl()
    assert gaussian_gate([phi + step], [ls2]).kl() > base
    assert gaussian_gate([phi], [ls2 - step]).kl() > base


def test_vib_penalty_averages_unpruned_directions_of_all_adapters():
    est = VIBBottleneck()
    a, b = single_layer(est.make_gate(4)), single_layer(est.make_gate(2), d_out=2)
    with torch.no_grad():
        a.gate.log_sigma2.copy_(torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    a.gate.prune([3])
    expected = torch.cat([a.gate.kl()[:3], b.gate.kl()]).mean()
    torch.testing.assert_close(est.penalty({"a": a, "b": b}), expected)
    assert est.penalty({"a": a, "b": b}).dim() == 0


def test_vib_penalty_initial_value():
    # mu = 0.95, sigma^2 = e^-1: KL = 0.5 log(1 + 0.95^2 e) per direction
    layer = single_layer(VIBBottleneck().make_gate(4))
    expected = 0.5 * math.log1p(0.95**2 * math.e)
    assert VIBBottleneck().penalty({"a": layer}).item() == pytest.approx(expected, rel=1e-6)  # float32


def test_vib_gradient_closes_gates():
    layer = single_layer(VIBBottleneck().make_gate(3))
    VIBBottleneck().penalty({"a": layer}).backward()
    assert bool((layer.gate.gate_logits.grad > 0).all())  # descent lowers mu
    assert bool((layer.gate.log_sigma2.grad < 0).all())  # descent raises sigma


def test_l0_penalty_is_the_expected_open_fraction():
    est = L0Bottleneck()
    layer = single_layer(est.make_gate(4))
    layer.gate.prune([0])
    torch.testing.assert_close(est.penalty({"a": layer}), layer.gate.prob_nonzero()[1:].mean())
    assert isinstance(layer.gate, HardConcreteGate) and repr(est).startswith("L0Bottleneck(init=0.95")


@pytest.mark.parametrize("est, key", [(VIBBottleneck(), "kl"), (L0Bottleneck(), "l0")])
def test_wrong_gate_is_rejected_by_name(est, key):
    layer = single_layer(SigmoidGate(4))
    with pytest.raises(ValueError, match=rf"the '{est.name}' estimator needs gates that provide a '{key}' term .* adapter 'q' has a SigmoidGate"):
        est.penalty({"q": layer})


def test_all_pruned_gives_zero_penalty():
    layer = single_layer(VIBBottleneck().make_gate(2), d_out=2)
    layer.gate.prune([0, 1])
    assert VIBBottleneck().penalty({"a": layer}) == 0


def test_vib_validates_its_gate_arguments_early():
    with pytest.raises(ValueError, match=r"GaussianGate: init_mean=1.2 is outside the allowed range \(0, 1\)"):
        VIBBottleneck(init_mean=1.2)
    est = VIBBottleneck()
    assert (est.name, est.needs_stats, est.needs_labels) == ("vib", False, False)
    assert repr(est) == "VIBBottleneck(init_mean=0.95, log_sigma2_init=-1, threshold=3)"
