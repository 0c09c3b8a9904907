"""Every bottleneck x coordinator pair trains, saves, loads and exports on a tiny model."""
import itertools
import warnings

import pytest
import torch
from peft import PeftModel

import structlora
from structlora import StructLoRAConfig, make_optimizer, wrap
from tests.tiny import tiny_batch, tiny_bert

BOTTLENECKS = ["none", "vib", "hsic", "random", "topk-norm"]
COORDINATORS = ["none", "laplacian", "gcn", "gat"]
FILTER_KW = {"random": {"k": 3}, "topk-norm": {"k": 3, "every": 2}}


def config(bottleneck, coordinator, **kw):
    kw = {"beta": 0.1, "lam": 0.1, **kw}
    return StructLoRAConfig(r=4, target_modules=["query", "key", "value"], modules_to_save=["classifier"],
                            bottleneck=bottleneck, coordinator=coordinator, bottleneck_kwargs=FILTER_KW.get(bottleneck, {}),
                            refresh_every=2, **kw)


def train_steps(model, steps=4, lr=1e-2):
    opt = make_optimizer(model, lr=lr)
    model.train()
    grads = {}
    for i in range(steps):
        batch = tiny_batch("bert", n=6, seed=i)
        out = model(**batch)
        loss = model.loss(out.loss, batch)
        assert torch.isfinite(loss)
        loss.backward()
        if i == 1:  # at step 0 B = 0, so x = x_hat = 0 and L_den has no gradient yet
            grads = {n: p.grad.abs().sum().item() if p.grad is not None else None
                     for n, p in model.named_parameters() if p.requires_grad}
        opt.step()
        model.step()
        opt.zero_grad()
    return model.eval(), grads


@pytest.mark.parametrize("bottleneck,coordinator", list(itertools.product(BOTTLENECKS, COORDINATORS)))
def test_pair_trains_saves_exports(bottleneck, coordinator, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, grads = train_steps(wrap(tiny_bert(), config(bottleneck, coordinator)))
    assert set(model.loss_terms) >= {"task", "ib", "total"}
    gate_grads = [g for n, g in grads.items() if ".gate." in n]
    if bottleneck in ("vib", "hsic"):  # learnable gates get a gradient
        assert gate_grads and any(g and g > 0 for g in gate_grads)
    coord_grads = [g for n, g in grads.items() if "coordination.coordinator" in n]
    if coordinator in ("gcn", "gat"):  # learned coordinators get a gradient through L_den
        assert coord_grads and any(g and g > 0 for g in coord_grads)
        assert "coord" in model.loss_terms and "denoise" in model.loss_terms
    batch = tiny_batch("bert", seed=99)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        ref = model(**inputs).logits
    model.save(tmp_path / "ckpt")
    reloaded = structlora.load(tiny_bert(), tmp_path / "ckpt").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).logits, ref)
    model.export_peft(tmp_path / "peft")
    peft_model = PeftModel.from_pretrained(tiny_bert(), str(tmp_path / "peft")).eval()
    with torch.no_grad():
        # float32; the folded gate changes the summation order only
        assert torch.allclose(peft_model(**inputs).logits, ref, atol=1e-5)


def test_none_none_is_vanilla_lora():
    """Same init, same data: structlora 'none'/'none' follows PEFT LoRA's trajectory exactly."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    ours = wrap(tiny_bert(), StructLoRAConfig(r=4, alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"]))
    peft_model = get_peft_model(tiny_bert(), LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
                                                        modules_to_save=["classifier"]))
    with torch.no_grad():
        for name, layer in ours.adapters.items():
            pl = peft_model.base_model.model.get_submodule(name)
            pl.lora_A["default"].weight.copy_(layer.lora_A)
    opt_a = torch.optim.AdamW([p for p in ours.parameters() if p.requires_grad], lr=1e-2)
    opt_b = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    for i in range(5):
        batch = tiny_batch("bert", seed=i)
        for m, opt in ((ours, opt_a), (peft_model, opt_b)):
            m.train()
            out = m(**batch)
            loss = ours.loss(out.loss, batch) if m is ours else out.loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        ours.step()
    batch = tiny_batch("bert", seed=42)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    ours.eval(), peft_model.eval()
    with torch.no_grad():
        # float32 training for 5 steps: identical maths, rounding only
        assert torch.allclose(ours(**inputs).logits, peft_model(**inputs).logits, atol=1e-5)


def test_loss_terms_and_weights():
    model = wrap(tiny_bert(), config("vib", "laplacian", beta=0.5, lam=2.0)).train()
    opt = make_optimizer(model, 1e-2)
    for i in range(2):  # one step so B != 0 and the coupling is non-zero
        batch = tiny_batch("bert", seed=i)
        total = model.loss(model(**batch).loss, batch)
        total.backward(); opt.step(); model.step(); opt.zero_grad()
    t = model.loss_terms
    assert t["coord"] > 0 and t["ib"] > 0
    assert t["total"] == pytest.approx(t["task"] + 0.5 * t["ib"] + 2.0 * t["coord"], rel=1e-5)


def test_coord_warmup_delays_coupling():
    model = wrap(tiny_bert(), config("none", "laplacian", coord_warmup=3)).train()
    batch = tiny_batch("bert")
    model.loss(model(**batch).loss, batch)
    assert "coord" not in model.loss_terms
    for _ in range(3):
        model.step()
    model.loss(model(**batch).loss, batch)
    assert "coord" in model.loss_terms


def test_layer_graph_for_any_model():
    from tests.tiny import TARGETS, tiny_gpt2, tiny_llama

    for build, fam in ((tiny_bert, "bert"), (tiny_llama, "llama"), (tiny_gpt2, "gpt2")):
        g = wrap(build(), target_modules=TARGETS[fam]).layer_graph()
        g.validate()
        assert g.num_nodes == len(g.names) and g.x.shape[1] == 16 * 16


def test_pruning_schedule_reduces_effective_rank(tmp_path):
    model = wrap(tiny_bert(), config("vib", "none", prune_after=2, prune_every=1, target_rank=2))
    model, _ = train_steps(model, steps=3)
    assert set(model.effective_ranks().values()) == {2}
    model.export_peft(tmp_path / "peft")
    cfg = PeftModel.from_pretrained(tiny_bert(), str(tmp_path / "peft")).peft_config["default"]
    assert cfg.r == 2


def test_unknown_strategy_lists_choices():
    with pytest.raises(ValueError, match="hsic"):
        wrap(tiny_bert(), bottleneck="ibx")
    with pytest.raises(ValueError, match="gat"):
        wrap(tiny_bert(), coordinator="gnnx")
