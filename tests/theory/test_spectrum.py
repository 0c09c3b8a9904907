"""Spectra: sorted, similar-matrix trick for rw, kernel = components, and the
contraction factor on connected and disconnected graphs."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from structlora.theory import (
    contraction_factor,
    eigenvalues,
    fiedler_value,
    kernel_tolerance,
    lambda_max,
    laplacian,
)
from tests.strategies import graphs, step_sizes

NORMALIZATIONS = ["comb", "sym", "rw"]
# eigvalsh / numpy eig are backward stable: eigenvalues agree to ~N * eps * ||L||;
# ||L|| <= 2 * max degree <= 2 * 8 * 10 here, so 1e-10 absolute is ample.
EIG_ATOL = 1e-10


def _laplacian(graph, normalization):
    return laplacian(graph.edge_index, graph.edge_weight, graph.num_nodes, normalization)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@given(graph=graphs())
def test_eigenvalues_are_sorted_and_match_numpy(normalization, graph):
    L = _laplacian(graph, normalization)
    evals = eigenvalues(L)
    assert torch.all(evals[1:] >= evals[:-1])
    # General (non-symmetric) eig as an independent reference for the rw similarity trick.
    reference = np.sort(np.linalg.eigvals(L.numpy()).real)
    np.testing.assert_allclose(evals.numpy(), reference, rtol=0, atol=EIG_ATOL)


@given(graph=graphs())
def test_random_walk_and_symmetric_spectra_coincide(graph):
    torch.testing.assert_close(eigenvalues(_laplacian(graph, "rw")),
                               eigenvalues(_laplacian(graph, "sym")), rtol=0, atol=EIG_ATOL)


@given(graph=graphs())
def test_normalized_spectrum_lies_in_zero_two(graph):
    evals = eigenvalues(_laplacian(graph, "sym"))
    assert evals.min() >= -EIG_ATOL and evals.max() <= 2 + EIG_ATOL


@given(graph=graphs(min_nodes=2))
def test_kernel_dimension_is_number_of_components(graph):
    evals = eigenvalues(_laplacian(graph, "comb"))
    assert int((evals <= kernel_tolerance(evals)).sum()) == graph.num_components
    connected = graph.num_components == 1
    assert (fiedler_value(_laplacian(graph, "comb")) > kernel_tolerance(evals)) == connected


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@given(graph=graphs(min_nodes=2, connected=True), data=st.data())
def test_contraction_factor_on_connected_graph_is_max_over_k_geq_2(normalization, graph, data):
    L = _laplacian(graph, normalization)
    # step_sizes needs a symmetric matrix; L_rw has the spectrum of L_sym.
    eta = data.draw(step_sizes(_laplacian(graph, "sym" if normalization == "rw" else normalization)))
    evals = eigenvalues(L)
    literal = float((1 - eta * evals[1:]).abs().max())
    assert contraction_factor(L, eta) == literal


@given(graph=graphs(connected=False), data=st.data())
def test_contraction_factor_on_disconnected_graph_excludes_the_whole_kernel(graph, data):
    L = _laplacian(graph, "comb")
    evals = eigenvalues(L)
    # Kept 1% away from both ends of (0, 2/lambda_max) so that rho < 1 is not lost to
    # rounding: next to the ends rho is within ulps of 1.
    eta = data.draw(st.floats(0.01, 0.99)) * 2 / float(evals[-1]) if evals[-1] > 0 else 1.0
    rho = contraction_factor(L, eta)
    if evals[-1] > 0:
        # The literal max over k >= 2 would hit an extra zero eigenvalue and give 1.
        assert float((1 - eta * evals[1:]).abs().max()) == pytest.approx(1.0, abs=EIG_ATOL)
        assert rho < 1.0
    else:
        assert rho == 0.0


def test_lambda_max_and_fiedler_of_a_path():
    # Path 0-1-2 with unit weights: comb spectrum {0, 1, 3}.
    L = laplacian(torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), torch.ones(4, dtype=torch.float64),
                  normalization="comb")
    assert lambda_max(L) == pytest.approx(3.0, abs=EIG_ATOL)
    assert fiedler_value(L) == pytest.approx(1.0, abs=EIG_ATOL)
    assert contraction_factor(L, 0.5) == pytest.approx(0.5, abs=EIG_ATOL)


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match="at least 2 nodes"):
        fiedler_value(torch.zeros(1, 1))
    with pytest.raises(ValueError, match="at least one node"):
        lambda_max(torch.zeros(0, 0))
    with pytest.raises(ValueError, match="neither symmetric nor the random-walk Laplacian"):
        eigenvalues(torch.tensor([[1.0, -1.0], [0.0, 0.0]]))
