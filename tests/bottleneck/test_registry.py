"""Resolving strategies by name, class or instance; registering a new one."""
import pytest

from structlora.bottleneck import (
    BOTTLENECKS, Bottleneck, HSICBottleneck, TopKNormBottleneck, VIBBottleneck, register_bottleneck,
    resolve_bottleneck,
)

REGISTERED = ["hsic", "l0", "none", "random", "topk-norm", "vib"]


def test_registered_names():
    assert BOTTLENECKS.choices() == REGISTERED
    for name in REGISTERED:
        assert resolve_bottleneck(name).name == name


@pytest.mark.parametrize("query", ["hsic", "HSIC", "HSICBottleneck", "hsic_bottleneck", HSICBottleneck])
def test_resolve_hsic(query):
    assert type(resolve_bottleneck(query, gamma=2.0)) is HSICBottleneck


@pytest.mark.parametrize("query", ["topk-norm", "topk_norm", "TopK_Norm", "TopKNorm", "TopKNormBottleneck"])
def test_resolve_is_case_hyphen_underscore_insensitive(query):
    assert type(resolve_bottleneck(query)) is TopKNormBottleneck


def test_resolve_instance_passes_through():
    est = VIBBottleneck(threshold=2.0)
    assert resolve_bottleneck(est) is est
    with pytest.raises(ValueError, match=r"got a VIBBottleneck instance and keyword arguments \['threshold'\]"):
        resolve_bottleneck(est, threshold=1.0)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown bottleneck 'ib'; choose one of: hsic, l0, none, random, topk-norm, vib"):
        resolve_bottleneck("ib")
    with pytest.raises(ValueError, match="cannot resolve a bottleneck from <class 'int'>"):
        resolve_bottleneck(int)


def test_unknown_keyword_names_the_accepted_ones():
    with pytest.raises(ValueError, match=r"HSICBottleneck does not accept \['beta'\].*\(gamma: 'float' = 1.0"):
        resolve_bottleneck("hsic", beta=1.0)


def test_a_new_estimator_is_one_class_and_one_registration():
    try:
        @register_bottleneck("my-ib")
        class MyBottleneck(Bottleneck):
            pass

        assert type(resolve_bottleneck("MY_IB")) is MyBottleneck and MyBottleneck.name == "my-ib"
        with pytest.raises(ValueError, match="a bottleneck named 'my-ib' is already registered"):
            register_bottleneck("my_ib")(MyBottleneck)
    finally:
        BOTTLENECKS.classes.pop("my-ib", None)
