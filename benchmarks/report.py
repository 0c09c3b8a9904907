"""Regenerate every benchmark table and figure from the JSONL results.

    python benchmarks/report.py

Reads ``benchmarks/results/{accuracy,refresh_cost,step_time,inference}.jsonl``,
writes ``benchmarks/results/tables.md`` and the figures ``benchmarks/results/bench_*.png``,
and replaces the text between the ``<!-- tables:begin -->`` / ``<!-- tables:end -->``
markers of ``BENCHMARKS.md`` with the tables. Cells not run yet show as "not run".
"""
from __future__ import annotations

import contextlib
import io
import itertools
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.accuracy import (BASE, FILTERS, HEADLINE, KEEP, LLAMA, LLAMA_LR_GRID, LR_FROM,  # noqa: E402
                                 LR_GRID, METHODS, MODULE_SETS, OWN_GRID, TUNED, chosen_lr, load_results, study_cells)
from benchmarks.harness import cell_key  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "benchmarks" / "results"
BEGIN, END = "<!-- tables:begin -->", "<!-- tables:end -->"
MAX_SEEDS = 10


def read_jsonl(name: str) -> list[dict]:
    path = RES / name
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


# --- statistics -----------------------------------------------------------------------------------

def mean_std(xs: list[float], pct: bool = True) -> str:
    if not xs:
        return "not run"
    f = 100 if pct else 1
    if len(xs) == 1:
        return f"{f * xs[0]:.1f}" if pct else f"{xs[0]:.3g}"
    return f"{f * statistics.fmean(xs):.1f} ± {f * statistics.stdev(xs):.1f}"


def sign_flip_p(diffs: list[float]) -> float:
    """Exact two-sided paired sign-flip (permutation) test of mean(diffs) = 0."""
    obs = abs(statistics.fmean(diffs))
    flips = list(itertools.product((1, -1), repeat=len(diffs)))
    hits = sum(abs(statistics.fmean(s * d for s, d in zip(sign, diffs))) >= obs - 1e-12 for sign in flips)
    return hits / len(flips)


def paired(a: dict[int, float], ref: dict[int, float]) -> str:
    """Paired difference a - ref over common seeds, in accuracy points."""
    seeds = sorted(set(a) & set(ref))
    if not seeds:
        return "n/a"
    d = [a[s] - ref[s] for s in seeds]
    w, l = sum(x > 0 for x in d), sum(x < 0 for x in d)
    sd = f" ± {100 * statistics.stdev(d):.1f}" if len(d) > 1 else ""
    return f"{100 * statistics.fmean(d):+.1f}{sd} (n={len(d)}, {w}W/{l}L, p={sign_flip_p(d):.2f})"


# --- grouping cells into table rows -----------------------------------------------------------------

def by_key(results: list[dict]) -> dict[str, dict]:
    return {r["key"]: r for r in results}


def group(study: str, methods: list[str], results: list[dict], setting=lambda c: "") -> dict:
    """(setting, name) -> {seed: record} for the cells of ``study`` that have results."""
    recs = by_key(results)
    out: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):  # "skipping ..." notes are for accuracy.py
        cells = study_cells(study, MAX_SEEDS, methods, results)
    for c in cells:
        r = recs.get(cell_key(c))
        if r is not None:
            out.setdefault((setting(c), c["name"]), {})[c["seed"]] = r
    return out


def acc(rows: dict[int, dict], split: str = "test_accuracy") -> dict[int, float]:
    return {s: r["metrics"][split] for s, r in rows.items()}


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def first(rows: dict[int, dict], path: str, fmt=lambda v: v):
    if not rows:
        return "–"
    r = next(iter(rows.values()))
    for part in path.split("."):
        r = r[part]
    return fmt(r)


# --- tables -----------------------------------------------------------------------------------------

