"""The benchmark figures, drawn from the accuracy records (called by ``report.py``).

- ``bench_layer_cosine.png``: pairwise cosine similarity of the final per-layer
  updates, PEFT LoRA vs StructLoRA (headline study, seed 0);
- ``bench_svd_coverage.png``: fraction of an update's energy in its top-k singular
  directions, averaged over layers and seeds;
- ``bench_filters.png``: test accuracy of the filtering strategies at equal kept rank;
- ``bench_sweeps.png``: rank and data sweeps;
- ``bench_drift.png``: drift energy of the updates over the depth chain during training.
"""
from __future__ import annotations

import contextlib
import io
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.accuracy import FILTERS, KEEP, BASE, study_cells  # noqa: E402
from benchmarks.harness import cell_key  # noqa: E402

PAIR = ("peft-lora", "sl-default")
COLORS = {"peft-lora": "tab:blue", "sl-default": "tab:red", "sl-none": "tab:gray", "peft-dora": "tab:green",
          "peft-adalora": "tab:purple", "sl-no-ib": "tab:orange", "sl-no-coord": "tab:brown"}


def _records(study: str, methods, results) -> dict[str, list[dict]]:
    recs = {r["key"]: r for r in results}
    out: dict[str, list[dict]] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        cells = study_cells(study, 10, list(methods), results)
    for c in cells:
        if cell_key(c) in recs:
            out.setdefault(c["name"], []).append(recs[cell_key(c)])
    return out


def _headline(methods, results) -> tuple[dict[str, list[dict]], str]:
    """Records of the headline study, or of the fixed-lr pilot while the lr grid is incomplete."""
    recs = _records("main", methods, results)
    return (recs, "main") if recs else (_records("pilot", methods, results), "pilot, lr 2e-3")


