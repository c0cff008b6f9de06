"""IBN (IBN-Net-a's layer) against the official code written out in float64, and the IBN-Net ResNet-18 layouts.

The official code is github.com/XingangPan/IBN-Net at commit d167338: ``ibnnet/modules.py`` (class
``IBN``) and ``ibnnet/resnet_ibn.py`` (``BasicBlock_IBN``, ``ResNet_IBN``, ``resnet18_ibn_a``,
``resnet18_ibn_b``). The expected layouts below are read from that code.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from dabin import DabinError
from dabin.models.architecture import IBNBasicBlock, ResNet18
from dabin.nn import norm_layer
from dabin.nn.bin import BatchInstanceNorm2d
from dabin.nn.ibn import IBN, official_ibn_state_dict

EPS = 1e-5

# resnet18_ibn_a: ibn_cfg=('a', 'a', 'a', None); BasicBlock_IBN with ibn == 'a' has bn1 = IBN(planes), and
# _make_layer passes 'a' to every block of a stage (both blocks of layer1..layer3, none in layer4).
IBN_A_LAYERS = ["layer1.0.bn1", "layer1.1.bn1", "layer2.0.bn1", "layer2.1.bn1", "layer3.0.bn1", "layer3.1.bn1"]
# resnet18_ibn_b: ibn_cfg=('b', 'b', None, None); the stem's bn1 is InstanceNorm2d(64, affine=True); _make_layer
# gives block 0 `None if ibn == 'b'` and block i >= 1 `None if (ibn == 'b' and i < blocks-1)`: with two blocks
# per stage only block 1 of layer1 and layer2 has IN = InstanceNorm2d(planes, affine=True) after the addition.
IBN_B_INSTANCE_NORMS = ["bn1", "layer1.1.IN", "layer2.1.IN"]
# Loading a BN ResNet-18 (torchvision layout) into IBN-b: the post-addition IN layers are new ...
IBN_B_MISSING = ["layer1.1.IN.weight", "layer1.1.IN.bias", "layer2.1.IN.weight", "layer2.1.IN.bias"]
# ... and the stem IN keeps no running statistics.
IBN_B_UNUSED = ["bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"]


def official_ibn_forward(x, half, weight, bias, running_mean, running_var, training, momentum, eps=EPS):
    """XingangPan/IBN-Net, ibnnet/modules.py, class IBN, forward, written out functionally.

    ``split = torch.split(x, self.half, 1)``; ``self.IN = nn.InstanceNorm2d(half, affine=True)`` (instance
    statistics always: track_running_stats=False) on ``split[0]``; ``self.BN = nn.BatchNorm2d(planes - half)`` on
    ``split[1]``; ``torch.cat((out1, out2), 1)``. ``weight``/``bias``/running stats are (IN part, BN part) pairs.
    """
    split = torch.split(x, half, 1)
    out1 = F.instance_norm(split[0].contiguous(), None, None, weight[0], bias[0], True, 0.0, eps)
    out2 = F.batch_norm(split[1].contiguous(), running_mean, running_var, weight[1], bias[1], training, momentum, eps)
    return torch.cat((out1, out2), 1)


class OfficialIBN(nn.Module):
    """XingangPan/IBN-Net, ibnnet/modules.py, class IBN: the official module, for its state dict keys."""

    def __init__(self, planes: int, ratio: float = 0.5) -> None:
        super().__init__()
        self.half = int(planes * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x):
        split = torch.split(x, self.half, 1)
        return torch.cat((self.IN(split[0].contiguous()), self.BN(split[1].contiguous())), 1)


def _randomized(layer: nn.Module, seed: int = 1) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in layer.state_dict().items():
            if name.endswith("weight") or name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=g, dtype=tensor.dtype) + 0.5)
            elif name.endswith("bias") or name.endswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=g, dtype=tensor.dtype))
    return layer


# ---------------------------------------------------------------- the layer against the official forward


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("training", [True, False])
def test_matches_official_forward_gradients_and_running_stats_in_float64(training, momentum):
    c, half = 6, 3
    layer = _randomized(IBN(c, momentum=momentum, dtype=torch.float64)).train(training)
    w = layer.weight.detach().clone().requires_grad_()
    b = layer.bias.detach().clone().requires_grad_()
    rm, rv = layer.running_mean[half:].clone(), layer.running_var[half:].clone()
    unused = layer.running_mean[:half].clone(), layer.running_var[:half].clone()
    torch.manual_seed(0)
    for step in range(2):
        x = (torch.randn(4, c, 5, 6, dtype=torch.float64) * 3 + 2).requires_grad_()
        y = layer(x)
        # BatchNorm's momentum=None is the cumulative average: factor 1 / num_batches_tracked.
        factor = 1.0 / (step + 1) if momentum is None else momentum
        ref = official_ibn_forward(x, half, (w[:half], w[half:]), (b[:half], b[half:]), rm, rv, training, factor)
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
        grad = torch.randn_like(y)
        got = torch.autograd.grad(y, (x, layer.weight, layer.bias), grad)
        want = torch.autograd.grad(ref, (x, w, b), grad)
        for a, e in zip(got, want):
            torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(layer.running_mean[half:], rm, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(layer.running_var[half:], rv, rtol=1e-12, atol=1e-12)
        # The IN channels' running statistics are kept but never updated.
        assert torch.equal(layer.running_mean[:half], unused[0]) and torch.equal(layer.running_var[:half], unused[1])
    assert int(layer.num_batches_tracked) == (2 if training else 0)
    if training:  # the statistics did move (the comparison above is not of two untouched buffers)
        assert not torch.allclose(layer.running_mean[half:], _randomized(IBN(c, dtype=torch.float64)).running_mean[half:])


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_float64(training):
    layer = _randomized(IBN(4, dtype=torch.float64)).train(training)
    x = torch.randn(3, 4, 3, 4, dtype=torch.float64, requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_()
    b = layer.bias.detach().clone().requires_grad_()

    def run(x, w, b):
        return torch.func.functional_call(layer, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(run, (x, w, b))


def test_in_half_ignores_running_stats_and_bn_half_uses_them_in_eval():
    layer = _randomized(IBN(6, dtype=torch.float64)).eval()
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64) * 2 + 1
    y = layer(x)
    # IN part: each (n, c) map is normalized by its own statistics, then weight/bias.
    z = (y[:, :3] - layer.bias[:3, None, None]) / layer.weight[:3, None, None]
    torch.testing.assert_close(z.mean((2, 3)), torch.zeros(2, 3, dtype=torch.float64), atol=1e-10, rtol=0)
    with torch.no_grad():
        layer.running_mean[:3].add_(5.0)
        layer.running_mean[3:].add_(5.0)
    y2 = layer(x)
    torch.testing.assert_close(y2[:, :3], y[:, :3], rtol=0, atol=0)
    assert not torch.allclose(y2[:, 3:], y[:, 3:])


def test_without_running_stats_eval_uses_batch_statistics():
    layer = _randomized(IBN(6, track_running_stats=False, dtype=torch.float64)).eval()
    assert layer.running_mean is None
    x = torch.randn(4, 6, 3, 3, dtype=torch.float64)
    w, b = layer.weight, layer.bias
    ref = official_ibn_forward(x, 3, (w[:3], w[3:]), (b[:3], b[3:]), None, None, True, 0.0)
    torch.testing.assert_close(layer(x), ref, rtol=1e-12, atol=1e-12)


def test_odd_channels_and_other_ratios_split_at_int_c_times_ratio():
    # The official torch.split(x, half) breaks when C - half > half (here: chunks of 2, 2, 1).
    with pytest.raises(RuntimeError):
        OfficialIBN(5)(torch.randn(2, 5, 3, 3))
    for c, ratio, half in [(5, 0.5, 2), (8, 0.25, 2), (6, 0.0, 0), (6, 1.0, 6), (7, 0.7, 4)]:
        layer = _randomized(IBN(c, ratio=ratio, dtype=torch.float64))
        assert layer.half == half
        x = torch.randn(3, c, 4, 3, dtype=torch.float64)
        rm, rv = layer.running_mean.clone(), layer.running_var.clone()
        parts = torch.split(x, [half, c - half], 1)
        w, b = layer.weight, layer.bias
        want = []
        if half > 0:
            want.append(F.instance_norm(parts[0], None, None, w[:half], b[:half], True, 0.0, EPS))
        if half < c:
            want.append(F.batch_norm(parts[1], rm[half:], rv[half:], w[half:], b[half:], True, 0.1, EPS))
        torch.testing.assert_close(layer(x), torch.cat(want, 1), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(layer.running_mean, rm, rtol=1e-12, atol=1e-12)  # rm[half:] moved, rm[:half] not
        torch.testing.assert_close(layer.running_var, rv, rtol=1e-12, atol=1e-12)
    with pytest.raises(DabinError, match="ratio must lie in"):
        IBN(4, ratio=1.5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_input_keeps_float32_statistics(dtype):
    layer = _randomized(IBN(6))
    reference = _randomized(IBN(6))
    x = (torch.randn(4, 6, 5, 5) * 2 + 1).to(dtype)
    y = layer(x)
    assert y.dtype == dtype
    assert layer.running_mean.dtype == torch.float32 and layer.weight.dtype == torch.float32
    want = reference(x.float())
    torch.testing.assert_close(y.float(), want, rtol=0, atol=2e-2)
    torch.testing.assert_close(layer.running_mean, reference.running_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.running_var, reference.running_var, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_channels_last_gives_the_same_numbers_in_the_same_layout(training):
    x = torch.randn(3, 6, 5, 4, dtype=torch.float64)
    outs, grads = [], []
    for memory_format in (torch.contiguous_format, torch.channels_last):
        layer = _randomized(IBN(6, dtype=torch.float64)).train(training)
        xi = x.clone().contiguous(memory_format=memory_format).requires_grad_()
        y = layer(xi)
        assert y.is_contiguous(memory_format=memory_format)
        out = F.relu(y, inplace=True)  # as in a block: the output may be modified in place
        out.backward(torch.ones_like(out))
        outs.append(out.detach())
        grads.append((xi.grad, layer.weight.grad, layer.bias.grad, layer.running_mean.clone()))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_in_channels_running_stats_are_never_read_even_when_not_finite(training):
    layer = _randomized(IBN(6, dtype=torch.float64)).train(training)
    reference = _randomized(IBN(6, dtype=torch.float64)).train(training)
    with torch.no_grad():
        layer.running_mean[:3] = float("nan")
        layer.running_var[:3] = float("-inf")
    x = torch.randn(4, 6, 3, 5, dtype=torch.float64) * 2 + 1
    torch.testing.assert_close(layer(x), reference(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.running_mean[3:], reference.running_mean[3:], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.running_var[3:], reference.running_var[3:], rtol=1e-12, atol=1e-12)
    assert layer.running_mean[:3].isnan().all() and (layer.running_var[:3] == float("-inf")).all()


def test_one_pixel_maps_are_refused_as_instance_norm_refuses_them():
    for layer in (IBN(4), IBN(4, ratio=1.0)):
        with pytest.raises(ValueError, match="more than 1 spatial element"):
            layer(torch.randn(3, 4, 1, 1))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        IBN(4, ratio=0.0)(torch.randn(1, 4, 1, 1))


@pytest.mark.parametrize("ratio", [3.0, 10.0])
def test_float32_statistics_within_the_documented_cancellation_error(ratio):
    # Σx and Σx² in float32: the variance's relative error is up to ~5·eps_float32·(1 + μ²/σ²).
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 8, 14, 14, generator=g) + ratio
    y32, y64 = IBN(8)(x), IBN(8, dtype=torch.float64)(x.double())
    bound = 8 * torch.finfo(torch.float32).eps * (1 + ratio**2) * y64.abs().max()
    assert (y32.double() - y64).abs().max() < bound


# ---------------------------------------------------------------- state dicts


def test_batchnorm_state_dict_loads_strictly():
    bn = _randomized(nn.BatchNorm2d(6))
    bn.num_batches_tracked.fill_(7)
    layer = IBN(6)
    assert isinstance(layer, nn.BatchNorm2d)
    layer.load_state_dict(bn.state_dict(), strict=True)
    for key, value in bn.state_dict().items():
        assert torch.equal(layer.state_dict()[key], value), key
    # The BN channels compute what the BatchNorm did.
    x = torch.randn(2, 6, 4, 4)
    torch.testing.assert_close(layer.eval()(x)[:, 3:], bn.eval()(x)[:, 3:])
    # ratio 0: the BatchNorm itself.
    all_bn = IBN(6, ratio=0.0)
    all_bn.load_state_dict(bn.state_dict(), strict=True)
    torch.testing.assert_close(all_bn.eval()(x), bn(x), rtol=0, atol=0)


def test_official_state_dict_maps_loads_strictly_and_round_trips():
    official = _randomized(OfficialIBN(6).double())
    official.BN.num_batches_tracked.fill_(11)
    net = nn.ModuleDict({"bn1": official, "IN": nn.InstanceNorm2d(6, affine=True)})  # IBN-b's post-add IN key
    state = net.state_dict()
    assert "bn1.IN.weight" in state and "bn1.BN.running_mean" in state and "IN.weight" in state
    mapped = official_ibn_state_dict(state)
    assert list(mapped) == ["bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                            "bn1.num_batches_tracked", "IN.weight", "IN.bias"]
    assert mapped["IN.weight"] is state["IN.weight"]  # IBN-b's IN is not an IBN: passed through
    ours = nn.ModuleDict({"bn1": IBN(6, dtype=torch.float64), "IN": nn.InstanceNorm2d(6, affine=True)})
    ours.load_state_dict(mapped, strict=True)
    # Round trip: our tensors, split at half, are the official ones; the IN channels' unread stats are 0 and 1.
    layer = ours["bn1"]
    assert torch.equal(layer.weight[:3], official.IN.weight) and torch.equal(layer.weight[3:], official.BN.weight)
    assert torch.equal(layer.bias[:3], official.IN.bias) and torch.equal(layer.bias[3:], official.BN.bias)
    assert torch.equal(layer.running_mean[3:], official.BN.running_mean)
    assert torch.equal(layer.running_var[3:], official.BN.running_var)
    assert torch.equal(layer.running_mean[:3], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(layer.running_var[:3], torch.ones(3, dtype=torch.float64))
    assert int(layer.num_batches_tracked) == 11
    # ... and they compute the official module's outputs, in eval and in training (running stats too).
    x = torch.randn(4, 6, 5, 5, dtype=torch.float64)
    for training in (False, True):
        official.train(training)
        layer.train(training)
        torch.testing.assert_close(layer(x), official(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.running_mean[3:], official.BN.running_mean, rtol=1e-12, atol=1e-12)
    # A top-level official IBN (no prefix) maps too.
    assert set(official_ibn_state_dict(official.state_dict())) == set(IBN(6).state_dict())


def test_official_state_dict_with_a_missing_part_is_refused():
    state = OfficialIBN(4).state_dict()
    del state["BN.running_var"]
    with pytest.raises(DabinError, match="lacks BN.running_var"):
        official_ibn_state_dict(state)


# ---------------------------------------------------------------- the ResNet-18 layouts


def _norms(model: nn.Module) -> dict[str, type]:
    return {name: type(m) for name, m in model.named_modules()
            if isinstance(m, (nn.modules.batchnorm._NormBase, nn.InstanceNorm2d))}


def test_ibn_a_layout():
    model = ResNet18(8, True, nn.BatchNorm2d, ibn="a")
    norms = _norms(model)
    assert [name for name, kind in norms.items() if kind is IBN] == IBN_A_LAYERS
    assert len(norms) == 20 and all(kind is nn.BatchNorm2d for name, kind in norms.items() if name not in IBN_A_LAYERS)
    for name in IBN_A_LAYERS:
        layer = model.get_submodule(name)
        assert layer.half == layer.num_features // 2 and torch.equal(layer.weight, torch.ones(layer.num_features))
        assert torch.equal(layer.bias, torch.zeros(layer.num_features))
    assert [layer.num_features for name in IBN_A_LAYERS for layer in [model.get_submodule(name)]] == [8, 8, 16, 16, 32, 32]
    # The second factory builds only the IBN layers; the injected norm builds all the others.
    bin_model = ResNet18(8, True, norm_layer("bin"), ibn="a", ibn_norm=functools.partial(IBN, ratio=0.25))
    kinds = _norms(bin_model)
    assert [n for n, k in kinds.items() if k is IBN] == IBN_A_LAYERS
    assert all(k is BatchInstanceNorm2d for n, k in kinds.items() if n not in IBN_A_LAYERS)
    assert bin_model.layer1[0].bn1.half == 2


def test_ibn_b_layout_and_where_its_in_acts():
    model = ResNet18(8, True, nn.BatchNorm2d, ibn="b")
    norms = _norms(model)
    assert [name for name, kind in norms.items() if kind is nn.InstanceNorm2d] == IBN_B_INSTANCE_NORMS
    assert len(norms) == 22 and all(kind is nn.BatchNorm2d for n, kind in norms.items() if n not in IBN_B_INSTANCE_NORMS)
    assert [model.get_submodule(n).num_features for n in IBN_B_INSTANCE_NORMS] == [8, 8, 16]
    for name in IBN_B_INSTANCE_NORMS:
        layer = model.get_submodule(name)
        assert layer.affine and not layer.track_running_stats
        assert torch.equal(layer.weight, torch.ones_like(layer.weight)) and torch.equal(layer.bias, torch.zeros_like(layer.bias))
    blocks = {name: type(m) for name, m in model.named_modules() if isinstance(m, torchvision.models.resnet.BasicBlock)}
    assert [n for n, k in blocks.items() if k is IBNBasicBlock] == ["layer1.1", "layer2.1"]
    assert all(getattr(model.get_submodule(n), "IN", None) is None for n in blocks if n not in ("layer1.1", "layer2.1"))
    # IN normalizes bn2's output plus the identity, and the ReLU comes after it.
    seen = {}
    block = model.layer1[1]
    block.register_forward_hook(lambda m, args, out: seen.update(block_in=args[0].clone(), block_out=out.clone()))
    block.bn2.register_forward_hook(lambda m, args, out: seen.update(bn2=out.clone()))
    block.IN.register_forward_hook(lambda m, args, out: seen.update(in_in=args[0].clone(), in_out=out.clone()))
    with torch.no_grad():
        _randomized(block.IN)
        model.eval()(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(seen["in_in"], seen["bn2"] + seen["block_in"])
    torch.testing.assert_close(seen["block_out"], F.relu(seen["in_out"]))


@pytest.mark.parametrize("small_input", [True, False])
def test_no_ibn_is_the_old_network(small_input):
    # The old way: torchvision's resnet18 (width 64), its stem swapped as small_input does.
    torch.manual_seed(0)
    old = torchvision.models.resnet18()
    if small_input:
        old.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        old.maxpool = nn.Identity()
        nn.init.kaiming_normal_(old.conv1.weight, mode="fan_out", nonlinearity="relu")
    torch.manual_seed(0)
    new = ResNet18(64, small_input, nn.BatchNorm2d)
    assert isinstance(new, torchvision.models.ResNet)
    # (ResNet18 registers the stem's max-pool before bn1: the same modules, in another order.)
    assert {n: type(m) for n, m in new.named_modules() if n} == {n: type(m) for n, m in old.named_modules() if n}
    old_state = old.state_dict()
    assert {k: v.shape for k, v in new.state_dict().items()} == {k: v.shape for k, v in old_state.items()}
    if not small_input:  # the same draws in the same order: the same initial weights
        for k, v in new.state_dict().items():
            assert torch.equal(v, old_state[k]), k


def test_ibn_layouts_draw_the_same_convolutions():
    weights = {}
    for ibn in (None, "a", "b"):
        torch.manual_seed(3)
        model = ResNet18(8, False, nn.BatchNorm2d, ibn=ibn)
        weights[ibn] = {k: v for k, v in model.state_dict().items()
                        if "conv" in k or "downsample.0" in k or k.startswith("fc.")}
    assert len(weights[None]) == 20 + 2  # 17 block/stem convs, 3 downsample convs, fc weight and bias
    for ibn in ("a", "b"):
        assert weights[ibn].keys() == weights[None].keys()
        assert all(torch.equal(weights[ibn][k], weights[None][k]) for k in weights[None])


def test_bn_state_dict_loads_into_ibn_a_strictly_and_into_ibn_b_missing_only_its_in():
    torch.manual_seed(0)
    bn = ResNet18(8, False, nn.BatchNorm2d)  # torchvision's layout (test above), at width 8
    for m in bn.modules():
        if isinstance(m, nn.BatchNorm2d):
            _randomized(m)
    state = bn.state_dict()
    ibn_a = ResNet18(8, False, nn.BatchNorm2d, ibn="a")
    ibn_a.load_state_dict(state, strict=True)
    assert torch.equal(ibn_a.layer2[1].bn1.weight, bn.layer2[1].bn1.weight)
    ibn_b = ResNet18(8, False, nn.BatchNorm2d, ibn="b")
    result = ibn_b.load_state_dict(state, strict=False)
    assert result.missing_keys == IBN_B_MISSING
    assert result.unexpected_keys == IBN_B_UNUSED
    assert set(ibn_b.state_dict()) == (set(state) - set(IBN_B_UNUSED)) | set(IBN_B_MISSING)
    kept = {k: v for k, v in state.items() if k not in IBN_B_UNUSED}
    again = ResNet18(8, False, nn.BatchNorm2d, ibn="b").load_state_dict(kept, strict=False)
    assert again.missing_keys == IBN_B_MISSING and again.unexpected_keys == []
    assert torch.equal(ibn_b.bn1.weight, bn.bn1.weight)  # the stem IN takes the BN's affine
    # torchvision's own ResNet-18 at width 64 gives the same key lists.
    tv = torchvision.models.resnet18().state_dict()
    ResNet18(64, False, nn.BatchNorm2d, ibn="a").load_state_dict(tv, strict=True)
    result = ResNet18(64, False, nn.BatchNorm2d, ibn="b").load_state_dict(tv, strict=False)
    assert result.missing_keys == IBN_B_MISSING and result.unexpected_keys == IBN_B_UNUSED


@pytest.mark.parametrize("small_input", [True, False])
@pytest.mark.parametrize("ibn", ["a", "b"])
def test_forward_at_width_8_and_32_px_in_train_and_eval(ibn, small_input):
    torch.manual_seed(0)
    model = ResNet18(8, small_input, nn.BatchNorm2d, ibn=ibn)
    x = torch.randn(4, 3, 32, 32)
    out = model.train()(x)
    assert out.shape == (4, 1000) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with torch.no_grad():
        a, b = model.eval()(x), model(x[:2])
    assert torch.isfinite(a).all()
    torch.testing.assert_close(b, a[:2], rtol=1e-4, atol=1e-5)  # eval: each image on its own


def test_unknown_ibn_is_refused():
    with pytest.raises(DabinError, match="unknown ibn 'c'"):
        ResNet18(8, True, nn.BatchNorm2d, ibn="c")  # type: ignore[arg-type]
