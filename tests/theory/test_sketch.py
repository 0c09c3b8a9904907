"""Proposition 5: the JL sketch vec(P^T dW Q) preserves inner products and drift
energy in expectation, with relative error following the exact variance
4 tau / k + 2 (1 + tau) / k^2, i.e. ~1/sqrt(k) (seeded statistical tests)."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from structlora.theory import jl_projection, layer_drift_energy, sketch_dense, sketch_lowrank

D_OUT, D_IN = 12, 10
NUM_SEEDS = 1000
SKETCH_DIMS = (4, 16, 64)
# Seeded, so deterministic; a 4-sigma band would fail with probability 6e-5 on fresh seeds.
Z = 4.0


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def projections():
    """For each k, NUM_SEEDS independent (P, Q) pairs, one seed per pair, stacked
    to (NUM_SEEDS, d, k) so that each statistic is one batched matmul."""
    stacked = {}
    for k in SKETCH_DIMS:
        pairs = []
        for seed in range(NUM_SEEDS):
            g = _generator(seed)
            pairs.append((jl_projection(D_OUT, k, g, dtype=torch.float64),
                          jl_projection(D_IN, k, g, dtype=torch.float64)))
        stacked[k] = tuple(torch.stack(side) for side in zip(*pairs))
    return stacked


@pytest.fixture(scope="module")
def updates():
    g = _generator(12345)
    u = torch.randn(D_OUT, 1, generator=g, dtype=torch.float64)
    v = torch.randn(D_IN, 1, generator=g, dtype=torch.float64)
    generic = torch.randn(3, D_OUT, D_IN, generator=g, dtype=torch.float64)
    return {"rank_one": u @ v.T, "A": generic[0], "B": generic[1], "C": generic[2]}


def _relative_errors(estimates: torch.Tensor, truth: float) -> torch.Tensor:
    return (estimates - truth) / abs(truth)


def _predicted_relative_rms(delta: torch.Tensor, k: int) -> float:
    # Var(|s(A)|^2) / |A|_F^4 = 4 tau / k + 2 (1 + tau) / k^2, tau = |A^T A|_F^2 / |A|_F^4
    # (derivation in docs/theory.md, Proposition 5).
    gram = delta.T @ delta
    tau = float(gram.pow(2).sum() / gram.trace() ** 2)
    return math.sqrt(4 * tau / k + 2 * (1 + tau) / k**2)


@pytest.mark.parametrize("k", SKETCH_DIMS)
def test_sketched_inner_product_is_unbiased(projections, updates, k):
    A, B = updates["A"], updates["B"]
    P, Q = projections[k]
    estimates = (sketch_dense(A, P, Q) * sketch_dense(B, P, Q)).sum(-1)  # (NUM_SEEDS,)
    truth = float((A * B).sum())
    standard_error = float(estimates.std()) / math.sqrt(NUM_SEEDS)
    assert abs(float(estimates.mean()) - truth) <= Z * standard_error


@pytest.mark.parametrize("k", SKETCH_DIMS)
def test_sketched_energy_error_matches_the_exact_variance(projections, updates, k):
    A = updates["A"]
    P, Q = projections[k]
    estimates = sketch_dense(A, P, Q).pow(2).sum(-1)  # (NUM_SEEDS,)
    errors = _relative_errors(estimates, float(A.pow(2).sum()))
    assert abs(float(errors.mean())) <= Z * float(errors.std()) / math.sqrt(NUM_SEEDS)
    # The RMS of NUM_SEEDS heavy-ish tailed draws is within ~5% (1 sigma) of its
    # expectation at k = 4 and closer at larger k: a 20% band is about 4 sigma.
    rms = float(errors.pow(2).mean().sqrt())
    assert rms == pytest.approx(_predicted_relative_rms(A, k), rel=0.2)


def test_relative_error_falls_like_one_over_sqrt_k(projections, updates):
    # For a rank-one update tau = 1, so the error is sqrt(4/k + 4/k^2): the 1/sqrt(k)
    # term alone predicts a ratio of sqrt(64/4) = 4 between k = 4 and k = 64; the 1/k^2
    # term raises it to 4.44.
    delta = updates["rank_one"]
    truth = float(delta.pow(2).sum())
    rms = {}
    for k in (4, 64):
        estimates = sketch_dense(delta, *projections[k]).pow(2).sum(-1)  # (NUM_SEEDS,)
        rms[k] = float(_relative_errors(estimates, truth).pow(2).mean().sqrt())
    predicted = _predicted_relative_rms(delta, 4) / _predicted_relative_rms(delta, 64)
    assert 4.0 <= predicted <= 4.5
    # Ratio of two RMS estimates, each within ~5% (1 sigma): 15% is about 2-3 sigma.
    assert rms[4] / rms[64] == pytest.approx(predicted, rel=0.15)


def test_sketched_layer_drift_energy_is_unbiased(projections, updates):
    deltas = torch.stack([updates["A"], updates["B"], updates["C"], updates["rank_one"]])
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 0, 3], [1, 0, 2, 1, 3, 2, 3, 0]])
    edge_weight = torch.tensor([1.0, 1.0, 0.5, 0.5, 2.0, 2.0, 0.3, 0.3], dtype=torch.float64)
    gaps = (deltas[edge_index[0]] - deltas[edge_index[1]]).pow(2).sum(dim=(1, 2))
    truth = 0.5 * float((edge_weight * gaps).sum())
    P, Q = projections[16]
    sketches = sketch_dense(deltas, P[:, None], Q[:, None])  # (NUM_SEEDS, 4, k*k)
    estimates = torch.tensor([layer_drift_energy(nodes, edge_index, edge_weight) for nodes in sketches],
                             dtype=torch.float64)
    standard_error = float(estimates.std()) / math.sqrt(NUM_SEEDS)
    assert abs(float(estimates.mean()) - truth) <= Z * standard_error


def test_projection_is_seeded_and_scaled():
    P = jl_projection(200, 50, _generator(0), dtype=torch.float64)
    assert P.shape == (200, 50) and P.dtype == torch.float64
    assert torch.equal(P, jl_projection(200, 50, _generator(0), dtype=torch.float64))
    assert not torch.equal(P, jl_projection(200, 50, _generator(1), dtype=torch.float64))
    # Entries N(0, 1/k): the sample variance of 10^4 entries is within 4 * sqrt(2/10^4) = 6%.
    assert float(P.var()) * 50 == pytest.approx(1.0, rel=0.06)


@given(d_out=st.integers(1, 6), d_in=st.integers(1, 6), r=st.integers(1, 4), k=st.integers(1, 5),
       seed=st.integers(0, 2**31 - 1), scaling=st.floats(0.1, 4.0), gated=st.booleans())
def test_lowrank_sketch_equals_dense_sketch(d_out, d_in, r, k, seed, scaling, gated):
    g = _generator(seed)
    B = torch.randn(d_out, r, generator=g, dtype=torch.float64)
    A = torch.randn(r, d_in, generator=g, dtype=torch.float64)
    gate = torch.rand(r, generator=g, dtype=torch.float64) if gated else None
    P = jl_projection(d_out, k, g, dtype=torch.float64)
    Q = jl_projection(d_in, k, g, dtype=torch.float64)
    delta = scaling * B @ torch.diag(gate if gated else torch.ones(r, dtype=torch.float64)) @ A
    # Same products in another association order: agreement to ~1e3 ulps.
    torch.testing.assert_close(sketch_lowrank(B, A, P, Q, scaling, gate), sketch_dense(delta, P, Q),
                               rtol=1e-12, atol=1e-12)


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 5))
def test_sketch_is_linear_and_broadcasts(seed, k):
    g = _generator(seed)
    deltas = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    P, Q = jl_projection(4, k, g, dtype=torch.float64), jl_projection(5, k, g, dtype=torch.float64)
    batched = sketch_dense(deltas, P, Q)
    assert batched.shape == (3, k * k)
    for i in range(3):
        torch.testing.assert_close(batched[i], sketch_dense(deltas[i], P, Q), rtol=1e-12, atol=1e-12)
    draws = torch.stack([P, 2 * P]), torch.stack([Q, Q])  # a batch of projections
    torch.testing.assert_close(sketch_dense(deltas[0], *draws), torch.stack([batched[0], 2 * batched[0]]),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sketch_dense(deltas[0] + 2 * deltas[1], P, Q), batched[0] + 2 * batched[1],
                               rtol=1e-12, atol=1e-12)


def test_bad_shapes_are_reported():
    P, Q = torch.ones(4, 2), torch.ones(5, 2)
    with pytest.raises(ValueError, match=r"needs P of shape \(3, k\).*one \(P, Q\) pair per weight shape"):
        sketch_dense(torch.ones(3, 5), P, Q)
    with pytest.raises(ValueError, match="must share r"):
        sketch_lowrank(torch.ones(4, 2), torch.ones(3, 5), P, Q)
    with pytest.raises(ValueError, match="d >= 1 and k >= 1, found d=4, k=0"):
        jl_projection(4, 0, _generator(0))
