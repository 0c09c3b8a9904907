"""Smoke test of the benchmark harness (benchmarks/): every method, 2 steps on a tiny local model.

The benchmarks themselves are not part of CI; this only checks that the harness,
the resumable cell keys and the report still run end to end.
"""

import pytest

from benchmarks.accuracy import DEFAULT_SL, chosen_lr
from benchmarks.harness import cell_key, run_cell
from benchmarks.report import paired, sign_flip_p, tables
from tests.run_assets import make_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("bench"), rows=40)


@pytest.mark.parametrize("method,sl", [
    ("peft-lora", {}), ("peft-dora", {}), ("peft-adalora", {}),
    ("structlora", {"bottleneck": "none", "coordinator": "none"}), ("structlora", DEFAULT_SL),
])
def test_run_cell_every_method(assets, method, sl):
    cell = {"task": str(assets / "data.jsonl"), "model": str(assets / "model"), "method": method, "sl": sl,
            "r": 2, "modules": ["query", "value"], "train_size": 16, "batch_size": 8, "max_length": 8,
            "max_steps": 2, "name": method, "study": "smoke"}
    record = run_cell(cell, progress=False)
    m = record["metrics"]
    assert m["steps"] == 2 and 0.0 <= m["test_accuracy"] <= 1.0
    assert record["key"] == cell_key(cell) and '"name"' not in record["key"]  # labels never change the key
    assert len(record["analysis"]["layers"]) == 4  # query and value in 2 blocks
    assert (m["coordinator_params"] == 0) == (sl.get("coordinator", "none") in ("none", "laplacian"))


def test_unchanged_lr_choice_and_statistics():
    assert chosen_lr("peft-lora", []) is None  # an empty grid chooses nothing
    assert sign_flip_p([0.01, 0.02, 0.03]) == 0.25  # 3 seeds: the smallest possible p is 2/8
    assert paired({0: 0.8, 1: 0.7}, {0: 0.7, 1: 0.7}).startswith("+5.0")
    assert "not run" in tables([])


def test_report_reads_synthetic_results():
    """chosen_lr takes the validation winner; the headline and component tables pair seeds."""
    from benchmarks.accuracy import BASE, LR_GRID, METHODS
    from benchmarks.report import component_table, main_table

    def record(name, lr, seed, val, test):
        cell = {**BASE, **METHODS[name], "lr": lr, "seed": seed}
        metrics = {"validation_accuracy": val, "test_accuracy": test, "trainable_params": 10,
                   "coordinator_params": 0, "final_rank": 96, "seconds_per_step": 1.0}
        return {"key": cell_key(cell), "cell": {**cell, "name": name}, "metrics": metrics,
                "analysis": {"relative_drift": 1.0}, "env": {}}

    val = {LR_GRID[0]: 0.70, LR_GRID[1]: 0.80, LR_GRID[2]: 0.75}
    results = [record(n, lr, 0, v, 0.5) for n in ("peft-lora", "sl-default") for lr, v in val.items()]
    assert chosen_lr("peft-lora", results) == LR_GRID[1] and chosen_lr("sl-none", results) == LR_GRID[1]
    best = LR_GRID[1]
    results = [r for r in results if r["cell"]["lr"] != best]
    results += [record("peft-lora", best, s, 0.8, t) for s, t in enumerate((0.70, 0.72, 0.74))]
    results += [record("sl-default", best, s, 0.8, t) for s, t in enumerate((0.71, 0.74, 0.73))]
    results += [record("sl-none", best, s, 0.8, t) for s, t in enumerate((0.70, 0.70, 0.70))]
    headline = main_table(results)
    assert "| sl-default | 0.005 | 3 | 80.0 ± 0.0 | 72.7 ± 1.5 | +0.7 ± 1.5 (n=3, 2W/1L, p=0.75) |" in headline
    ablation = component_table(results)
    assert "| w/o both (= LoRA) | 3 | 70.0 ± 0.0 | -2.7 ± 1.5 (n=3, 0W/3L, p=0.25) |" in ablation


