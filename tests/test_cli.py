"""The command line on a tiny local model and data file: artefacts and clean failures."""
import json

import pytest

from structlora.cli import main
from tests.run_assets import make_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("cli"), rows=60)


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
