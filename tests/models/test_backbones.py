"""Backbones by name: torchvision's ResNet family with the norm switch, published weights, class paths."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from dabin import DabinError
from dabin.models import RESNETS, build_backbone
from dabin.nn import BatchInstanceNorm2d, gate_parameters


class TinyNet(nn.Module):
    """A model of the user's own, with BatchNorm and an ``fc`` classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.fc = nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


@pytest.fixture(scope="module")
def resnet34_2017_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    """A ResNet-34 file laid out as torchvision's 2017 files are: no num_batches_tracked, legacy format."""
    torch.manual_seed(0)
    reference = torchvision.models.resnet34()
    for module in reference.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = collections.OrderedDict((k, v) for k, v in reference.state_dict().items()
                                    if not k.endswith("num_batches_tracked"))
    path = tmp_path_factory.mktemp("weights") / "resnet34-b627a593.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path, reference.eval()


@pytest.mark.parametrize("norm", ["bn", "bin"])
def test_published_resnet34_file_equals_torchvision(resnet34_2017_file, norm):
    path, reference = resnet34_2017_file
    model = build_backbone("resnet34", norm=norm, weights=path).eval()
    assert model.num_features == 512 and isinstance(model.fc, nn.Identity)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = torch.flatten(reference.avgpool(reference.layer4(reference.layer3(reference.layer2(
            reference.layer1(reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))))))), 1)
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
    if norm == "bin":
        assert len(gate_parameters(model)) == 36 and all(bool((g == 1).all()) for g in gate_parameters(model))


def test_every_family_member_builds_with_bin_and_names_its_features():
    widths = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "wide_resnet50_2": 2048, "resnext50_32x4d": 2048}
    for name, features in widths.items():
        model = build_backbone(name, norm="bin")
        assert model.num_features == features, name
        assert any(isinstance(m, BatchInstanceNorm2d) for m in model.modules())
        assert not any(type(m) is nn.BatchNorm2d for m in model.modules())  # every norm layer is BIN
    assert set(widths) <= set(RESNETS)


def test_small_input_stem_for_any_resnet():
    model = build_backbone("resnet50", norm="bn", small_input=True).eval()
    assert model.conv1.kernel_size == (3, 3) and isinstance(model.maxpool, nn.Identity)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 2048)


def test_class_path_backbone_is_converted_and_measured():
    model = build_backbone(f"{__name__}.TinyNet", norm="bin")
    assert model.num_features == 6 and isinstance(model.fc, nn.Identity)
    assert isinstance(model.body[1], BatchInstanceNorm2d)
    assert model(torch.randn(3, 3, 16, 16)).shape == (3, 6)


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("resnet9000", {}, "cannot be imported|unknown backbone"),
    ("no_dots", {}, "unknown backbone 'no_dots'; expected one of resnet18"),
    ("resnet50", {"width": 8}, "width=8 is only for resnet18"),
    ("resnet50", {"weights": "IMAGENET1K_V9"}, "unknown weights 'IMAGENET1K_V9'; expected null, a file path or one of "
                                               "IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT"),
    ("torch.nn.Module", {"weights": "IMAGENET1K_V1"}, "takes a weights file"),
    ("collections.OrderedDict", {}, "is not a torch.nn.Module"),
])
def test_bad_backbones_are_one_line(name, kwargs, message):
    with pytest.raises(DabinError, match=message):
        build_backbone(name, **kwargs)


def test_wrong_architecture_file_is_refused(resnet34_2017_file):
    path, _ = resnet34_2017_file
    with pytest.raises(DabinError, match=r"do not fit a resnet50: .*missing keys"):
        build_backbone("resnet50", weights=path)


def test_dann_on_another_backbone(tmp_path):
    from dabin.modules import TransferModule

    model = TransferModule(num_classes=5, backbone="resnet34", norm="bin")
    assert model.bottleneck[0].in_features == 512
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 5)