def lr_grid_table(results: list[dict], names=None, base: dict = BASE, label: str = "method", grid=LR_GRID) -> str:
    recs = by_key(results)
    rows = []
    for name in names or [n for n in HEADLINE if n not in LR_FROM]:
        vals = []
        for lr in grid:
            r = recs.get(cell_key({**base, **METHODS[name], "lr": lr, "seed": 0}))
            vals.append("not run" if r is None else
                        f"{100 * r['metrics']['validation_accuracy']:.1f} ({100 * r['metrics']['test_accuracy']:.1f})")
        lr = chosen_lr(name, results, base, grid)
        rows.append([name, *vals, "–" if lr is None else f"**{lr:g}**"])
    return table([label] + [f"lr {lr:g}: val (test)" for lr in grid] + ["chosen (val)"], rows)


def method_rows(groups: dict, setting, names: list[str], ref_name: str = "peft-lora") -> list[list]:
    rows = []
    ref = acc(groups.get((setting, ref_name), {}))
    for name in names:
        g = groups.get((setting, name), {})
        cell = next(iter(g.values()))["cell"] if g else None
        rows.append([
            name, "–" if cell is None else f"{cell['lr']:g}", len(g),
            mean_std(list(acc(g, "validation_accuracy").values())), mean_std(list(acc(g).values())),
            "(reference)" if name == ref_name else paired(acc(g), ref),
            first(g, "metrics.trainable_params", lambda v: f"{v:,}"),
            first(g, "metrics.coordinator_params", lambda v: f"{v:,}"),
            first(g, "metrics.final_rank"),
            mean_std([r["metrics"]["seconds_per_step"] for r in g.values()], pct=False),
            mean_std([r["analysis"]["relative_drift"] for r in g.values()], pct=False),
        ])
    return rows


METHOD_HEADER = ["method", "lr", "seeds", "val acc %", "test acc %", "Δ test vs LoRA (paired, points)",
                 "trainable params", "coordinator params (training only)", "final total rank", "s/step",
                 "relative drift"]


def main_table(results: list[dict], study: str = "main") -> str:
    methods = {"main": HEADLINE, "pilot": ["peft-lora", "sl-none", "sl-default", "sl-no-coord", "sl-no-ib"]}.get(study, ["peft-lora", "sl-default"])
    g = group(study, methods, results)
    return table(METHOD_HEADER, method_rows(g, "", methods))


def llama_table(results: list[dict]) -> str:
    """SmolLM2: LoRA and StructLoRA at their chosen lr, plus the ablations at StructLoRA's lr."""
    g = {**group("llama", ["peft-lora", "sl-default"], results),
         **group("llama-ablation", ["sl-none", "sl-no-coord", "sl-no-ib"], results)}
    rows = method_rows(g, "", ["peft-lora", "sl-default", "sl-none", "sl-no-coord", "sl-no-ib"])
    # both methods at the next lower lr of the grid, where every seed that ran is kept (a second view)
    chosen = chosen_lr("peft-lora", results, LLAMA, LLAMA_LR_GRID)
    lower = [lr for lr in LLAMA_LR_GRID if chosen is not None and lr < chosen]
    if lower:
        recs, lr, low = by_key(results), lower[-1], {}
        for n in ("peft-lora", "sl-default"):
            keys = {s: cell_key({**LLAMA, **METHODS[n], "lr": lr, "seed": s}) for s in range(MAX_SEEDS)}
            low[("", f"{n} @ {lr:g}")] = {s: recs[k] for s, k in keys.items() if k in recs}
        rows += method_rows(low, "", [n for _, n in low], ref_name=f"peft-lora @ {lr:g}")
    return table(METHOD_HEADER, rows)


def component_table(results: list[dict]) -> str:
    """Paper Table 5 from the headline cells: the full method, without each part, without both."""
    names = {"sl-default": "StructLoRA (full)", "sl-no-ib": "w/o IB filter", "sl-no-coord": "w/o coordinator",
             "sl-none": "w/o both (= LoRA)"}
    g = group("main", list(names), results)
    full = acc(g.get(("", "sl-default"), {}))
    rows = [[label, len(g.get(("", n), {})), mean_std(list(acc(g.get(("", n), {})).values())),
             "(reference)" if n == "sl-default" else paired(acc(g.get(("", n), {})), full)]
            for n, label in names.items()]
    return table(["setting", "seeds", "test acc %", "Δ vs full (paired, points)"], rows)


