"""The digit recipes' LeNet and DTN: shapes, widths, parameter counts of the published layers, the norm switch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dabin import DabinError
from dabin.models import build_backbone
from dabin.models.small import DTN, LeNet
from dabin.nn import BatchInstanceNorm2d, SwitchNorm2d, gate_parameters


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out  # weights and bias (both recipes keep the bias)


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _bn(channels: int) -> int:
    return 2 * channels  # affine weight and bias


#: The layer sizes of CDAN's pytorch/network.py (LeNet, DTN) and tllib's models/digits.py, without the
#: 10-way classifier, counted from the reference code rather than from dabin's modules.
LENET_PARAMS_1CH = _conv(1, 20, 5) + _conv(20, 50, 5) + _linear(50 * 4 * 4, 500)
DTN_PARAMS = (_conv(3, 64, 5) + _bn(64) + _conv(64, 128, 5) + _bn(128) + _conv(128, 256, 5) + _bn(256)
              + _linear(256 * 4 * 4, 512) + _bn(512))


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_are_the_published_architectures() -> None:
    assert LENET_PARAMS_1CH == 426_070 and DTN_PARAMS == 3_128_832
    assert _count(LeNet(in_channels=1)) == LENET_PARAMS_1CH
    # Three input channels (gray replicated) add the first convolution's extra kernels only.
    assert _count(build_backbone("lenet", norm="bn")) == LENET_PARAMS_1CH + 2 * 20 * 5 * 5
    assert _count(build_backbone("dtn", norm="bn")) == DTN_PARAMS == _count(DTN())


@pytest.mark.parametrize("name, side, features", [("lenet", 28, 500), ("dtn", 32, 512)])
def test_features_shape_and_backward(name: str, side: int, features: int) -> None:
    torch.manual_seed(0)
    model = build_backbone(name, norm="bn")
    assert model.num_features == features
    images = torch.randn(4, 3, side, side, requires_grad=True)
    out = model(images)
    assert out.shape == (4, features)
    out.square().mean().backward()
    assert images.grad is not None and all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images), model(images))  # dropout off in evaluation


def test_dtn_norm_injection_replaces_the_batchnorm2d_layers() -> None:
    model = build_backbone("dtn", norm="bin")
    bins = [m for m in model.modules() if isinstance(m, BatchInstanceNorm2d)]
    assert [m.num_features for m in bins] == [64, 128, 256]
    assert not any(type(m) is nn.BatchNorm2d for m in model.modules())
    # The BatchNorm1d after the linear layer stays BatchNorm (no spatial positions to take IN statistics over).
    assert [type(m) for m in model.modules() if isinstance(m, nn.BatchNorm1d)] == [nn.BatchNorm1d]
    assert sum(p.numel() for p in gate_parameters(model)) == 64 + 128 + 256
    assert _count(model) == DTN_PARAMS + 64 + 128 + 256
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    switchable = build_backbone("dtn", norm="switchable")
    assert sum(isinstance(m, SwitchNorm2d) for m in switchable.modules()) == 3


def test_refusals_are_one_line() -> None:
    with pytest.raises(DabinError, match="lenet has no normalization layer .* norm 'bin' would change nothing"):
        build_backbone("lenet", norm="bin")
    with pytest.raises(DabinError, match="norm 'ibn_a' is defined on a ResNet's stages"):
        build_backbone("dtn", norm="ibn_a")
    with pytest.raises(DabinError, match="norm 'mixstyle' is defined on a ResNet's stages"):
        build_backbone("dtn", norm="mixstyle")
    with pytest.raises(DabinError, match="small_input changes a ResNet's stem"):
        build_backbone("dtn", norm="bn", small_input=True)
    with pytest.raises(DabinError, match="width=16 is only for resnet18"):
        build_backbone("lenet", norm="bn", width=16)
    with pytest.raises(DabinError, match="has no published weights"):
        build_backbone("dtn", norm="bn", weights="IMAGENET1K_V1")
    with pytest.raises(DabinError, match=r"lenet takes \(B, C, 28, 28\) images.*got \(2, 3, 32, 32\).*image_size 28"):
        build_backbone("lenet", norm="bn")(torch.randn(2, 3, 32, 32))


def test_a_state_dict_file_loads(tmp_path) -> None:
    torch.manual_seed(1)
    trained = build_backbone("dtn", norm="bn")
    torch.save(trained.state_dict(), tmp_path / "dtn.pth")
    loaded = build_backbone("dtn", norm="bn", weights=tmp_path / "dtn.pth")
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()))
