"""A mini ablation: swap IB estimators and coordinators in a loop, same data and seed."""
import argparse
import itertools
import json

from structlora.config import StructLoRAConfig
from structlora.run import RunConfig, train_run

p = argparse.ArgumentParser()
p.add_argument("--train-size", type=int, default=256)
p.add_argument("--max-steps", type=int, default=None)
args = p.parse_args()

run = RunConfig(model="minilm", data="movie-reviews", train_size=args.train_size, epochs=1,
                max_steps=args.max_steps, progress=False, eval_test=False)
results = {}
for bottleneck, coordinator in itertools.product(["none", "vib", "hsic"], ["none", "laplacian", "gat"]):
    cfg = StructLoRAConfig(r=8, target_modules=["query", "value"], modules_to_save=["classifier"],
                           bottleneck=bottleneck, coordinator=coordinator, seed=run.seed)
    metrics = train_run(run, cfg)
    results[f"{bottleneck}/{coordinator}"] = round(metrics["validation_accuracy"], 4)
    print(f"{bottleneck:>5} x {coordinator:<9} validation accuracy {results[f'{bottleneck}/{coordinator}']}")
print(json.dumps(results, indent=2))
