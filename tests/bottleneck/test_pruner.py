"""Pruner: schedule, threshold, budgets, the last direction, and pruned ranks through
training and PEFT export."""
import json

import pytest
import torch
from peft import PeftModel

from structlora.bottleneck import FixedMaskGate, HSICBottleneck, Pruner, VIBBottleneck
from tests.bottleneck.helpers import inputs, record, single_layer, wrap_with
from tests.tiny import BUILDERS, randomize_adapters, tiny_batch

ATOL = 1e-5  # float32 tiny models: folded vs gated paths differ only by summation order


def fixed(values):
    return single_layer(FixedMaskGate(len(values), keep=values), d_out=len(values))


def test_nothing_before_warm_up_then_every_period():
    layer = fixed([0.01, 0.5, 0.9, 0.02])
    pruner = Pruner(after=10, every=5, threshold=0.05)
    assert pruner.step({"a": layer}, 9) is None and not layer.gate.pruned.any()
    assert pruner.step({"a": layer}, 12) is None
    assert pruner.step({"a": layer}, 10) == {"a": 2}
    assert layer.gate.pruned.tolist() == [True, False, False, True]
    assert pruner.step({"a": layer}, 15) == {"a": 2}


def test_target_rank_keeps_the_top_per_adapter():
    a, b = fixed([0.3, 0.9, 0.6, 0.8]), fixed([0.2, 0.1, 0.7, 0.4])
    ranks = Pruner(threshold=0.0, target_rank=2).step({"a": a, "b": b}, 0)
    assert ranks == {"a": 2, "b": 2}
    assert a.gate.pruned.tolist() == [True, False, True, False]
    assert b.gate.pruned.tolist() == [True, True, False, False]


def test_keep_ratio_is_a_global_budget():
    a, b = fixed([0.3, 0.9, 0.6, 0.8]), fixed([0.2, 0.1, 0.7, 0.4])
    ranks = Pruner(threshold=0.0, keep_ratio=0.5).step({"a": a, "b": b}, 0)  # keep 4 of 8: 0.9, 0.8, 0.7, 0.6
    assert ranks == {"a": 3, "b": 1}
    assert b.gate.pruned.tolist() == [True, True, False, True]


def test_threshold_and_budget_combine():
    layer = fixed([0.01, 0.9, 0.6, 0.8])
    assert Pruner(threshold=0.05, target_rank=3).step({"a": layer}, 0) == {"a": 3}
    assert Pruner(threshold=0.7, target_rank=3).step({"a": layer}, 0) == {"a": 2}


def test_last_direction_is_spared_unless_asked():
    layer = fixed([0.01, 0.03, 0.02])
    assert Pruner(threshold=0.05).step({"a": layer}, 0) == {"a": 1}
    assert layer.gate.pruned.tolist() == [True, False, True]  # the largest gate survives
    assert Pruner(threshold=0.05, allow_empty=True).step({"a": layer}, 0) == {"a": 0}


@pytest.mark.parametrize("field, value, allowed", [
    ("after", -1, "use an integer >= 0"), ("every", 0, "use an integer >= 1"),
    ("threshold", 1.5, r"use a value in \[0, 1\]"), ("target_rank", 0, "use None or an integer >= 1"),
    ("keep_ratio", 0.0, r"use None or a value in \(0, 1\]"),
])
def test_bad_config_names_the_field(field, value, allowed):
    with pytest.raises(ValueError, match=rf"Pruner.{field}={value!r} is invalid: {allowed}"):
        Pruner(**{field: value})


def pruned_tiny_bert(strategy):
    model = wrap_with(strategy)
    randomize_adapters(model)
    with torch.no_grad():
        for i, layer in enumerate(model.adapters.values()):  # spread the gates so the budget is not a tie
            layer.gate.gate_logits.copy_(torch.linspace(-1.0, 3.0, 4).roll(i))
    ranks = Pruner(threshold=0.0, target_rank=2).step(model.adapters, 0)
    assert set(ranks.values()) == {2}
    return model


def test_pruned_directions_stay_exactly_zero_through_training():
    model = pruned_tiny_bert(VIBBottleneck())
    pruned = {n: layer.gate.pruned.clone() for n, layer in model.adapters.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    model.train()
    for step in range(3):
        batch = tiny_batch("bert", n=4, seed=step)
        record(model, batch)
        loss = model(**batch).loss + VIBBottleneck().penalty(model.adapters)
        loss.backward()
        opt.step()
        opt.zero_grad()
        for name, layer in model.adapters.items():
            assert bool((layer.recorded["z"][:, pruned[name]] == 0).all())  # sampled training gate
            assert bool((layer.gate.mask()[pruned[name]] == 0).all())
            assert torch.equal(layer.gate.pruned, pruned[name])
    # whatever the factors of pruned directions hold, they change no output (exact zeros)
    model.eval()
    batch = inputs(tiny_batch("bert"))
    with torch.no_grad():
        before = model(**batch).logits
        for name, layer in model.adapters.items():
            layer.lora_B[:, pruned[name]] = 1e3
        assert torch.equal(model(**batch).logits, before)


def test_pruned_ranks_carry_into_peft_export(tmp_path):
    model = pruned_tiny_bert(HSICBottleneck()).eval()
    batch = inputs(tiny_batch("bert"))
    with torch.no_grad():
        ours = model(**batch).logits
    model.export_peft(tmp_path / "peft")
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["r"] == 2 and not config["rank_pattern"]  # r = 4 before pruning
    peft_model = PeftModel.from_pretrained(BUILDERS["bert"](), str(tmp_path / "peft")).eval()
    with torch.no_grad():
        torch.testing.assert_close(peft_model(**batch).logits, ours, rtol=0, atol=ATOL)
