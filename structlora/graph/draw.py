r"""Inspecting the layer graph: ``networkx`` conversion and a matplotlib drawing."""
from __future__ import annotations

import os
from pathlib import Path

from torch_geometric.data import Data

from .builder import parse_block

EDGE_STYLES = {0: ("solid", "structural", 0.2, "0.35"), 1: ("dashed", "semantic", -0.35, "tab:red")}


def to_networkx(data: Data):
    """An undirected ``networkx.Graph`` with the module paths as node labels.

    Nodes carry ``block`` and ``shape`` (``(d_out, d_in)``), edges ``edge_weight``
    and ``edge_type`` (0 structural, 1 semantic).
    """
    import networkx as nx
    from torch_geometric.utils import to_networkx as pyg_to_networkx

    G = pyg_to_networkx(data, node_attrs=["block"], edge_attrs=["edge_weight", "edge_type"], to_undirected=True)
    for i, shape in enumerate(data.shape.tolist()):
        G.nodes[i]["shape"] = tuple(shape)
    return nx.relabel_nodes(G, dict(enumerate(data.names)))


def _layout(data: Data) -> tuple[dict[str, tuple[float, float]], dict[str, str], dict[float, str]]:
    """Positions, labels and x ticks: blocks left to right, modules outside any block
    (block -1) in a last column, and within a column the modules in depth order."""
    blocks = data.block.tolist()
    outside = max(blocks) + 1 if blocks else 0
    rows: dict[int, int] = {}
    pos, labels = {}, {}
    for name, block in zip(data.names, blocks):
        column = block if block >= 0 else outside
        rows[column] = rows.get(column, 0) + 1
        pos[name] = (float(column), -float(rows[column]))
        parsed = parse_block(name)
        labels[name] = parsed[2] if parsed is not None else ".".join(name.split(".")[-2:])
    ticks = {float(c): ("outside" if c == outside and -1 in blocks else str(c)) for c in rows}
    return pos, labels, ticks


def draw_layer_graph(data: Data, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw the layer graph to ``path`` (PNG/SVG/PDF by extension) with the Agg backend.

    Nodes are coloured by weight shape and labelled by their path inside the
    block; structural edges solid, semantic edges dashed with width ~ cosine.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx
    from matplotlib.lines import Line2D

    G = to_networkx(data)
    pos, labels, ticks = _layout(data)
    shapes = sorted({G.nodes[n]["shape"] for n in G.nodes})
    cmap = plt.get_cmap("tab10")
    height = max(-y for _, y in pos.values()) if pos else 1
    fig, ax = plt.subplots(figsize=(1.5 + 2.4 * len(ticks), 1.2 + 0.45 * height))
    handles = []
    for shape_id, shape in enumerate(shapes):
        color = cmap(shape_id % 10)
        nodes = [n for n in G.nodes if G.nodes[n]["shape"] == shape]
        nx.draw_networkx_nodes(G, pos, nodelist=nodes, node_color=[color], node_size=120, ax=ax)
        handles.append(Line2D([], [], marker="o", ls="", color=color, label=f"{shape[0]}x{shape[1]} (d_out x d_in)"))
    for edge_type, (style, label, rad, color) in EDGE_STYLES.items():
        edges = [(u, v) for u, v, t in G.edges(data="edge_type") if t == edge_type]
        if not edges:
            continue
        widths = [0.5 + 1.5 * G.edges[e]["edge_weight"] for e in edges]
        nx.draw_networkx_edges(G, pos, edgelist=edges, style=style, width=widths, ax=ax, arrows=True,
                               arrowstyle="-", connectionstyle=f"arc3,rad={rad}", edge_color=color)
        handles.append(Line2D([], [], ls=style, color=color, label=f"{label} edge"))
    for name, (x, y) in pos.items():
        ax.annotate(labels[name], (x, y), xytext=(-4, 7), textcoords="offset points", fontsize=6.5)
    ax.set_xticks(list(ticks), list(ticks.values()))
    ax.set_xlabel("block")
    ax.set_title(title or f"layer graph: {data.num_nodes} nodes, {data.num_edges // 2} edges", fontsize=9)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.tick_params(left=False, labelleft=False, bottom=True, labelbottom=True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_xlim(min(ticks) - 0.3, max(ticks) + 0.9)
    ax.set_ylim(-height - 0.6, -0.4)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
