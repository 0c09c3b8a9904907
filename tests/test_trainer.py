"""The HF Trainer integration trains a tiny model and logs every loss term."""
import torch
from transformers import TrainingArguments

from structlora import StructLoRAConfig, wrap
from structlora.trainer import StructLoRATrainer
from tests.tiny import tiny_batch, tiny_bert


def dataset(n=24):
    batch = tiny_batch("bert", n=n, seed=3)
    return [{k: v[i] for k, v in batch.items()} for i in range(n)]


def test_trainer_runs_and_logs_terms(tmp_path):
    model = wrap(tiny_bert(), StructLoRAConfig(r=2, target_modules=["query", "value"], modules_to_save=["classifier"],
                                               bottleneck="vib", coordinator="gcn", refresh_every=2))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=6,
                             logging_steps=2, learning_rate=1e-2, report_to=[], save_strategy="no",
                             use_cpu=True, disable_tqdm=True)
    trainer = StructLoRATrainer(model=model, args=args, train_dataset=dataset(), eval_dataset=dataset(8))
    trainer.train()
    assert model.global_step == 6  # model.step() ran after every optimizer step
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3
    for key in ("task", "ib", "coord", "denoise", "total"):
        assert all(f"structlora/{key}" in h for h in logs), key
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert any(".gate." in n for n in changed) and any("lora_B" in n for n in changed)
    metrics = trainer.evaluate()
    assert "eval_loss" in metrics and metrics["eval_loss"] > 0


def test_loss_reads_labels_from_batch_encoding():
    """Collators return BatchEncoding (a UserDict, not a dict): labels must still reach HSIC."""
    from transformers import BatchEncoding

    model = wrap(tiny_bert(), StructLoRAConfig(r=2, bottleneck="hsic")).train()
    batch = BatchEncoding(tiny_batch("bert", n=4))
    loss = model.loss(model(**batch).loss, batch)
    assert torch.isfinite(loss) and model.loss_terms["ib"] != 0.0
