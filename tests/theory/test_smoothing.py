"""Propositions 1-4 of docs/theory.md: smoothing contracts drift energy by rho^2,
the step-size bound is tight, the combinatorial step keeps the node mean, K steps
converge to the component means, and the denoiser never raises energy."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from structlora.theory import (
    check_step_size,
    contraction_factor,
    dense_adjacency,
    denoise,
    drift_energy,
    lambda_max,
    laplacian,
    smooth,
    smooth_step,
)
from tests.strategies import graph_signals, step_sizes


def energy_atol(L, x):
    # float64 tr(x^T L x) is off by about N * eps * ||L|| * ||x||^2 <= 2e-15 * scale
    # for N <= 9; 1e-12 * scale leaves a 500x margin (it also covers the eigvalsh
    # error in rho, ~eps * eta * lambda_max).
    return 1e-12 * float(L.abs().sum(1).max()) * float(x.pow(2).sum()) + 1e-300


def _laplacian(graph, normalization):
    return laplacian(graph.edge_index, graph.edge_weight, graph.num_nodes, normalization)


@pytest.mark.parametrize("normalization", ["comb", "sym"])
@given(sample=graph_signals(), data=st.data())
def test_step_contracts_energy_by_rho_squared(normalization, sample, data):
    """Proposition 1 (same L for the step and the energy)."""
    graph, x = sample
    L = _laplacian(graph, normalization)
    eta = data.draw(step_sizes(L))
    before, after = drift_energy(x, L), drift_energy(smooth_step(x, L, eta), L)
    rho = contraction_factor(L, eta)
    assert float(after) <= rho**2 * float(before) + energy_atol(L, x)
    assert float(after) <= float(before) + energy_atol(L, x)


@given(sample=graph_signals(), data=st.data())
def test_random_walk_step_contracts_combinatorial_energy(sample, data):
    """Proposition 1b: the rw step contracts the comb energy by rho(L_rw)^2."""
    graph, x = sample
    L_rw, L_comb = _laplacian(graph, "rw"), _laplacian(graph, "comb")
    eta = data.draw(step_sizes(_laplacian(graph, "sym")))  # same spectrum as L_rw
    after = drift_energy(smooth_step(x, L_rw, eta), L_comb)
    rho = contraction_factor(L_rw, eta)
    # L_rw has entries up to 1 while the energy is measured with L_comb: use its scale.
    assert float(after) <= rho**2 * float(drift_energy(x, L_comb)) + energy_atol(L_comb, x)


@pytest.mark.parametrize("normalization", ["comb", "sym"])
@given(sample=graph_signals(connected=True, min_nodes=2), overshoot=st.floats(0.01, 1.0))
def test_bound_is_tight_top_eigenvector_grows(normalization, sample, overshoot):
    """Proposition 2: for eta = (1 + delta) 2 / lambda_max the top mode grows by (1 + 2 delta)^2."""
    graph, _ = sample
    L = _laplacian(graph, normalization)
    evals, evecs = torch.linalg.eigh(L)
    top = evecs[:, -1:]  # (N, 1)
    eta = (1 + overshoot) * 2 / float(evals[-1])
    ratio = drift_energy(smooth_step(top, L, eta), L) / drift_energy(top, L)
    # Exact eigenvector up to eigh's ~1e-15 residual; 1e-9 relative is ample.
    assert float(ratio) == pytest.approx((1 + 2 * overshoot) ** 2, rel=1e-9)
    assert float(ratio) > 1
    with pytest.raises(ValueError, match=r"outside \(0, 2/lambda_max\]"):
        check_step_size(L, eta)


@pytest.mark.parametrize("normalization", ["comb", "sym", "rw"])
@given(sample=graph_signals(), data=st.data())
def test_step_preserves_the_left_kernel_weighted_mean(normalization, sample, data):
    """Proposition 3: 1^T L_comb = 0 keeps the node mean; sqrt(d) and d play that role for sym, rw."""
    graph, x = sample
    L = _laplacian(graph, normalization)
    deg = dense_adjacency(graph.edge_index, graph.edge_weight, graph.num_nodes).sum(1)
    weights = {"comb": torch.ones_like(deg), "sym": deg.sqrt(), "rw": deg}[normalization]
    symmetric = _laplacian(graph, "sym") if normalization == "rw" else L  # same spectrum
    eta = data.draw(step_sizes(symmetric))
    after = smooth_step(x, L, eta)
    # Sums of <= 9 terms of size <= 10 * max(d, 1) * (1 + eta * ||L||): 1e-10 absolute.
    torch.testing.assert_close(weights @ after, weights @ x, rtol=0, atol=1e-10)


def _component_means(x, component):
    counts = torch.bincount(component).to(x.dtype)
    sums = torch.zeros(len(counts), x.size(1), dtype=x.dtype).index_add_(0, component, x)
    return (sums / counts[:, None])[component]


@given(sample=graph_signals(), data=st.data(), steps=st.integers(1, 12))
def test_smoothing_converges_to_component_means_at_rate_rho(sample, data, steps):
    """Proposition 3b: energy decays monotonically and |x_K - mean| <= rho^K |x_0 - mean|."""
    graph, x = sample
    L = _laplacian(graph, "comb")
    eta = data.draw(step_sizes(L, strict=True))
    target = _component_means(x, graph.component)
    energies = [float(drift_energy(smooth(x, L, eta, k), L)) for k in range(steps + 1)]
    assert all(b <= a + energy_atol(L, x) for a, b in zip(energies, energies[1:]))
    rho = contraction_factor(L, eta)
    gap = torch.linalg.norm(smooth(x, L, eta, steps) - target)
    # Rounding over K steps: K * eps * (1 + eta ||L||) * |x| <= 1e-12 * |x|.
    assert float(gap) <= rho**steps * float(torch.linalg.norm(x - target)) + 1e-12 * float(
        torch.linalg.norm(x)) * steps


def test_path_graph_reaches_consensus():
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    L = laplacian(edge_index, torch.ones(6, dtype=torch.float64), normalization="comb")
    x = torch.tensor([[4.0], [0.0], [-2.0], [6.0]], dtype=torch.float64)
    eta = 1 / lambda_max(L)  # strictly inside (0, 2/lambda_max]: every mode decays
    # rho = 1 - eta * lambda_2 ~ 0.83, so 200 steps shrink the gap by 1e-16.
    torch.testing.assert_close(smooth(x, L, eta, 200), torch.full_like(x, 2.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("normalization", ["comb", "sym"])
@given(sample=graph_signals(), c=st.floats(0.0, 100.0))
def test_denoiser_never_raises_energy(normalization, sample, c):
    """Proposition 4: each mode is scaled by 1 / (1 + c lambda_k) <= 1."""
    graph, x = sample
    L = _laplacian(graph, normalization)
    x_hat = denoise(x, L, c)
    assert float(drift_energy(x_hat, L)) <= float(drift_energy(x, L)) + energy_atol(L, x)
    # First-order optimality of |z - x|^2 + c tr(z^T L z): (x_hat - x) + c L x_hat = 0.
    # solve() has backward error ~ eps * cond(I + cL) <= eps * (1 + 100 * 160): 1e-9 absolute.
    torch.testing.assert_close(x_hat - x + c * L @ x_hat, torch.zeros_like(x), rtol=0, atol=1e-9)


@given(sample=graph_signals(), c=st.floats(0.0, 100.0))
def test_random_walk_denoiser_never_raises_combinatorial_energy(sample, c):
    graph, x = sample
    L_comb = _laplacian(graph, "comb")
    x_hat = denoise(x, _laplacian(graph, "rw"), c)
    assert float(drift_energy(x_hat, L_comb)) <= float(drift_energy(x, L_comb)) + energy_atol(L_comb, x)


@given(sample=graph_signals(), steps=st.integers(0, 4))
def test_smooth_is_repeated_step(sample, steps):
    graph, x = sample
    L = _laplacian(graph, "sym")
    expected = x
    for _ in range(steps):
        expected = smooth_step(expected, L, 0.5)
    assert torch.equal(smooth(x, L, 0.5, steps), expected)
    assert torch.equal(denoise(x, L, 0.0), x)


def test_check_step_size_names_the_bound():
    # One unit edge: comb spectrum {0, 2}, so 2/lambda_max = 1.
    L = laplacian(torch.tensor([[0, 1], [1, 0]]), torch.ones(2, dtype=torch.float64), normalization="comb")
    check_step_size(L, 1.0)
    check_step_size(L, 0.25)
    with pytest.raises(ValueError, match=r"eta=3.0 is outside \(0, 2/lambda_max\] = \(0, 1\]; .*Pick 0 < eta <= 1"):
        check_step_size(L, 3.0)
    for eta in (0.0, -0.5, float("nan")):
        with pytest.raises(ValueError, match=rf"eta={eta} is outside"):
            check_step_size(L, eta)


def test_check_step_size_on_edgeless_graph_allows_any_positive_step():
    L = torch.zeros(3, 3, dtype=torch.float64)
    check_step_size(L, 1e6)
    with pytest.raises(ValueError, match=r"\(0, inf\]"):
        check_step_size(L, 0.0)


@given(sample=graph_signals(), data=st.data())
def test_check_step_size_accepts_the_whole_stable_range(sample, data):
    graph, _ = sample
    L = _laplacian(graph, "comb")
    check_step_size(L, data.draw(step_sizes(L)))


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="steps must be an int >= 0, found -1"):
        smooth(torch.ones(2, 1), torch.eye(2), 0.5, -1)
    with pytest.raises(ValueError, match="c=-1.0 must be >= 0"):
        denoise(torch.ones(2, 1), torch.eye(2), -1.0)
