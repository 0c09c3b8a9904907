"""The layer graph on tiny BERT / LLaMA / GPT-2 and on hand-made gradient sketches."""
import pytest
import torch
from torch_geometric.utils import is_undirected

from structlora import StructLoRAConfig, wrap
from structlora.graph import SEMANTIC, STRUCTURAL, LayerGraphBuilder, parse_block
from tests.tiny import BUILDERS

NAMES = ["blocks.0.q", "blocks.0.v", "blocks.1.q", "blocks.1.v", "blocks.2.q", "blocks.2.v"]
SHAPES = [(6, 5), (4, 5)] * 3
Q0, V0, Q1, V1, Q2, V2 = range(6)


def pairs(data, edge_type=None):
    """Undirected pairs (i, j), i < j, optionally of one edge type."""
    keep = torch.ones_like(data.edge_type, dtype=torch.bool) if edge_type is None else data.edge_type == edge_type
    return {(min(i, j), max(i, j)) for i, j in data.edge_index[:, keep].T.tolist()}


def expected_chain(names):
    """Oracle for depth-chain edges: the same path with the block index + 1."""
    index = {n: i for i, n in enumerate(names)}
    out = set()
    for n in names:
        parsed = parse_block(n)
        if parsed is not None:
            stack, block, kind = parsed
            j = index.get(f"{stack}.{block + 1}.{kind}")
            if j is not None:
                out.add((index[n], j))
    return out


def check_invariants(data, shapes):
    assert data.validate()
    assert is_undirected(data.edge_index, data.edge_weight, data.num_nodes)
    assert (data.edge_index[0] != data.edge_index[1]).all()  # no self-loops
    for i, j in data.edge_index.T.tolist():
        assert shapes[i] == shapes[j], "edge between nodes of different shapes"
    assert (data.edge_weight > 0).all() and (data.edge_weight <= 1).all()


@pytest.mark.parametrize("family,targets,nodes,chain", [
    ("bert", ["query", "value"], 4, 2),
    ("bert", "all-linear", 13, 6),  # 6 linears per block x 2 blocks + pooler.dense (block -1, no edge)
    ("llama", ["q_proj", "v_proj"], 4, 2),
    ("gpt2", ["c_attn"], 2, 1),
    ("gpt2", "all-linear", 8, 4),  # attn.c_proj and mlp.c_proj are different types
])
def test_structural_graph_of_tiny_models(family, targets, nodes, chain):
    model = wrap(BUILDERS[family](), StructLoRAConfig(r=2, target_modules=targets))
    builder = LayerGraphBuilder.from_layers(model.adapters)
    data = builder.build(torch.zeros(nodes, 16))
    assert data.num_nodes == nodes and data.names == list(model.adapters)
    assert pairs(data) == pairs(data, STRUCTURAL) == expected_chain(data.names)
    assert len(pairs(data)) == chain
    check_invariants(data, builder.shapes)
    assert data.shape.tolist() == [[l.out_features, l.in_features] for l in model.adapters.values()]


def test_same_block_edges_join_same_shape_modules_of_a_block():
    model = wrap(BUILDERS["llama"](), StructLoRAConfig(r=2, target_modules="all-linear"))
    builder = LayerGraphBuilder.from_layers(model.adapters, same_block_edges=True)
    data = builder.build(torch.zeros(builder.num_nodes, 4))
    check_invariants(data, builder.shapes)
    extra = pairs(data) - expected_chain(data.names)
    assert extra, "q_proj and o_proj (16x16), k_proj and v_proj (8x16) share a block and a shape"
    for i, j in extra:
        assert data.block[i] == data.block[j] and builder.shapes[i] == builder.shapes[j]


def test_bert_pooler_is_outside_any_block():
    model = wrap(BUILDERS["bert"](), StructLoRAConfig(r=2, target_modules="all-linear"))
    builder = LayerGraphBuilder.from_layers(model.adapters)
    assert builder.block.tolist() == [0] * 6 + [1] * 6 + [-1]


def test_parse_block():
    assert parse_block("model.layers.2.self_attn.q_proj") == ("model.layers", 2, "self_attn.q_proj")
    assert parse_block("transformer.h.10.attn.c_attn") == ("transformer.h", 10, "attn.c_attn")
    assert parse_block("encoder.block.1.layer.0.SelfAttention.q") == ("encoder.block", 1, "layer.0.SelfAttention.q")
    assert parse_block("bert.pooler.dense") is None
    assert parse_block("heads.0.proj") is None  # "heads" is not a block container


