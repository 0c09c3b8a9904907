"""HSIC math (kernels, centering, nHSIC), label features and the 'hsic' estimator."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from structlora.bottleneck import (
    HSICBottleneck, SigmoidGate, center, gaussian_kernel, hsic, label_features, linear_kernel, nhsic,
)
from structlora.bottleneck.hsic import EPS
from tests.bottleneck.helpers import single_layer

# float64 throughout; entries in [-3, 3] keep kernels away from underflow so tolerances stay tight
EPS64 = 1e-10


@st.composite
def paired_samples(draw, min_n=2, max_n=9):
    """Two feature matrices on the same n examples: X (n, d), Y (n, c)."""
    n = draw(st.integers(min_n, max_n))
    x = draw(arrays(np.float64, (n, draw(st.integers(1, 4))), elements=st.floats(-3, 3)))
    y = draw(arrays(np.float64, (n, draw(st.integers(1, 3))), elements=st.floats(-3, 3)))
    return torch.from_numpy(x), torch.from_numpy(y)


def kernels(x, y):
    return gaussian_kernel(x), linear_kernel(y)


@given(paired_samples())
def test_hsic_is_nonnegative_and_symmetric(xy):
    k, l = kernels(*xy)
    value = hsic(k, l)
    assert value >= -EPS64  # PSD kernels: tr(HKH HLH) >= 0 up to rounding
    assert torch.equal(value, hsic(l, k))  # <HKH, HLH>_F is symmetric bit for bit
    assert -EPS64 <= nhsic(k, l) <= 1 + EPS64  # Cauchy-Schwarz
    # nhsic centres each kernel once; it is exactly the normalised HSIC of its definition
    assert torch.equal(nhsic(k, l), hsic(k, l) / (hsic(k, k) * hsic(l, l)).clamp_min(EPS).sqrt())


@given(paired_samples(), st.randoms(use_true_random=False))
def test_hsic_is_invariant_to_permuting_examples(xy, rnd):
    x, y = xy
    perm = torch.tensor(rnd.sample(range(x.shape[0]), x.shape[0]))
    k, l = kernels(x, y)
    kp, lp = kernels(x[perm], y[perm])
    # same sums in another order: float64 rounding only
    torch.testing.assert_close(hsic(kp, lp), hsic(k, l), rtol=1e-9, atol=1e-12)


@given(paired_samples())
def test_hsic_matches_the_trace_formula(xy):
    k, l = kernels(*xy)
    n = k.shape[0]
    h = torch.eye(n, dtype=k.dtype) - 1.0 / n
    expected = torch.trace(k @ h @ l @ h) / (n - 1) ** 2
    torch.testing.assert_close(hsic(k, l), expected, rtol=1e-9, atol=1e-12)  # float64 rounding


@given(paired_samples(), st.floats(0.1, 10))
def test_median_heuristic_kernel_is_scale_free(xy, c):
    x, _ = xy
    k = gaussian_kernel(x)
    assert torch.equal(k, k.T) and torch.equal(torch.diagonal(k), torch.ones(x.shape[0], dtype=x.dtype))
    torch.testing.assert_close(gaussian_kernel(c * x), k, rtol=1e-9, atol=1e-12)  # float64 rounding


def test_centering_zeroes_row_and_column_means():
    k = gaussian_kernel(torch.randn(7, 3, dtype=torch.float64))
    torch.testing.assert_close(center(k).sum(0), torch.zeros(7, dtype=k.dtype), rtol=0, atol=1e-12)


def _samples(seed, n=200):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=torch.float64), torch.randn(n, 2, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("seed", range(5))
def test_nhsic_separates_independent_from_dependent_samples(seed):
    x, noise = _samples(seed)
    kx = gaussian_kernel(x)
    independent = nhsic(kx, gaussian_kernel(noise))
    dependent = nhsic(kx, gaussian_kernel(x[:, :2] ** 2 + 0.1 * noise))  # uncorrelated yet dependent
    # Measured over 20 seeds at n = 200: independent 0.014-0.049 (the O(1/n) bias of the biased
    # estimator), dependent 0.147-0.211. Thresholds sit between the two ranges with a margin.
    assert independent < 0.07
    assert dependent > 0.12


@pytest.mark.parametrize("seed", range(5))
def test_nhsic_with_class_labels(seed):
    x, _ = _samples(seed)
    labels = torch.randint(0, 2, (200,), generator=torch.Generator().manual_seed(seed + 100))
    l = linear_kernel(label_features(labels).double())
    # Measured over 20 seeds at n = 200: independent 0.004-0.030, shifted by the label 0.68-0.77.
    assert nhsic(gaussian_kernel(x), l) < 0.06
    assert nhsic(gaussian_kernel(x + 2.0 * labels[:, None]), l) > 0.5


def test_constant_features_give_zero_not_nan():
    z = torch.zeros(4, 3, requires_grad=True)  # e.g. every direction of an adapter pruned
    value = nhsic(gaussian_kernel(z), linear_kernel(torch.randn(4, 2)))
    value.backward()
    assert value == 0 and torch.isfinite(z.grad).all()


def test_gaussian_kernel_gradient_with_fixed_bandwidth():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    l = linear_kernel(torch.randn(5, 2, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda x: nhsic(gaussian_kernel(x, sigma2=2.0), l), (x,))


def test_label_features():
    torch.testing.assert_close(label_features(torch.tensor([3, 7, 3])), F.one_hot(torch.tensor([0, 1, 0])).float())
    tokens = torch.tensor([[5, 9, 5, -100], [-100, -100, -100, -100], [9, 2, -100, -100]])
    expected = torch.tensor([[0, 2 / 3, 1 / 3], [0, 0, 0], [0.5, 0, 0.5]])  # vocab compacted to (2, 5, 9)
    torch.testing.assert_close(label_features(tokens), expected)
    torch.testing.assert_close(label_features(torch.tensor([0.5, -1.0])), torch.tensor([[0.5], [-1.0]]))
    with pytest.raises(ValueError, match=r"labels of shape \(2, 2, 2\) are not understood"):
        label_features(torch.zeros(2, 2, 2, dtype=torch.long))


def recorded_layer(n=6, seed=0, d_in=8):
    layer = single_layer(SigmoidGate(4), d_in=d_in, seed=seed).train()
    layer.recording = True
    layer(torch.randn(n, 3, d_in, generator=torch.Generator().manual_seed(seed)))  # (n, T, d_in)
    return layer


def test_penalty_gradient_reaches_gate_and_lora_A():
    layer = recorded_layer()
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    penalty = HSICBottleneck().penalty({"a": layer}, labels)
    assert penalty.dim() == 0 and torch.isfinite(penalty)
    penalty.backward()
    for p in (layer.gate.gate_logits, layer.lora_A):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert layer.lora_B.grad is None  # the penalty acts on z = m * A x, before B


def test_penalty_averages_adapters_and_accepts_token_labels():
    a, b = recorded_layer(seed=0), recorded_layer(seed=1)
    est = HSICBottleneck(gamma=0.5)
    labels = torch.tensor([[4, 7, -100], [7, 7, 2], [-100, 4, 4], [2, 2, 2], [4, -100, -100], [7, 2, 4]])
    both = est.penalty({"a": a, "b": b}, labels)
    torch.testing.assert_close(both, (est.penalty({"a": a}, labels) + est.penalty({"b": b}, labels)) / 2)


def test_hsic_needs_labels():
    with pytest.raises(ValueError, match=r"the 'hsic' estimator needs labels"):
        HSICBottleneck().penalty({"a": recorded_layer()})


def test_hsic_needs_two_examples():
    layer = recorded_layer(n=1)
    with pytest.raises(ValueError, match="HSIC needs at least 2 examples in a batch, got 1"):
        HSICBottleneck().penalty({"a": layer}, torch.tensor([1]))
    with pytest.raises(ValueError, match="HSIC needs at least 2 examples in a batch, got 1"):
        gaussian_kernel(torch.randn(1, 3))


def test_hsic_needs_recorded_stats():
    layer = single_layer(SigmoidGate(4)).train()
    layer(torch.randn(4, 8))  # recording is off
    with pytest.raises(ValueError, match=r"'hsic' estimator found no recorded statistics on adapter 'q'.*recording = True"):
        HSICBottleneck().penalty({"q": layer}, torch.tensor([0, 1, 0, 1]))


def test_hsic_refuses_stale_stats_in_eval_mode():
    layer = recorded_layer(n=4).eval()  # stats from the training forward are still there
    with pytest.raises(ValueError, match=r"adapter 'q' is in eval mode, so it recorded nothing for this batch"):
        HSICBottleneck().penalty({"q": layer}, torch.tensor([0, 1, 0, 1]))


def test_hsic_labels_must_match_the_recorded_batch():
    with pytest.raises(ValueError, match="got labels for 4 examples but adapter 'q' recorded 6"):
        HSICBottleneck().penalty({"q": recorded_layer(n=6)}, torch.tensor([0, 1, 0, 1]))


def test_hsic_bad_arguments_and_repr():
    with pytest.raises(ValueError, match=r"HSICBottleneck: gamma=-1 is invalid"):
        HSICBottleneck(gamma=-1)
    est = HSICBottleneck()
    assert (est.name, est.needs_stats, est.needs_labels) == ("hsic", True, True)
    assert repr(est) == "HSICBottleneck(gamma=1, init=0.95)"
    assert isinstance(est.make_gate(3), SigmoidGate)
