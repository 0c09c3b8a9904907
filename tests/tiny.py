"""Tiny Hugging Face models built from configs (never from a hub) and their inputs."""
from __future__ import annotations

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    ViTConfig,
    ViTForImageClassification,
)

VOCAB = 50


def tiny_bert(num_labels: int = 2, layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, num_labels=num_labels,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # deterministic training
    return BertForSequenceClassification(cfg).eval()


def tiny_llama(num_labels: int = 2, layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=32, max_position_embeddings=32,
                      num_labels=num_labels, pad_token_id=0)
    return LlamaForSequenceClassification(cfg).eval()


def tiny_gpt2(num_labels: int = 2, layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=layers, n_head=2, n_positions=32,
                     num_labels=num_labels, pad_token_id=0)
    return GPT2ForSequenceClassification(cfg).eval()


def tiny_vit(num_labels: int = 3, layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=layers,
                    num_attention_heads=2, intermediate_size=32, num_labels=num_labels)
    return ViTForImageClassification(cfg).eval()


# module names to adapt per family (attention query/value, as in the LoRA paper)
TARGETS = {
    "bert": ["query", "value"],
    "llama": ["q_proj", "v_proj"],
    "gpt2": ["c_attn"],
    "vit": ["q_proj", "v_proj"],
}
BUILDERS = {"bert": tiny_bert, "llama": tiny_llama, "gpt2": tiny_gpt2, "vit": tiny_vit}


def tiny_batch(family: str, n: int = 4, seq: int = 6, seed: int = 1, labels: bool = True) -> dict:
    g = torch.Generator().manual_seed(seed)
    if family == "vit":
        batch = {"pixel_values": torch.randn(n, 1, 8, 8, generator=g)}
        num_labels = 3
    else:
        batch = {"input_ids": torch.randint(1, VOCAB, (n, seq), generator=g),
                 "attention_mask": torch.ones(n, seq, dtype=torch.long)}
        num_labels = 2
    if labels:
        batch["labels"] = torch.randint(0, num_labels, (n,), generator=g)
    return batch


def randomize_adapters(model, seed: int = 0, scale: float = 0.5) -> None:
    """Give every lora_B non-zero values so that adapters change outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.adapters.values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * scale)