def sweep_rows(results: list[dict], study: str, key: str, values, suffix: str = "", extra=()) -> list[list]:
    """One row per setting: LoRA, StructLoRA, their paired difference; then, for each name in
    ``extra`` (e.g. the ablations), its accuracy and its paired difference against LoRA."""
    methods = ["peft-lora", "sl-default", *extra]
    g = group(study, methods, results, setting=lambda c: json.dumps(c[key]))
    rows = []
    for v in values:
        s = json.dumps(v)
        lora, sl = g.get((s, "peft-lora"), {}), g.get((s, "sl-default"), {})
        lrs = "/".join("–" if not x else f"{next(iter(x.values()))['cell']['lr']:g}" for x in (lora, sl))
        row = [label_of(v) + suffix, lrs, mean_std(list(acc(lora).values())), mean_std(list(acc(sl).values())),
               paired(acc(sl), acc(lora))]
        for name in extra:
            other = acc(g.get((s, name), {}))
            row.append(f"{mean_std(list(other.values()))}; {paired(other, acc(lora))}")
        rows.append(row)
    return rows


SWEEP_HEADER = ["lr (LoRA/StructLoRA)", "PEFT LoRA test %", "StructLoRA test %", "Δ (paired, points)"]


def sweep_table(results: list[dict], study: str, key: str, label: str, values, extra=()) -> str:
    header = [label] + SWEEP_HEADER + [f"{name} test %; Δ vs LoRA" for name in extra]
    return table(header, sweep_rows(results, study, key, values, extra=extra))


def tuned_table(results: list[dict], study: str, key: str, label: str, values, tuned: str) -> str:
    """A sweep at the r = 8 learning rates, plus the settings of ``tuned`` at the lr their own grid chose."""
    own = [setting[key] for setting in OWN_GRID[TUNED[tuned]]]
    rows = sweep_rows(results, study, key, values) + sweep_rows(results, tuned, key, own, " (own lr grid)")
    return table([label] + SWEEP_HEADER, rows)


def own_grid_tables(results: list[dict], grid_study: str) -> str:
    return "\n\n".join(
        lr_grid_table(results, ["peft-lora", "sl-default"], {**BASE, **setting},
                      "method (" + ", ".join(f"{k} = {label_of(v)}" for k, v in setting.items()) + ")")
        for setting in OWN_GRID[grid_study])


def collapse_table(results: list[dict], threshold: float = 0.65) -> str:
    """Runs that never left chance (mean training loss of the last 8 steps above ``threshold``;
    ln 2 = 0.693 is chance for two balanced classes), per method and lr, over every MiniLM
    movie-review cell with at least 512 examples (any study, rank or module set)."""
    methods = {"peft-lora": METHODS["peft-lora"], "sl-default": METHODS["sl-default"]}
    counts: dict = {}
    for r in results:
        c = r["cell"]
        if c["model"] != "minilm" or c["task"] != "movie-reviews" or c["train_size"] < 512:
            continue
        name = next((n for n, spec in methods.items()
                     if c["method"] == spec["method"] and c.get("sl", {}) == spec.get("sl", {})), None)
        if name is None:
            continue
        n, k = counts.get((name, c["lr"]), (0, 0))
        counts[(name, c["lr"])] = (n + 1, k + (r["metrics"]["final_loss"] > threshold))
    lrs = sorted({lr for _, lr in counts})
    rows = [[name] + [f"{counts[(name, lr)][1]} of {counts[(name, lr)][0]}" if (name, lr) in counts else "–"
                      for lr in lrs] for name in methods]
    return table(["method"] + [f"lr {lr:g}" for lr in lrs], rows)


def label_of(v) -> str:
    if v is None or isinstance(v, list):
        return next((k for k, m in MODULE_SETS.items() if m == v), None) or ",".join(v)
    return str(v)


def variants_table(results: list[dict]) -> str:
    g = group("variants", [], results)
    rows = []
    for (_, name), recs in sorted(g.items()):
        seed0 = recs.get(0)
        rows.append([name, len(recs), "–" if seed0 is None else f"{100 * seed0['metrics']['validation_accuracy']:.1f}",
                     mean_std(list(acc(recs, "validation_accuracy").values())),
                     mean_std(list(acc(recs).values())),
                     mean_std([r["analysis"]["relative_drift"] for r in recs.values()], pct=False),
                     first(recs, "metrics.final_rank")])
    return table(["variant (lr 2e-3)", "seeds", "seed-0 val % (chooses)", "val acc %", "test acc %", "relative drift", "final total rank"],
                 rows or [["not run", "", "", "", "", "", ""]])


