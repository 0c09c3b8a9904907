"""Smoke test of the benchmark harness (benchmarks/): every method, 2 steps on a tiny local model.

The benchmarks themselves are not part of CI; this only checks that the harness,
the resumable cell keys and the report still run end to end.
"""
import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from benchmarks.accuracy import DEFAULT_SL, chosen_lr
from benchmarks.harness import cell_key, run_cell
from benchmarks.report import paired, sign_flip_p, tables

WORDS = ["good", "great", "fine", "love", "bad", "awful", "poor", "hate", "movie", "the"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, num_labels=2)
    BertForSequenceClassification(cfg).save_pretrained(root / "model")
    fast.save_pretrained(root / "model")
    rows = [{"text": f"the movie {WORDS[i % 8]}", "label": int(i % 8 < 4)} for i in range(40)]
    (root / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return root


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
