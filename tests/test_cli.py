"""The command line on a tiny local model and data file: artefacts and clean failures."""
import json

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers

from structlora.cli import main

WORDS = ["good", "great", "fine", "love", "bad", "awful", "poor", "hate", "movie", "the", "a", "plot"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, num_labels=2)
    BertForSequenceClassification(cfg).save_pretrained(root / "model")
    fast.save_pretrained(root / "model")
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(60):
        label = i % 2
        words = WORDS[:4] if label else WORDS[4:8]
        picks = [words[int(j)] for j in torch.randint(0, 4, (3,), generator=g)]
        rows.append({"text": " ".join(["the", "movie", *picks]), "label": label})
    (root / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return root


def train_args(assets, out, *extra):
    return ["train", "--output-dir", str(out), "--model", str(assets / "model"), "--data", str(assets / "data.jsonl"),
            "--train-size", "32", "--epochs", "1", "--batch-size", "8", "--max-length", "8", "--r", "2",
            "--target-modules", "query,value", "--modules-to-save", "classifier", "--no-progress", *extra]


def test_train_writes_every_artefact_and_subcommands_work(assets, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(assets, out, "--bottleneck", "vib", "--coordinator", "laplacian", "--refresh-every", "2")) == 0
    for name in ("metrics.json", "run_config.json", "train_log.jsonl", "checkpoint/structlora_config.json",
                 "checkpoint/structlora_state.safetensors", "adapter/adapter_config.json",
                 "adapter/adapter_model.safetensors"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 4
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "effective ranks" in printed and str(out / "adapter") in printed

    assert main(["eval", str(out), "--split", "test"]) == 0
    assert f"test accuracy: {metrics['test_accuracy']:.4f}" in capsys.readouterr().out
    assert main(["export", str(out), "--out", str(tmp_path / "merged"), "--merged"]) == 0
    assert (tmp_path / "merged" / "config.json").exists()
    assert main(["graph", str(out), "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_config_file_and_flag_override(assets, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("bottleneck: hsic\ncoordinator: gcn\nbeta: 0.5\nepochs: 1\n")
    out = tmp_path / "run"
    assert main(train_args(assets, out, "--config", str(cfg), "--beta", "0.25")) == 0
    saved = json.loads((out / "run_config.json").read_text())["structlora"]
    assert saved["bottleneck"] == "hsic" and saved["coordinator"] == "gcn" and saved["beta"] == 0.25


@pytest.mark.parametrize("extra,message", [
    (["--bottleneck", "ibx"], "unknown bottleneck"),
    (["--coordinator", "gnnx"], "unknown coordinator"),
    (["--beta", "-1"], "beta=-1.0 is invalid"),
    (["--model", "/no/such/model"], "could not load model"),
    (["--data", "/no/such/data.jsonl"], "data file /no/such/data.jsonl does not exist"),
])
def test_bad_input_exits_with_one_line_and_keeps_previous_run(assets, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert main(train_args(assets, out)) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    code = main(train_args(assets, out, *extra))
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and message in err
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no stray temporary directory


def test_unknown_config_key(assets, tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"rank": 4}))
    assert main(train_args(assets, tmp_path / "run", "--config", str(cfg))) == 2
    assert "unknown option(s) ['rank']" in capsys.readouterr().err
