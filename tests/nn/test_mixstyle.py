"""MixStyle against an independent transcription of the official forward, and its ResNet insertion."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torchvision
from torch import Tensor, nn

from dabin.errors import DabinError
from dabin.nn.mixstyle import (
    DEFAULT_MIXSTYLE_LAYERS,
    MixStyle,
    insert_mixstyle,
    mixstyle_disabled,
    mixstyle_modules,
    set_mixstyle,
)

B, C, H, W = 8, 4, 5, 5


# --- Transcription of the official code ------------------------------------------------------------
# KaiyangZhou/mixstyle-release, reid/models/mixstyle.py, MixStyle.forward (identical in
# KaiyangZhou/Dassl.pytorch, dassl/modeling/ops/mixstyle.py), with lmda and perm passed in instead
# of drawn, and the detach made optional so the test can show that it matters.
def official_forward(x: Tensor, lmda: Tensor, perm: Tensor, eps: float = 1e-6, detach: bool = True) -> Tensor:
    mu = x.mean(dim=[2, 3], keepdim=True)
    var = x.var(dim=[2, 3], keepdim=True)
    sig = (var + eps).sqrt()
    if detach:
        mu, sig = mu.detach(), sig.detach()
    x_normed = (x - mu) / sig
    mu2, sig2 = mu[perm], sig[perm]
    mu_mix = mu * lmda + mu2 * (1 - lmda)
    sig_mix = sig * lmda + sig2 * (1 - lmda)
    return x_normed * sig_mix + mu_mix


# Same file and function, the mix == 'crossdomain' branch, with its two randperm draws passed in.
def official_crossdomain_perm(batch: int, shuffle_b: Tensor, shuffle_a: Tensor) -> Tensor:
    perm = torch.arange(batch - 1, -1, -1)  # inverse index
    perm_b, perm_a = perm.chunk(2)
    perm_b = perm_b[shuffle_b]
    perm_a = perm_a[shuffle_a]
    return torch.cat([perm_b, perm_a], 0)


def draws(mix: str, seed: int = 0, batch: int = B) -> tuple[Tensor, Tensor]:
    """``λ`` in (0, 1) of shape (B, 1, 1, 1), float64, and a permutation, from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    lmda = torch.rand(batch, 1, 1, 1, generator=g, dtype=torch.float64)
    if mix == "random":
        perm = torch.randperm(batch, generator=g)
    else:
        perm = official_crossdomain_perm(batch, torch.randperm(batch // 2, generator=g),
                                         torch.randperm(batch // 2, generator=g))
    return lmda, perm


def injected(monkeypatch: pytest.MonkeyPatch, module: MixStyle, lmda: Tensor, perm: Tensor) -> MixStyle:
    monkeypatch.setattr(module, "_lambda", lambda batch: lmda)
    monkeypatch.setattr(module, "_permutation", lambda batch: perm)
    return module


def random_batch(seed: int = 1, dtype: torch.dtype = torch.float64) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, H, W, generator=g, dtype=dtype)


def domain_sorted_batch(seed: int = 2) -> Tensor:
    """[domain A; domain B]: two halves with very different channel means and scales (styles)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    style_a = (torch.tensor([3.0, -2.0, 0.5, 1.0]), torch.tensor([2.0, 0.5, 1.0, 3.0]))
    style_b = (torch.tensor([-1.0, 4.0, -3.0, 0.0]), torch.tensor([0.3, 2.5, 0.7, 0.2]))
    for half, (mean, std) in zip((slice(0, B // 2), slice(B // 2, B)), (style_a, style_b)):
        x[half] = x[half] * std.view(1, C, 1, 1).double() + mean.view(1, C, 1, 1).double()
    return x


# --- Forward and gradient against the transcription --------------------------------------------------
@pytest.mark.parametrize("mix", ["random", "crossdomain"])
@pytest.mark.parametrize("batch_kind", ["random", "domain_sorted"])
def test_forward_matches_official(monkeypatch: pytest.MonkeyPatch, mix: str, batch_kind: str) -> None:
    x = random_batch() if batch_kind == "random" else domain_sorted_batch()
    lmda, perm = draws(mix)
    module = injected(monkeypatch, MixStyle(p=1.0, mix=mix), lmda, perm).train()  # type: ignore[arg-type]
    out = module(x)
    expected = official_forward(x, lmda, perm)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out, x, atol=1e-3)  # it did mix


def test_crossdomain_output_takes_the_style_of_the_other_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    # With λ = 0 each sample takes its partner's statistics outright: the A half must come out with
    # B's styles and vice versa (a same-domain partner would leave the half's style in place).
    x = domain_sorted_batch()
    _, perm = draws("crossdomain")
    lmda = torch.zeros(B, 1, 1, 1, dtype=torch.float64)
    out = injected(monkeypatch, MixStyle(p=1.0, mix="crossdomain"), lmda, perm).train()(x)
    torch.testing.assert_close(out.mean(dim=(2, 3)), x.mean(dim=(2, 3))[perm])
    # (up to ε: the output's std is σ̃·std(x)/sqrt(var(x) + ε))
    torch.testing.assert_close(out.std(dim=(2, 3)), x.std(dim=(2, 3))[perm], rtol=1e-4, atol=0)
    assert (perm[: B // 2] >= B // 2).all() and (perm[B // 2:] < B // 2).all()


@pytest.mark.parametrize("mix", ["random", "crossdomain"])
def test_gradient_matches_official_and_the_detach_matters(monkeypatch: pytest.MonkeyPatch, mix: str) -> None:
    lmda, perm = draws(mix, seed=3)
    module = injected(monkeypatch, MixStyle(p=1.0, mix=mix), lmda, perm).train()  # type: ignore[arg-type]
    grad_out = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def input_grad(fn: object) -> Tensor:
        x = domain_sorted_batch().requires_grad_()
        fn(x).backward(grad_out)  # type: ignore[operator]
        assert x.grad is not None
        return x.grad

    ours = input_grad(module)
    torch.testing.assert_close(ours, input_grad(lambda x: official_forward(x, lmda, perm)), rtol=1e-10, atol=1e-12)
    undetached = input_grad(lambda x: official_forward(x, lmda, perm, detach=False))
    assert (ours - undetached).abs().max() > 1e-2


def test_output_may_be_modified_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in a network (a ReLU(inplace=True) after the layer): the fused output is a plain tensor.
    lmda, perm = draws("random", seed=14)
    module = injected(monkeypatch, MixStyle(p=1.0), lmda, perm).train()
    grad_out = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    x, x_ref = domain_sorted_batch().requires_grad_(), domain_sorted_batch().requires_grad_()
    out = module(x).relu_()
    out.backward(grad_out)
    expected = official_forward(x_ref, lmda, perm).relu()
    expected.backward(grad_out)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("offset", [0.0, 1.0, 10.0])
def test_float32_statistics_within_the_documented_cancellation_error(offset: float) -> None:
    # Σx and Σx² in float32: the variance's relative error is up to ~5·eps_float32·(1 + μ²/σ²).
    x = torch.randn(16, 8, 14, 14, generator=torch.Generator().manual_seed(16)) + offset
    module = MixStyle()
    (mu32, sig32), (mu64, sig64) = module._statistics(x), module._statistics(x.double())
    assert mu32.dtype == sig32.dtype == torch.float32
    bound = 8 * torch.finfo(torch.float32).eps * (1 + offset**2)
    assert ((sig32.double() - sig64) / sig64).abs().max() < bound / 2
    torch.testing.assert_close(mu32.double(), mu64, rtol=1e-6, atol=1e-6)


def test_drawn_permutations_follow_the_official_construction() -> None:
    for batch in (2, 8, 32):
        torch.manual_seed(batch)
        drawn = MixStyle(mix="crossdomain")._permutation(batch)
        torch.manual_seed(batch)
        first = torch.randperm(batch // 2)
        official = official_crossdomain_perm(batch, first, torch.randperm(batch // 2))
        assert torch.equal(drawn, official)
        assert torch.equal(drawn.sort().values, torch.arange(batch))
        assert (drawn[: batch // 2] >= batch // 2).all() and (drawn[batch // 2:] < batch // 2).all()
    torch.manual_seed(5)
    drawn = MixStyle(mix="random")._permutation(8)
    torch.manual_seed(5)
    assert torch.equal(drawn, torch.randperm(8))


@pytest.mark.parametrize("mix", ["random", "crossdomain"])
def test_undrawn_forward_is_the_official_one_on_the_same_torch_stream(mix: str) -> None:
    # Our only extra torch draw is the Bernoulli one, first; after it come λ (Beta) and the
    # permutation(s) in the official order, so the official forward on that stream is reproduced.
    x = random_batch()
    torch.manual_seed(11)
    out = MixStyle(p=1.0, alpha=0.1, mix=mix).train()(x)  # type: ignore[arg-type]
    torch.manual_seed(11)
    torch.rand(())
    lmda = torch.distributions.Beta(0.1, 0.1).sample((B, 1, 1, 1))
    if mix == "random":
        perm = torch.randperm(B)
    else:
        first = torch.randperm(B // 2)
        perm = official_crossdomain_perm(B, first, torch.randperm(B // 2))
    torch.testing.assert_close(out, official_forward(x, lmda.double(), perm), rtol=1e-12, atol=1e-12)


def test_gradcheck_with_fixed_draws_and_frozen_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    x0 = random_batch(seed=6)[:4, :2, :3, :3].clone()
    lmda, perm = draws("random", seed=7, batch=4)
    module = injected(monkeypatch, MixStyle(p=1.0), lmda, perm).train()
    # Finite differences move μ and σ, which the backward (detached, as the official) ignores: the
    # unfrozen layer must fail gradcheck, and pass once its statistics are constants.
    assert not torch.autograd.gradcheck(module, (x0.clone().requires_grad_(),), raise_exception=False)
    stats = module._statistics(x0)
    monkeypatch.setattr(module, "_statistics", lambda x: stats)
    assert torch.autograd.gradcheck(module, (x0.clone().requires_grad_(),))


# --- When it mixes -------------------------------------------------------------------------------------
def test_identity_in_eval_mode_and_when_deactivated() -> None:
    x = random_batch(dtype=torch.float32)
    module = MixStyle(p=1.0)
    assert module.eval()(x) is x
    module.train().deactivate()
    assert module(x) is x
    module.activate()
    assert not torch.allclose(module(x), x)
    assert MixStyle(p=1.0, active=False).train()(x) is x


def test_p0_never_mixes_p1_always_mixes_and_p_is_the_rate() -> None:
    x = random_batch(dtype=torch.float32)
    never, always, half = MixStyle(p=0.0).train(), MixStyle(p=1.0).train(), MixStyle(p=0.5).train()
    torch.manual_seed(0)
    assert all(never(x) is x for _ in range(200))
    assert all(not torch.allclose(always(x), x, atol=1e-3) for _ in range(50))
    mixed = sum(half(x) is not x for _ in range(400))
    assert 160 < mixed < 240  # Binomial(400, 0.5): mean 200, sd 10
    torch.manual_seed(3)
    first = [half(x) is x for _ in range(50)]
    torch.manual_seed(3)
    assert [half(x) is x for _ in range(50)] == first  # torch.manual_seed makes the draws reproducible


def test_bad_input_and_arguments_raise_value_errors() -> None:
    module = MixStyle(p=0.0, mix="crossdomain").train()
    with pytest.raises(ValueError, match="even batch.*got batch size 7"):
        module(torch.randn(7, C, H, W))  # even though p=0: a bad batch fails every time
    assert isinstance(DabinError("x"), ValueError)
    with pytest.raises(ValueError, match="at least 2 values"):
        MixStyle(p=1.0).train()(torch.randn(4, C, 1, 1))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        MixStyle(p=1.0).train()(torch.randn(4, C, 5))
    assert module.eval()(torch.randn(7, C, 1, 1)).shape == (7, C, 1, 1)  # eval: identity, no check
    for kwargs in ({"p": 1.5}, {"alpha": 0.0}, {"eps": -1.0}, {"mix": "domain"}):
        with pytest.raises(ValueError):
            MixStyle(**kwargs)  # type: ignore[arg-type]


# --- Precision, memory format, compile ---------------------------------------------------------------
def test_channels_last_and_bf16_autocast_match_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    lmda, perm = draws("random", seed=8)
    module = injected(monkeypatch, MixStyle(p=1.0), lmda.float(), perm).train()
    x = random_batch(seed=9, dtype=torch.float32) * 3 + 1
    reference = module(x)

    out_cl = module(x.to(memory_format=torch.channels_last))
    assert out_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_cl, reference, rtol=1e-5, atol=1e-5)

    xb = x.bfloat16()
    assert module._statistics(xb)[0].dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_bf = module(xb.to(memory_format=torch.channels_last))
    assert out_bf.dtype == torch.bfloat16
    torch.testing.assert_close(out_bf.float(), reference, rtol=2e-2, atol=5e-2)
    # float32 arithmetic on the bf16 input, rounded once at the end: no bf16 intermediate.
    torch.testing.assert_close(out_bf, module(xb.float()).bfloat16(), rtol=0, atol=0)


def test_torch_compile_matches_eager_with_at_most_the_documented_break(monkeypatch: pytest.MonkeyPatch) -> None:
    lmda, perm = draws("crossdomain", seed=10)
    module = injected(monkeypatch, MixStyle(p=1.0, mix="crossdomain"), lmda.float(), perm).train()
    x = random_batch(seed=12, dtype=torch.float32)
    eager_x, compiled_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    eager = module(eager_x)
    torch._dynamo.reset()
    compiled = torch.compile(module, backend="aot_eager")(compiled_x)
    torch.testing.assert_close(compiled, eager)
    eager.sum().backward()
    compiled.sum().backward()
    torch.testing.assert_close(compiled_x.grad, eager_x.grad)
    explanation = torch._dynamo.explain(MixStyle(p=1.0).train())(x)
    assert explanation.graph_break_count <= 1  # the Bernoulli `.item()`
    torch._dynamo.reset()


# --- Insertion into a ResNet --------------------------------------------------------------------------
def resnet_pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    plain = torchvision.models.resnet18(num_classes=10)
    return plain, insert_mixstyle(copy.deepcopy(plain), p=1.0)


def images() -> Tensor:
    return torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(13))


def test_insert_keeps_state_dict_and_eval_output() -> None:
    plain, mixed = resnet_pair()
    assert list(mixed.state_dict().keys()) == list(plain.state_dict().keys())
    mixed.load_state_dict(plain.state_dict(), strict=True)
    plain.load_state_dict(mixed.state_dict(), strict=True)
    x = images()
    with torch.no_grad():
        assert torch.equal(mixed.eval()(x), plain.eval()(x))


def test_insert_mixes_in_training_after_the_official_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_MIXSTYLE_LAYERS == ("layer1", "layer2", "layer3")
    plain, mixed = resnet_pair()
    plain_bn, mixed_bn = copy.deepcopy(plain).train(), copy.deepcopy(mixed).train()
    x = images()
    with torch.no_grad():
        assert not torch.allclose(mixed.train()(x), plain.train()(x), atol=1e-4)
        set_mixstyle(mixed_bn, active=False)  # the hooks are the only change
        torch.testing.assert_close(mixed_bn(x), plain_bn(x))
    seen: list[int] = []
    original = MixStyle.forward

    def recording(self: MixStyle, x: Tensor) -> Tensor:
        seen.append(x.shape[1])
        return original(self, x)

    monkeypatch.setattr(MixStyle, "forward", recording)
    with torch.no_grad():
        mixed(x)
    assert seen == [64, 128, 256]  # after layer1, layer2, layer3 of resnet18, in that order


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_insert_survives_deepcopy_and_pickle(how: str) -> None:
    _, mixed = resnet_pair()
    clone = copy.deepcopy(mixed) if how == "deepcopy" else pickle.loads(pickle.dumps(mixed))
    for name in DEFAULT_MIXSTYLE_LAYERS:
        (hook,) = getattr(clone, name)._forward_hooks.values()
        assert hook.__self__ is clone.mixstyle[name]  # the clone's own layer, not the original's
    x = images()
    with torch.no_grad():
        torch.manual_seed(1)
        expected = mixed.train()(x)
        torch.manual_seed(1)
        assert torch.equal(clone.train()(x), expected)
        assert torch.equal(clone.eval()(x), mixed.eval()(x))
    set_mixstyle(clone, active=False)  # switching the clone's layers does not touch the original
    assert all(layer.active for layer in mixstyle_modules(mixed))


def test_insert_rejects_missing_children_and_double_insertion() -> None:
    model = torchvision.models.resnet18(num_classes=10)
    with pytest.raises(ValueError, match="no child module 'layer9'"):
        insert_mixstyle(model, after=("layer1", "layer9"))
    with pytest.raises(ValueError, match="repeated"):
        insert_mixstyle(model, after=("layer1", "layer1"))
    assert not hasattr(model, "mixstyle") and not model.layer1._forward_hooks  # nothing half-done
    insert_mixstyle(model, after="layer2", mix="crossdomain")
    assert list(model.mixstyle.keys()) == ["layer2"] and model.mixstyle["layer2"].mix == "crossdomain"
    with pytest.raises(ValueError, match="already"):
        insert_mixstyle(model)


def test_set_mixstyle_and_mixstyle_disabled() -> None:
    model = insert_mixstyle(torchvision.models.resnet18(num_classes=10))
    layers = mixstyle_modules(model)
    assert len(layers) == 3 and set_mixstyle(model, mix="crossdomain") == 3
    assert all(layer.mix == "crossdomain" for layer in layers)
    with pytest.raises(ValueError, match="unknown MixStyle mix"):
        set_mixstyle(model, mix="other")  # type: ignore[arg-type]
    layers[1].deactivate()
    with mixstyle_disabled(model):
        assert not any(layer.active for layer in layers)
    assert [layer.active for layer in layers] == [True, False, True]  # each layer's own state back


@pytest.mark.parametrize("order", ["insert_then_convert", "convert_then_insert"])
def test_combines_with_bin_in_either_order(order: str) -> None:
    # convert_norm swaps only the norm leaves, so the hooked stages (and their hooks) stay.
    from dabin.nn import convert_norm

    plain, _ = resnet_pair()
    reference = convert_norm(copy.deepcopy(plain), "bin")
    if order == "insert_then_convert":
        model = convert_norm(insert_mixstyle(copy.deepcopy(plain), p=1.0), "bin")
    else:
        model = insert_mixstyle(convert_norm(copy.deepcopy(plain), "bin"), p=1.0)
    assert list(model.state_dict().keys()) == list(reference.state_dict().keys())
    assert len(mixstyle_modules(model)) == 3
    x = images()
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference.eval()(x))
        assert not torch.allclose(model.train()(x), reference.train()(x), atol=1e-4)
