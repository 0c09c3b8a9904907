r"""Theory of StructLoRA's graph coordination: drift energy, Laplacians,
smoothing operators, their spectral bounds, and JL sketches of updates.

Imports only torch. Every claim here is a numbered proposition in
``docs/theory.md`` with the test that checks it.
"""
from .energy import drift_energy, drift_energy_edges, layer_drift_energy
from .laplacian import (
    NORMALIZATIONS,
    check_normalization,
    dense_adjacency,
    infer_num_nodes,
    laplacian,
    laplacian_from_adjacency,
)
from .sketch import jl_projection, sketch_dense, sketch_lowrank
from .smoothing import check_step_size, denoise, max_step_size, smooth, smooth_step
from .spectrum import (
    contraction_factor,
    eigenvalues,
    fiedler_value,
    kernel_tolerance,
    lambda_max,
    symmetric_form,
)

__all__ = [
    "NORMALIZATIONS",
    "check_normalization",
    "check_step_size",
    "contraction_factor",
    "dense_adjacency",
    "denoise",
    "drift_energy",
    "drift_energy_edges",
    "eigenvalues",
    "fiedler_value",
    "infer_num_nodes",
    "jl_projection",
    "kernel_tolerance",
    "lambda_max",
    "laplacian",
    "laplacian_from_adjacency",
    "layer_drift_energy",
    "max_step_size",
    "sketch_dense",
    "sketch_lowrank",
    "smooth",
    "smooth_step",
    "symmetric_form",
]