def test_rank16_own_grid_and_shared_module_cells():
    """r = 16 trains at the lr its own grid chose; the module sweep's "qv" row is the headline cells."""
    from benchmarks.accuracy import BASE, LR_GRID, METHODS, study_cells
    from benchmarks.report import sweep_table, tuned_table

    def record(name, r, lr, seed, val, test):
        cell = {**BASE, **METHODS[name], "r": r, "lr": lr, "seed": seed}
        return {"key": cell_key(cell), "cell": {**cell, "name": name},
                "metrics": {"validation_accuracy": val, "test_accuracy": test}, "env": {}}

    assert study_cells("rank16-tuned", 3, ["peft-lora"], []) == []  # no r = 16 grid yet: nothing to run
    grid = [record("peft-lora", 16, lr, 0, v, 0.5) for lr, v in zip(LR_GRID, (0.70, 0.60, 0.65))]
    grid += [record("peft-lora", 8, lr, 0, v, 0.5) for lr, v in zip(LR_GRID, (0.60, 0.80, 0.65))]
    cells = study_cells("rank16-tuned", 2, ["peft-lora"], grid)
    assert [(c["r"], c["lr"], c["seed"]) for c in cells] == [(16, LR_GRID[0], 0), (16, LR_GRID[0], 1)]
    runs = grid + [record("peft-lora", 16, LR_GRID[0], 1, 0.7, 0.6)]
    runs += [record("sl-default", 16, LR_GRID[0], s, 0.7, t) for s, t in ((0, 0.55), (1, 0.62))]
    assert chosen_lr("peft-lora", runs, {**BASE, "r": 16}) == LR_GRID[0]
    # the r = 16 seed-0 LoRA cell of the tuned study is also the grid's cell: shared, not rerun
    assert "| 16 (own lr grid) | 0.002/– | 55.0 ± 7.1 | not run | n/a |" in tuned_table(runs, "rank", "r", "r", (16,), "rank16-tuned")

    from benchmarks.accuracy import LLAMA, LLAMA_LR_GRID
    llama = [record("peft-lora", 8, lr, 0, v, 0.5) | {"key": cell_key({**LLAMA, **METHODS["peft-lora"], "lr": lr,
                                                                     "seed": 0})}
             for lr, v in zip(LLAMA_LR_GRID, [0.6, 0.6, 0.7, 0.6, 0.6][:len(LLAMA_LR_GRID)])]
    assert study_cells("llama", 1, ["peft-lora"], grid) == []  # MiniLM's grid does not choose SmolLM2's lr
    assert [c["lr"] for c in study_cells("llama", 1, ["peft-lora"], llama)] == [LLAMA_LR_GRID[2]]

    main = study_cells("main", 1, ["peft-lora"], grid)
    modules = study_cells("modules", 1, ["peft-lora"], grid)
    assert cell_key(modules[0]) == cell_key(main[0])  # qv = the model's default targets
    assert "| qv | 0.005/– |" in sweep_table(grid + [record("peft-lora", 8, LR_GRID[1], 0, 0.8, 0.7)],
                                           "modules", "modules", "modules", [None])


def test_drift_and_analysis_with_layers_of_different_shapes():
    """The drift is the chain energy of structlora.theory; mixed shapes (GQA, MLP) are never compared."""
    import torch

    from benchmarks.harness import analyse, drift, structural_edges
    from structlora.theory import layer_drift_energy

    g = torch.Generator().manual_seed(0)
    names = [f"encoder.layer.{i}.attention.self.{t}" for i in range(3) for t in ("query", "value")]
    same = {n: torch.randn(4, 4, generator=g, dtype=torch.float64) for n in names}
    x = torch.stack([same[n].flatten() for n in names])
    ref = layer_drift_energy(x, structural_edges(names))
    assert abs(drift(same)["drift_energy"] - ref) < 1e-6 * ref  # the harness works in float32

    mixed = {n: torch.randn(4 if n.endswith("query") else 2, 4, generator=g) for n in names}
    d = drift(mixed)
    q = [mixed[n] for n in names if n.endswith("query")]
    v = [mixed[n] for n in names if n.endswith("value")]
    expect = sum(float((a[i] - a[i + 1]).pow(2).sum()) for a in (q, v) for i in range(2))
    assert abs(d["drift_energy"] - expect) < 1e-4
    assert abs(d["update_norm2"] - sum(float(m.pow(2).sum()) for m in mixed.values())) < 1e-4
    cos = analyse(mixed)["cosine"]
    assert cos[0][1] is None and cos[0][2] is not None and abs(cos[0][0] - 1.0) < 1e-6


@pytest.mark.parametrize("method,sl", [("peft-lora", {}), ("structlora", DEFAULT_SL)])
def test_run_cell_with_layers_of_different_shapes(assets, method, sl):
    """Attention next to the MLP (as in the all-dense sweep and LLaMA's q_proj/v_proj)."""
    cell = {"task": str(assets / "data.jsonl"), "model": str(assets / "model"), "method": method, "sl": sl,
            "r": 2, "modules": ["query", "intermediate.dense"], "train_size": 16, "batch_size": 8,
            "max_length": 8, "max_steps": 2, "name": method, "study": "smoke"}
    record = run_cell(cell, progress=False)
    a = record["analysis"]
    assert len(a["layers"]) == 4 and record["trace"][-1]["step"] == 2
    assert a["drift_energy"] > 0 and a["cosine"][0][1] is None  # query vs intermediate: no cosine


def test_collapse_table_counts_runs_at_chance():
    from benchmarks.accuracy import BASE, METHODS
    from benchmarks.report import collapse_table

    def record(name, lr, loss, **over):
        cell = {**BASE, **METHODS[name], "lr": lr, "seed": 0, **over}
        return {"key": cell_key(cell), "cell": cell, "metrics": {"final_loss": loss}}

    results = [record("peft-lora", 5e-3, 0.69), record("peft-lora", 5e-3, 0.30, r=16),
               record("sl-default", 5e-3, 0.31), record("sl-default", 2e-3, 0.68, train_size=256),  # too small
               record("sl-none", 5e-3, 0.69)]  # not a compared method
    t = collapse_table(results)
    assert "| peft-lora | 1 of 2 |" in t and "| sl-default | 0 of 1 |" in t and "0.002" not in t
