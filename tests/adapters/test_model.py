"""Wrapping tiny HF models: PEFT equivalence, the merge invariant, export, checkpoints."""
import copy

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

import structlora
from structlora import StructLoRAConfig, wrap
from structlora.adapters import GatedLoRALayer
from tests.tiny import BUILDERS, TARGETS, randomize_adapters, tiny_batch, tiny_bert

FAMILIES = list(BUILDERS)
HEADS = {"bert": ["classifier"], "llama": ["score"], "gpt2": ["score"], "vit": ["classifier"]}
# float32 tiny models: merged vs unmerged paths differ only by summation order
ATOL = 1e-5


def logits(model, batch):
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def wrapped(family, **kw):
    base = BUILDERS[family]()
    cfg = StructLoRAConfig(r=2, alpha=4, target_modules=TARGETS[family], modules_to_save=HEADS[family], **kw)
    model = wrap(base, cfg)
    randomize_adapters(model)
    with torch.no_grad():
        for name in model.saved_modules:
            for p in model.base_model.get_submodule(name).parameters():
                p.add_(0.1)
    return model.eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_identity_gate_equals_peft_lora(family):
    ours = wrapped(family)
    base = BUILDERS[family]()
    peft_model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=TARGETS[family],
                                                 fan_in_fan_out=family == "gpt2")).eval()
    with torch.no_grad():
        for name, layer in ours.adapters.items():
            pl = peft_model.base_model.model.get_submodule(name)
            pl.lora_A["default"].weight.copy_(layer.lora_A)
            pl.lora_B["default"].weight.copy_(layer.lora_B)
        for name in ours.saved_modules:  # PEFT's head is untouched here: compare the base head
            src = BUILDERS[family]().get_submodule(name)
            ours.base_model.get_submodule(name).load_state_dict(src.state_dict())
    batch = tiny_batch(family)
    assert torch.allclose(logits(ours, batch), logits(peft_model, batch), atol=ATOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_B_is_base_model(family):
    base = BUILDERS[family]()
    ref = copy.deepcopy(base)
    model = wrap(base, StructLoRAConfig(r=2, target_modules=TARGETS[family]))
    batch = tiny_batch(family)
    assert torch.equal(logits(model, batch), logits(ref, batch))


@pytest.mark.parametrize("family", FAMILIES)
def test_merge_invariant(family, tmp_path):
    model = wrapped(family)
    batch = tiny_batch(family)
    ref = logits(model, batch)
    assert not torch.allclose(ref, logits(BUILDERS[family](), batch), atol=1e-3)  # adapters matter
    model.merge()
    assert torch.allclose(logits(model, batch), ref, atol=ATOL)
    model.unmerge()
    assert torch.allclose(logits(model, batch), ref, atol=ATOL)

    model.save(tmp_path / "ckpt")
    reloaded = structlora.load(BUILDERS[family](), tmp_path / "ckpt").eval()
    assert torch.equal(logits(reloaded, batch), ref)

    model.export_peft(tmp_path / "peft")
    peft_model = PeftModel.from_pretrained(BUILDERS[family](), str(tmp_path / "peft")).eval()
    assert torch.allclose(logits(peft_model, batch), ref, atol=ATOL)

    plain = model.merge_and_unload()
    assert not any(isinstance(m, GatedLoRALayer) for m in plain.modules())
    assert type(plain).__name__ == type(BUILDERS[family]()).__name__
    assert torch.allclose(logits(plain, batch), ref, atol=ATOL)


def test_freezing_and_summary():
    model = wrap(tiny_bert(), StructLoRAConfig(r=2, target_modules=["query", "value"], modules_to_save=["classifier"]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(".lora_" in n or ".classifier." in n for n in trainable)
    assert any(".lora_A" in n for n in trainable) and any("classifier" in n for n in trainable)
    n_lora = sum(l.lora_A.numel() + l.lora_B.numel() for l in model.adapters.values())
    n_head = sum(p.numel() for p in model.base_model.classifier.parameters())
    t, total = model.trainable_parameters()
    assert t == n_lora + n_head
    assert f"trainable params: {t:,}" in model.summary()
    assert len(model.adapters) == 4  # 2 layers x (query, value)


def test_target_forms():
    assert len(wrap(tiny_bert(), target_modules=r".*layer\.0\..*(query|key)").adapters) == 2
    allin = wrap(tiny_bert(), target_modules="all-linear").adapters
    assert "classifier" not in allin and len(allin) == 2 * 6 + 1  # 6 per block + pooler
    excl = wrap(tiny_bert(), target_modules=["query", "value"], exclude_modules=["bert.encoder.layer.0.attention.self.query"])
    assert len(excl.adapters) == 3


def test_pruned_directions_dropped_in_export(tmp_path):
    model = wrapped("bert")
    first, second = list(model.adapters.values())[:2]
    first.gate.prune([0])
    second.gate.prune([0, 1])  # nothing left: left out of the export
    batch = tiny_batch("bert")
    ref = logits(model, batch)
    model.export_peft(tmp_path / "peft")
    peft_model = PeftModel.from_pretrained(tiny_bert(), str(tmp_path / "peft")).eval()
    assert torch.allclose(logits(peft_model, batch), ref, atol=ATOL)
    cfg = peft_model.peft_config["default"]
    names = list(model.adapters)
    assert names[1] not in cfg.target_modules and len(cfg.target_modules) == 3
    assert peft_model.base_model.model.get_submodule(names[0]).lora_A["default"].weight.shape[0] == 1


# --- bad input ---
def test_target_matching_nothing_lists_names():
    with pytest.raises(ValueError, match=r"matched no module.*'query'"):
        wrap(tiny_bert(), target_modules=["nope"])


def test_rank_too_large():
    with pytest.raises(ValueError, match=r"r=17 is invalid.*1 <= r <= 16"):
        wrap(tiny_bert(), r=17)


def test_unsupported_layer_type():
    with pytest.raises(TypeError, match="cannot adapt a layer of type LayerNorm"):
        wrap(tiny_bert(), target_modules=["LayerNorm"])


def test_wrap_twice():
    model = wrap(tiny_bert())
    with pytest.raises(ValueError, match="already holds structlora adapters"):
        wrap(model)
    with pytest.raises(ValueError, match="already holds structlora adapters"):
        wrap(model.base_model)


def test_load_mismatch_names_key_and_restores_model(tmp_path):
    wrap(tiny_bert(), target_modules=["query", "value"]).save(tmp_path / "a")
    other = tiny_bert(layers=1)
    with pytest.raises(ValueError, match=r"key 'bert\.encoder\.layer\.1\..*' is not in the model"):
        structlora.load(other, tmp_path / "a")
    assert not any(isinstance(m, GatedLoRALayer) for m in other.modules())


def test_load_shape_mismatch(tmp_path):
    wrap(tiny_bert(), r=2).save(tmp_path / "a")
    meta = (tmp_path / "a" / "structlora_config.json")
    meta.write_text(meta.read_text().replace('"r": 2', '"r": 3'))
    with pytest.raises(ValueError, match=r"lora_A' has shape \(2, 16\) in the checkpoint but \(3, 16\)"):
        structlora.load(tiny_bert(), tmp_path / "a")


def test_pickle_refused(tmp_path):
    f = tmp_path / "model.bin"
    torch.save({"x": torch.ones(1)}, f)
    with pytest.raises(ValueError, match="pickle"):
        structlora.load(tiny_bert(), f)


def test_non_finite_merge_leaves_model_unchanged():
    model = wrapped("bert")
    batch = tiny_batch("bert")
    ref = logits(model, batch)
    with torch.no_grad():
        list(model.adapters.values())[-1].lora_A[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        model.merge_and_unload()
    assert not any(l.merged for l in model.adapters.values())
    with torch.no_grad():
        list(model.adapters.values())[-1].lora_A[0, 0] = 0.0
    assert logits(model, batch).shape == ref.shape


def test_non_finite_checkpoint_refused_and_previous_kept(tmp_path):
    model = wrapped("bert")
    model.save(tmp_path / "ckpt")
    good = (tmp_path / "ckpt" / "structlora_state.safetensors").read_bytes()
    with torch.no_grad():
        list(model.adapters.values())[0].lora_B[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        model.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "structlora_state.safetensors").read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary left behind


def test_llama_gate_proj_is_adaptable():
    from tests.tiny import tiny_llama

    model = wrap(tiny_llama(), target_modules=["gate_proj", "up_proj"])
    assert len(model.adapters) == 4
    assert len(wrap(tiny_llama(), target_modules="all-linear").adapters) == 2 * 7
