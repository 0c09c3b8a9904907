"""Inspection helpers: networkx conversion and the matplotlib drawing."""
import torch

from structlora import StructLoRAConfig, wrap
from structlora.graph import LayerGraphBuilder, draw_layer_graph, to_networkx
from tests.tiny import tiny_bert


def bert_graph():
    model = wrap(tiny_bert(), StructLoRAConfig(r=2, target_modules="all-linear"))
    builder = LayerGraphBuilder.from_layers(model.adapters)
    return builder.build(torch.zeros(builder.num_nodes, 4))


def test_to_networkx_labels_nodes_by_module_path():
    data = bert_graph()
    G = to_networkx(data)
    assert list(G.nodes) == data.names
    assert G.number_of_edges() == data.num_edges // 2 == 6
    q0, q1 = "bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.1.attention.self.query"
    assert G.edges[q0, q1] == {"edge_weight": 1.0, "edge_type": 0}
    assert G.nodes["bert.pooler.dense"] == {"block": -1, "shape": (16, 16)}


def test_draw_layer_graph(tmp_path):
    path = draw_layer_graph(bert_graph(), tmp_path / "g.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
