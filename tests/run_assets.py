"""A tiny local model directory and data file for whole runs (``structlora train``, ``train_run``),
and the environment that lets a subprocess import the package from this checkout."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
WORDS = ["good", "great", "fine", "love", "bad", "awful", "poor", "hate", "movie", "the", "a", "plot"]


def make_assets(root: Path, rows: int = 48) -> Path:
    """``root/model`` (a 2-layer BERT, dropout off, WordLevel tokenizer) and ``root/data.jsonl``.

    Every text has 5 words, so no batch is padded: a batch split over ranks
    computes exactly what the whole batch computes.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, num_labels=2,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertForSequenceClassification(cfg).save_pretrained(root / "model")
    fast.save_pretrained(root / "model")
    g = torch.Generator().manual_seed(0)
    lines = []
    for i in range(rows):
        label = i % 2
        words = WORDS[:4] if label else WORDS[4:8]
        picks = [words[int(j)] for j in torch.randint(0, 4, (3,), generator=g)]
        lines.append(json.dumps({"text": " ".join(["the", "movie", *picks]), "label": label}))
    (root / "data.jsonl").write_text("\n".join(lines))
    return root


def run_args(assets: Path, out: Path, *extra: str) -> list[str]:
    """``structlora train`` arguments for the tiny assets: 32 examples, r=4 on query/value."""
    return ["train", "--output-dir", str(out), "--model", str(assets / "model"), "--data", str(assets / "data.jsonl"),
            "--train-size", "32", "--max-length", "8", "--r", "4", "--target-modules", "query,value",
            "--modules-to-save", "classifier", "--no-progress", *extra]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The current environment plus this checkout on PYTHONPATH and one thread per process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1")
    env.update(extra)
    return env
