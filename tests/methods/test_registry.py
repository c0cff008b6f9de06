"""Every registered method builds (or is None) and returns a finite scalar loss on random inputs."""

from __future__ import annotations

import inspect
import math
import typing

import pytest
import torch

from dabin.errors import DabinError
from dabin.methods import METHODS, AdaptationLoss, CDANELoss, CDANLoss, StepOutputs, build_method, method_names

EXPECTED = ("source_only", "dann", "adabn", "cdan", "cdan_e", "mcc", "mdd", "dan", "bnm")


def test_names() -> None:
    from dabin.methods.names import TRANSFER_METHODS

    assert method_names() == EXPECTED == TRANSFER_METHODS  # the torch-free list the sweep reads
    assert set(METHODS) == set(EXPECTED)
    assert METHODS["source_only"] is None and METHODS["adabn"] is None
    assert METHODS["cdan"] is CDANLoss and METHODS["cdan_e"] is CDANELoss


@pytest.mark.parametrize("name", EXPECTED)
@pytest.mark.parametrize(("features_dim", "num_classes"), [(16, 5), (256, 65)])
def test_every_method_gives_a_finite_scalar(name: str, features_dim: int, num_classes: int) -> None:
    torch.manual_seed(0)
    loss_fn = build_method(name, features_dim, num_classes)
    if METHODS[name] is None:
        assert loss_fn is None
        return
    assert isinstance(loss_fn, AdaptationLoss) and type(loss_fn) is METHODS[name]
    assert (loss_fn.features_dim, loss_fn.num_classes) == (features_dim, num_classes)
    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, requires_grad=True)

    out = StepOutputs(leaf(6, features_dim), leaf(5, features_dim), leaf(6, num_classes), leaf(5, num_classes), 0.4)
    loss, logs = loss_fn(out)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    grads = [t.grad for t in (out.features_s, out.features_t, out.logits_s, out.logits_t) if t.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    for key, value in logs.items():
        assert isinstance(key, str)
        assert math.isfinite(float(value)) and (not isinstance(value, torch.Tensor) or value.numel() == 1)


def test_options_pass_through_and_errors() -> None:
    mdd = build_method("mdd", 8, 3, margin=2.0)
    assert mdd is not None and mdd.margin == 2.0
    assert build_method("cdan_e", 8, 3).entropy and not build_method("cdan", 8, 3).entropy
    with pytest.raises(DabinError, match="unknown adaptation method"):
        build_method("coral", 8, 3)
    with pytest.raises(DabinError):
        build_method("source_only", 8, 3, margin=1.0)
    with pytest.raises(TypeError):
        build_method("dann", 8, 3, margin=1.0)


@pytest.mark.parametrize("name", [n for n in EXPECTED if METHODS[n] is not None])
def test_constructors_are_fully_typed_with_keyword_options(name: str) -> None:
    cls = METHODS[name]
    hints = typing.get_type_hints(cls.__init__)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert [p.name for p in params[:2]] == ["features_dim", "num_classes"]
    for param in params:
        assert param.name in hints, f"{name}: {param.name} has no type hint"
    for param in params[2:]:
        assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is not inspect.Parameter.empty
    assert cls.__doc__ and "Args:" in cls.__doc__


def test_every_method_names_itself_as_the_registry_does() -> None:
    """Runs record a loss by its own name; a subclass of a registered method is a method of its own."""
    for name, cls in METHODS.items():
        if cls is not None:
            assert cls.registry_name == name and cls(8, 3).method_name == name
    assert CDANLoss(8, 3, entropy=True).method_name == "cdan_e"  # what rebuilds it

    class Reweighted(CDANELoss):
        pass

    assert Reweighted.registry_name is None and CDANELoss.registry_name == "cdan_e"
    assert AdaptationLoss(8, 3).method_name == "dabin.methods.base.AdaptationLoss"


def test_registration_runs_one_way() -> None:
    """The base and the methods know nothing of the registry; it imports them."""
    import subprocess
    import sys

    code = ("import sys; import dabin.methods.base, dabin.methods.dann, dabin.methods.cdan, dabin.methods.mdd; "
            "print(sorted(m for m in sys.modules if m.startswith('dabin.methods.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "dabin.methods.registry" not in result.stdout and "dabin.methods.adversarial" in result.stdout
