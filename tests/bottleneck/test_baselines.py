"""Baseline filters: 'none', seeded 'random', 'topk-norm' keeps exactly the k largest."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from structlora.adapters import IdentityGate
from structlora.bottleneck import FixedMaskGate, NoBottleneck, RandomBottleneck, TopKNormBottleneck
from tests.bottleneck.helpers import single_layer


def test_none_is_vanilla_lora():
    est = NoBottleneck()
    layer = single_layer(est.make_gate(4))
    assert isinstance(layer.gate, IdentityGate)
    penalty = est.penalty({"a": layer})
    assert penalty.dim() == 0 and penalty == 0
    assert (est.name, est.needs_stats, est.needs_labels) == ("none", False, False)


@given(k=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_random_is_reproducible_by_seed_and_keeps_k(k, seed):
    names = [f"layer.{i}.query" for i in range(4)]
    first = [RandomBottleneck(k, seed).make_gate(8, name).mask() for name in names]
    again = [RandomBottleneck(k, seed).make_gate(8, name).mask() for name in names]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(set(m.unique().tolist()) <= {0.0, 1.0} and int(m.sum()) == k for m in first)


def test_random_differs_across_adapters_and_seeds():
    masks = {tuple(RandomBottleneck(3, 0).make_gate(8, f"layer.{i}").mask().tolist()) for i in range(6)}
    # C(8, 3) = 56 keep-sets: six adapter names colliding into one would mean the name is ignored
    assert len(masks) > 1
    a = [RandomBottleneck(3, 0).make_gate(8, f"l{i}").mask().tolist() for i in range(6)]
    b = [RandomBottleneck(3, 1).make_gate(8, f"l{i}").mask().tolist() for i in range(6)]
    assert a != b


def test_random_without_names_uses_the_creation_order():
    one, two = RandomBottleneck(2, 5), RandomBottleneck(2, 5)
    assert [one.make_gate(6).mask().tolist() for _ in range(3)] == [two.make_gate(6).mask().tolist() for _ in range(3)]


factors = st.lists(st.floats(0.01, 10), min_size=6, max_size=6, unique=True)  # distinct: a unique top-k


@given(b_norms=factors, a_norms=factors, k=st.integers(1, 6))
def test_topk_norm_keeps_exactly_the_k_largest(b_norms, a_norms, k):
    est = TopKNormBottleneck(k=k, every=10)
    layer = single_layer(est.make_gate(6), d_out=6)
    with torch.no_grad():
        layer.lora_A.copy_(torch.eye(6, 8) * torch.tensor(a_norms)[:, None])  # ||A_j:|| = a_j
        layer.lora_B.copy_(torch.eye(6) * torch.tensor(b_norms))  # ||B_:j|| = b_j
    est.step({"a": layer}, 5)
    assert torch.equal(layer.gate.mask(), torch.ones(6))  # not due yet: all open
    est.step({"a": layer}, 10)
    score = torch.tensor(b_norms) * torch.tensor(a_norms)
    expected = torch.zeros(6)
    expected[score.topk(k).indices] = 1
    assert torch.equal(layer.gate.mask(), expected)


def test_topk_norm_skips_pruned_directions():
    est = TopKNormBottleneck(k=2, every=1)
    layer = single_layer(est.make_gate(4))
    with torch.no_grad():
        layer.lora_A.copy_(torch.eye(4, 8))
        layer.lora_B.copy_(torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0])))
    layer.gate.prune([0])
    est.step({"a": layer}, 1)
    assert layer.gate.mask().tolist() == [0.0, 1.0, 1.0, 0.0]


def test_filters_reject_bad_k_and_wrong_gates():
    with pytest.raises(ValueError, match="RandomBottleneck: k=5 exceeds the adapter rank r=4"):
        RandomBottleneck(k=5).make_gate(4)
    with pytest.raises(ValueError, match="TopKNormBottleneck: k=0 must be an integer >= 1"):
        TopKNormBottleneck(k=0)
    with pytest.raises(ValueError, match="'topk-norm' filter needs FixedMaskGate gates, but adapter 'q' has a IdentityGate"):
        TopKNormBottleneck(every=1).step({"q": single_layer(IdentityGate(4))}, 1)


def test_default_k_is_half_the_rank_and_reprs():
    assert RandomBottleneck().make_gate(8).mask().sum() == 4
    assert isinstance(TopKNormBottleneck().make_gate(8), FixedMaskGate)
    assert repr(RandomBottleneck(3, 7)) == "RandomBottleneck(k=3, seed=7)"
    assert repr(TopKNormBottleneck(2)) == "TopKNormBottleneck(k=2, every=50)"