def filters_table(results: list[dict]) -> str:
    g = group("filters", [], results)
    ref = acc(g.get(("", f"peft-lora-r{BASE['r']}"), {}))
    rows = []
    for name in list(FILTERS) + [f"peft-lora-r{KEEP}", f"peft-lora-r{BASE['r']}"]:
        recs = g.get(("", name), {})
        rows.append([name, first(recs, "metrics.final_rank"), len(recs), mean_std(list(acc(recs).values())),
                     paired(acc(recs), ref) if not name.endswith(f"r{BASE['r']}") else "(reference)"])
    return table(["filter (keep 4 of r=8 per adapter)", "final total rank", "seeds", "test acc %",
                  "Δ vs LoRA r=8 (paired)"], rows)


def cost_tables() -> str:
    parts = []
    rc = {(r["N"], r["d"], r["d_ff"], r["coordinator"]): r for r in read_jsonl("refresh_cost.jsonl")}
    before = {(r["N"], r["d"], r["d_ff"], r["coordinator"]): r for r in read_jsonl("refresh_cost_before_builder_fix.jsonl")}
    if rc:
        rows = [[c, n, d, ff or "–", r["edges"], f"{r['step_coord_ms']:.1f}",
                 f"{before[(n, d, ff, c)]['refresh_ms']:.1f}" if (n, d, ff, c) in before else "–", f"{r['refresh_ms']:.1f}",
                 f"{r['capture_ms']:.0f}", f"{r['env'].get('load_avg_1min', float('nan')):.1f}"]
                for (n, d, ff, c), r in sorted(rc.items(), key=lambda kv: (kv[0][3], kv[0][0], kv[0][1], kv[0][2] or 0))]
        parts.append("### Graph machinery cost (synthetic factors, r = 8, k = 16, 1 thread)\n\n" + table(
            ["coordinator", "N", "d", "d_ff", "edges", "per-step coupling ms", "refresh ms (before EMA/builder fix)",
             "refresh ms",
             "gradient capture ms (256 tokens)", "load avg"], rows))
    sb = read_jsonl("sketch_batching.jsonl")
    if sb:
        rows = [[r["N"], r["d"], r["d_ff"] or "–", f"{r['loop_ms']:.1f}", f"{r['batched_ms']:.1f}",
                 f"{r['speedup']:.2f}×", f"{r['max_abs_diff']:.1e}"] for r in sb]
        parts.append("### Node sketches: per-node loop (before) vs batched (now), forward + backward, 1 thread\n\n"
                     + table(["N", "d", "d_ff", "loop ms", "batched ms", "speed-up", "max |Δ|"], rows))
    st = read_jsonl("step_time.jsonl")
    if st:
        rows = [[r["model"], r["method"], f"{r['median_step_s']:.3f}", f"{r['median_ratio']:.3f}",
                 f"[{r['ratio_q1']:.3f}, {r['ratio_q3']:.3f}]", f"{r['mean_ratio']:.3f}", r["rounds"], r["block"],
                 r.get("warmup_rounds", 0),
                 f"{r['env'].get('load_avg_1min', float('nan')):.1f}"] for r in st if r["kind"] == "time"]
        parts.append("### Training step time (interleaved, same batches)\n\n" + table(
            ["model", "method", "median s/step", "median ratio vs LoRA", "IQR of ratio", "mean ratio (incl. refresh)",
             "rounds", "steps/block", "untimed warm-up rounds", "load avg"], rows))
        rows = [[r["model"], r["method"], r["steps"],
                 "mmap ≥ 64 KiB" if r.get("malloc_mmap_threshold") else "glibc default",
                 f"{r['peak_rss'] / 2**30:.3f}", f"{r['peak_ratio']:.3f}",
                 f"{r['training_rise'] / 2**20:.0f}", f"{r['rise_ratio']:.2f}"] for r in st if r["kind"] == "memory"]
        parts.append("### Peak memory (peak RSS of a fresh process per method)\n\n" + table(
            ["model", "method", "steps", "allocator", "peak RSS GiB", "ratio vs LoRA", "rise over built model MiB",
             "rise ratio"], rows))
    inf = read_jsonl("inference.jsonl")
    if inf:
        rows = [[r["model"], r["train_steps"], r["effective_rank_total"], f"{r['export_max_abs_diff']:.2e}",
                 f"{r['merge_max_abs_diff']:.2e}", f"{r['logit_scale']:.2f}", f"{r['latency_ratio_median']:.3f}",
                 f"[{r['latency_ratio_q1']:.3f}, {r['latency_ratio_q3']:.3f}]"] for r in inf]
        parts.append("### Inference: merged vs base, exported adapter vs structlora\n\n" + table(
            ["model", "train steps", "kept rank", "export max |Δlogit|", "merge max |Δlogit|", "max |logit|",
             "latency ratio merged/base", "IQR"], rows))
    return "\n\n".join(parts) if parts else "Cost benchmarks: not run."