def test_encoder_and_decoder_stacks_are_separate_chains():
    names = ["encoder.block.0.q", "encoder.block.1.q", "decoder.block.0.q", "decoder.block.1.q"]
    data = LayerGraphBuilder(names, [(4, 4)] * 4).build(torch.zeros(4, 2))
    assert pairs(data) == {(0, 1), (2, 3)}


def test_model_without_blocks_is_one_block():
    builder = LayerGraphBuilder(["fc1", "fc2", "fc3"], [(4, 4), (4, 4), (3, 4)])
    assert builder.block.tolist() == [0, 0, 0]
    assert builder.build(torch.zeros(3, 2)).num_edges == 0
    same_block = LayerGraphBuilder(["fc1", "fc2", "fc3"], [(4, 4), (4, 4), (3, 4)], same_block_edges=True)
    assert pairs(same_block.build(torch.zeros(3, 2))) == {(0, 1)}


def grad_sketches(rows: dict[int, list[float]]) -> torch.Tensor:
    g = torch.zeros(6, 4)
    for i, row in rows.items():
        g[i] = torch.tensor(row)
    return g


def test_semantic_edges_for_aligned_gradients_only():
    builder = LayerGraphBuilder(NAMES, SHAPES, tau=0.3, top_k=2)
    # q0 and q2 aligned (cosine 0.8, not consecutive: not structural); q1 orthogonal to both.
    g = grad_sketches({Q0: [1, 0, 0, 0], Q1: [0, 0, 1, 0], Q2: [0.8, 0.6, 0, 0], V0: [1, 0, 0, 0]})
    data = builder.build(torch.zeros(6, 4), g)
    check_invariants(data, SHAPES)
    assert pairs(data, SEMANTIC) == {(Q0, Q2)}  # V0 is aligned with Q0 too, but has another shape
    weight = data.edge_weight[(data.edge_index[0] == Q0) & (data.edge_index[1] == Q2)]
    torch.testing.assert_close(weight, torch.tensor([0.8]))  # cosine of (1,0,0,0) and (.8,.6,0,0)
    orthogonal = grad_sketches({Q0: [1, 0, 0, 0], Q1: [0, 1, 0, 0], Q2: [0, 0, 1, 0]})
    assert pairs(builder.build(torch.zeros(6, 4), orthogonal), SEMANTIC) == set()


def test_semantic_threshold_and_negative_cosines():
    g = grad_sketches({Q0: [1, 0, 0, 0], Q2: [0.2, 0.98, 0, 0], V0: [1, 0, 0, 0], V2: [-1, 0, 0, 0]})
    assert pairs(LayerGraphBuilder(NAMES, SHAPES, tau=0.3).build(torch.zeros(6, 4), g), SEMANTIC) == set()
    loose = LayerGraphBuilder(NAMES, SHAPES, tau=-1.0).build(torch.zeros(6, 4), g)
    assert pairs(loose, SEMANTIC) == {(Q0, Q2)}  # V0-V2 has cosine -1: never an edge (w >= 0)


def test_top_k_and_structural_wins_duplicates():
    g = grad_sketches({Q0: [1, 0, 0, 0], Q1: [1, 0.1, 0, 0], Q2: [1, 0.2, 0, 0]})
    data = LayerGraphBuilder(NAMES, SHAPES, top_k=1).build(torch.zeros(6, 4), g)
    # Best partners: Q0->Q1, Q1->Q0, Q2->Q1; Q0-Q1 and Q1-Q2 are also depth-chain edges.
    assert pairs(data) == {(Q0, Q1), (Q1, Q2), (V0, V1), (V1, V2)}
    assert pairs(data, SEMANTIC) == set() and (data.edge_weight == 1).all()
    assert pairs(LayerGraphBuilder(NAMES, SHAPES, top_k=0).build(torch.zeros(6, 4), g), SEMANTIC) == set()


@pytest.mark.parametrize("tau", [-1.01, 1.5, float("nan")])
def test_tau_outside_cosine_range(tau):
    with pytest.raises(ValueError, match=r"tau=.*\[-1, 1\]"):
        LayerGraphBuilder(NAMES, SHAPES, tau=tau)


def test_bad_inputs_and_repr():
    with pytest.raises(ValueError, match="one shape per name"):
        LayerGraphBuilder(NAMES, SHAPES[:2])
    builder = LayerGraphBuilder(NAMES, SHAPES)
    with pytest.raises(ValueError, match="N=6"):
        builder.build(torch.zeros(5, 4))
    assert repr(builder) == "LayerGraphBuilder(nodes=6, tau=0.3, top_k=2, same_block_edges=False)"