def _empty(ax, text="not run yet"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")


def layer_cosine(results, out: Path) -> Path:
    """Off-diagonal cosines (diagonal masked, shared colour scale) and adjacent-block cosines."""
    recs, study = _headline(PAIR, results)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    seed0 = {n: [r for r in recs.get(n, []) if r["cell"]["seed"] == 0] for n in PAIR}
    mats = {n: [[0.0 if i == j else (float("nan") if c is None else c) for j, c in enumerate(row)] for i, row in enumerate(rs[0]["analysis"]["cosine"])]
            for n, rs in seed0.items() if rs}
    vmax = max([abs(c) for m in mats.values() for row in m for c in row] + [1e-3])
    for ax, name in zip(axes, PAIR):
        ax.set_title(f"{name}: cos(ΔW_i, ΔW_j), diagonal masked", fontsize=9)
        if name not in mats:
            _empty(ax)
            continue
        a = seed0[name][0]["analysis"]
        im = ax.imshow(mats[name], vmin=-vmax, vmax=vmax, cmap="RdBu_r")
        labels = [n.replace("bert.encoder.layer.", "L").replace(".attention.self.", ".") for n in a["layers"]]
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[2]
    for name, rs in recs.items():
        for i, r in enumerate(rs):
            a = r["analysis"]
            adj = []
            for j, n in enumerate(a["layers"]):
                nxt = n.replace(f"layer.{_block(n)}.", f"layer.{_block(n) + 1}.")
                if nxt in a["layers"]:
                    adj.append(a["cosine"][j][a["layers"].index(nxt)])
            ax.plot(range(len(adj)), adj, marker="o", color=COLORS.get(name), alpha=0.7, label=name if i == 0 else None)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("block pair l→l+1 in depth order (query and value pairs interleaved)")
    ax.set_title("cosine of consecutive blocks' updates (one line per seed)", fontsize=9)
    ax.legend(fontsize=8) if recs else _empty(ax)
    fig.suptitle(f"Layer-wise similarity of the final updates (MiniLM, movie reviews; {study})")
    return _save(fig, out / "bench_layer_cosine.png")


def _block(name: str) -> int:
    from structlora.graph import parse_block

    parsed = parse_block(name)
    return -10 if parsed is None else parsed[1]


def svd_coverage(results, out: Path) -> Path:
    recs, study = _headline(("peft-lora", "sl-default", "peft-dora", "peft-adalora"), results)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rs in recs.items():
        curves = []
        for r in rs:
            for sv in r["analysis"]["singular_values"]:
                e = [s * s for s in sv]
                total = sum(e) or 1.0
                curves.append([sum(e[:k]) / total for k in range(1, len(e) + 1)])
        k = min(len(c) for c in curves)
        ax.plot(range(1, k + 1), [statistics.fmean(c[i] for c in curves) for i in range(k)], marker="o",
                label=f"{name} ({len(rs)} seeds)", color=COLORS.get(name))
    if not recs:
        _empty(ax)
    ax.set_xlabel("k (top singular directions)")
    ax.set_ylabel("energy fraction of ΔW in top k")
    ax.set_title(f"SVD coverage of the final updates (mean over layers, seeds; {study})", fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, out / "bench_svd_coverage.png")


def filters(results, out: Path) -> Path:
    recs = _records("filters", (), results)
    names = list(FILTERS) + [f"peft-lora-r{KEEP}", f"peft-lora-r{BASE['r']}"]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [n for n in names if recs.get(n)]
    if xs:
        accs = [[100 * r["metrics"]["test_accuracy"] for r in recs[n]] for n in xs]
        ax.bar(range(len(xs)), [statistics.fmean(a) for a in accs],
               yerr=[statistics.stdev(a) if len(a) > 1 else 0 for a in accs], capsize=4, color="tab:gray")
        for i, a in enumerate(accs):
            ax.scatter([i] * len(a), a, color="k", s=10, zorder=3)
        ax.set_xticks(range(len(xs)), xs, rotation=20, fontsize=8)
        ax.set_ylim(min(min(a) for a in accs) - 5, max(max(a) for a in accs) + 3)
    else:
        _empty(ax)
    ax.set_ylabel("test accuracy %")
    ax.set_title(f"Filtering strategies, {KEEP} of r={BASE['r']} directions kept per adapter")
    return _save(fig, out / "bench_filters.png")


def sweeps(results, out: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (study, key, xlabel) in zip(axes, (("rank", "r", "rank r"), ("data", "train_size", "training examples"))):
        recs = {r["key"]: r for r in results}
        drawn = False
        for name in PAIR:
            pts: dict = {}
            with contextlib.redirect_stdout(io.StringIO()):
                cells = study_cells(study, 10, [name], results)
            for c in cells:
                if cell_key(c) in recs:
                    pts.setdefault(c[key], []).append(100 * recs[cell_key(c)]["metrics"]["test_accuracy"])
            if pts:
                xs = sorted(pts)
                ax.errorbar(xs, [statistics.fmean(pts[x]) for x in xs],
                            yerr=[statistics.stdev(pts[x]) if len(pts[x]) > 1 else 0 for x in xs],
                            marker="o", capsize=3, label=name, color=COLORS[name])
                drawn = True
            if study == "rank":  # r = 16 at the lr its own grid chose: an open marker beside the line
                tuned = _records("rank16-tuned", [name], results).get(name, [])
                if tuned:
                    accs = [100 * r["metrics"]["test_accuracy"] for r in tuned]
                    ax.errorbar([16], [statistics.fmean(accs)], yerr=[statistics.stdev(accs) if len(accs) > 1 else 0],
                                marker="s", mfc="none", capsize=3, color=COLORS[name], ls="none",
                                label=f"{name}, r = 16 at its own lr")
        if not drawn:
            _empty(ax)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy % (mean ± std over seeds)")
        ax.set_title(f"{study} sweep")
        ax.legend(fontsize=8) if drawn else None
    return _save(fig, out / "bench_sweeps.png")


def drift(results, out: Path) -> Path:
    recs, study = _headline(PAIR, results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, rs in recs.items():
        for i, r in enumerate(rs):
            steps = [t["step"] for t in r["trace"]]
            kw = dict(color=COLORS[name], alpha=0.7, label=name if i == 0 else None)
            axes[0].plot(steps, [t["drift_energy"] for t in r["trace"]], **kw)
            axes[1].plot(steps, [t["relative_drift"] for t in r["trace"]], **kw)
    for ax, title in zip(axes, ("drift energy Σ_edges ‖ΔW_i − ΔW_j‖²", "relative drift (÷ Σ‖ΔW_i‖²)")):
        ax.set_xlabel("training step")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8) if recs else _empty(ax)
    fig.suptitle(f"Drift energy of the updates over the depth chain (one line per seed; {study})")
    return _save(fig, out / "bench_drift.png")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def all_figures(results: list[dict], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [f(results, out) for f in (layer_cosine, svd_coverage, filters, sweeps, drift)]
