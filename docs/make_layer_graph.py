"""Regenerate docs/img/layer_graph.png: the layer graph of a tiny LLaMA.

A 3-block LLaMA built from a config (no download), every linear layer adapted
(r=4), adapters randomised, one armed forward/backward on random tokens to get
gradient sketches, then the graph with structural and semantic edges.

    PYTHONPATH=. python docs/make_layer_graph.py     # or after pip install -e .
"""
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from structlora import StructLoRAConfig, wrap
from structlora.graph import GradientSketcher, LayerGraphBuilder, Sketcher, draw_layer_graph

OUT = Path(__file__).parent / "img" / "layer_graph.png"


def main() -> None:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=32, max_position_embeddings=32,
                      num_labels=2, pad_token_id=0)
    model = wrap(LlamaForSequenceClassification(cfg), StructLoRAConfig(r=4, target_modules="all-linear"))
    with torch.no_grad():
        for layer in model.adapters.values():
            layer.lora_B.normal_(0, 0.5)
    sketcher = Sketcher(model.adapters, k=8, seed=0)
    grads = GradientSketcher(model.adapters, sketcher)
    grads.armed = True
    ids = torch.randint(1, 50, (8, 12))
    model(input_ids=ids, labels=torch.randint(0, 2, (8,))).loss.backward()
    grads.update()
    builder = LayerGraphBuilder.from_layers(model.adapters, tau=0.3, top_k=2)
    data = builder.build(sketcher.node_sketches().detach(), grads.sketches())
    draw_layer_graph(data, OUT, title="tiny LLaMA, all-linear: structural (depth chain) and semantic edges")
    print(f"wrote {OUT}: {data.num_nodes} nodes, {data.num_edges // 2} edges "
          f"({int((data.edge_type == 1).sum()) // 2} semantic)")


if __name__ == "__main__":
    main()