def tables(results: list[dict]) -> str:
    envs = {json.dumps({k: v for k, v in r["env"].items() if k != "load_avg_1min"}) for r in results}
    loads = [r["env"].get("load_avg_1min") for r in results if r["env"].get("load_avg_1min") is not None]
    out = [f"Generated by `python benchmarks/report.py` from {len(results)} accuracy cells. "
           f"Environments: {'; '.join(sorted(envs)) or 'none'}. "
           + (f"1-min load average during the cells: {min(loads):.1f}–{max(loads):.1f} (2 cores)." if loads else ""),
           "### Learning-rate grid (seed 0, validation chooses)\n\n" + lr_grid_table(results),
           "### Headline: MiniLM, movie reviews, r = 8 on query/value, lr chosen on validation\n\n"
           + main_table(results),
           "### Component ablation (paper Table 5), from the headline cells\n\n" + component_table(results),
           "### Choosing the StructLoRA default (variant study)\n\n" + variants_table(results),
           "### Filtering strategies at equal kept rank\n\n" + filters_table(results),
           "### Rank sweep\n\n" + tuned_table(results, "rank", "r", "r", (2, 4, 8, 16), "rank16-tuned"),
           "### Learning-rate grid at r = 16 (seed 0, validation chooses)\n\n" + own_grid_tables(results, "lr-grid-r16"),
           "### Data sweep (fraction of a 1,024-example pool)\n\n"
           + sweep_table(results, "data", "train_size", "train size", (102, 256, 512, 1024),
                         extra=("sl-no-coord", "sl-no-ib")),
           "### Target-module sweep\n\n"
           + tuned_table(results, "modules", "modules", "modules", list(MODULE_SETS.values()), "modules-tuned"),
           "### Learning-rate grids for the larger module sets (seed 0, validation chooses)\n\n"
           + own_grid_tables(results, "lr-grid-modules"),
           "### Runs that stayed at chance (final training loss > 0.65; every MiniLM movie-review cell with "
           "≥ 512 examples, any rank or module set)\n\n" + collapse_table(results),
           "### Amazon snippets\n\n" + main_table(results, "amazon"),
           "### LLaMA family: SmolLM2-135M (256 examples, 32 steps, r = 8 on q_proj/v_proj)\n\n"
           + lr_grid_table(results, ["peft-lora", "sl-default"], LLAMA, "method (SmolLM2, seed 0)", LLAMA_LR_GRID)
           + "\n\n" + llama_table(results),
           cost_tables()]
    return "\n\n".join(out) + "\n"


def splice(md: Path, body: str) -> None:
    text = md.read_text() if md.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    md.write_text(f"{head}{BEGIN}\n{body}{END}{tail}")


def main() -> int:
    from benchmarks.figures import all_figures

    results = load_results()
    body = tables(results)
    (RES / "tables.md").write_text(body)
    splice(ROOT / "BENCHMARKS.md", body)
    for path in all_figures(results, RES):
        print("wrote", path.relative_to(ROOT))
    print("wrote benchmarks/results/tables.md and the tables in BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
