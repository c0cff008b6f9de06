from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from dabin import DabinError
from dabin.models import resnet18
from dabin.nn import BatchInstanceNorm2d, gate_parameters


@pytest.fixture(scope="module")
def bn_state_file(tmp_path_factory):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    return path, reference


def test_same_modules_and_keys_as_torchvision():
    ours = resnet18(norm="bn")
    theirs = torchvision.models.resnet18()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert isinstance(ours, torchvision.models.ResNet)


@pytest.mark.parametrize("norm", ["bn", "bin"])
def test_loads_plain_bn_state_dict_and_matches_its_outputs(bn_state_file, norm):
    path, reference = bn_state_file
    model = resnet18(norm=norm, weights=path).eval()
    reference.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)
    if norm == "bin":
        assert len(gate_parameters(model)) == 20 and all(bool((g == 1).all()) for g in gate_parameters(model))


def test_features_only_and_new_head(bn_state_file):
    path, reference = bn_state_file
    features = resnet18(norm="bin", weights=path, num_classes=0).eval()
    assert isinstance(features.fc, nn.Identity) and features.num_features == 512
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference.eval()
        pooled = torch.flatten(reference.avgpool(reference.layer4(reference.layer3(reference.layer2(
            reference.layer1(reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))))))), 1)
        torch.testing.assert_close(features(x), pooled, rtol=1e-4, atol=1e-4)
    assert resnet18(num_classes=65, weights=path).fc.out_features == 65


def test_fixed_gate_norms_and_width_and_small_stem():
    model = resnet18(norm="in", width=8, small_input=True, num_classes=10)
    layers = [m for m in model.modules() if isinstance(m, BatchInstanceNorm2d)]
    assert len(layers) == 20 and all(not m.learn_gate and float(m.gate.max()) == 0 for m in layers)
    assert model.num_features == 64
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    # the small stem keeps 4x4 maps at the last stage for 32-px input
    assert model.layer4(model.layer3(model.layer2(model.layer1(model.conv1(torch.randn(1, 3, 32, 32)))))).shape[-1] == 4


def test_small_stem_skips_pretrained_conv1_with_a_warning(bn_state_file):
    path, reference = bn_state_file
    with pytest.warns(UserWarning, match="conv1.weight"):
        model = resnet18(norm="bin", weights=path, small_input=True)
    torch.testing.assert_close(model.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)


def test_bin_checkpoint_with_gates_round_trips(tmp_path):
    model = resnet18(norm="bin")
    with torch.no_grad():
        model.bn1.gate.fill_(0.25)
    path = tmp_path / "bin.pt"
    # a Lightning-style wrapper with a prefix is accepted
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    again = resnet18(norm="bin", weights=path)
    assert torch.equal(again.bn1.gate.detach(), torch.full((64,), 0.25))
    as_in = resnet18(norm="in", weights=path)  # the learned gates do not apply to a fixed-gate model
    assert float(as_in.bn1.gate.max()) == 0.0
    # A file of another width is refused by its shapes (a file may hold any width: the embedded
    # weights are 8 wide); a torchvision name needs width 64 (tests/models/test_pretrained.py).
    with pytest.raises(DabinError, match="keys of another shape"):
        resnet18(norm="bin", width=8, weights=path)


def test_bad_weights_are_one_line_errors(tmp_path):
    with pytest.raises(DabinError, match=r"weights file not found: '/nonexistent/r18.pth'"):
        resnet18(weights="/nonexistent/r18.pth")
    with pytest.raises(DabinError, match=r"unknown weights 'IMAGENET_V9'; expected null, a file path or one of"):
        resnet18(weights="IMAGENET_V9")
    wrong = tmp_path / "wrong.pth"
    torch.save(torchvision.models.resnet34().state_dict(), wrong)
    with pytest.raises(DabinError, match=r"do not fit a ResNet-18: .*unexpected keys \(e.g. layer1.2"):
        resnet18(weights=wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DabinError, match="cannot read weights file"):
        resnet18(weights=garbage)
    with pytest.raises(DabinError, match="unknown norm 'batch'"):
        resnet18(norm="batch")  # type: ignore[arg-type]


def test_offline_torchvision_name_says_how_to_pass_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(DabinError, match=r"cannot fetch torchvision weights .*--model.weights /path/to/resnet18-f37072fd.pth"):
        resnet18(weights="IMAGENET1K_V1")


def test_weights_from_a_dabin_checkpoint(tmp_path) -> None:
    """A trained DANN's Lightning checkpoint serves as backbone weights (its heads and classes are ignored)."""
    import torch

    from dabin.models import resnet18
    from dabin.modules import TransferModule

    trained = TransferModule(num_classes=7, norm="bin")
    with torch.no_grad():
        trained.backbone.layer1[0].bn1.gate.fill_(0.25)
    torch.save({"state_dict": trained.state_dict(), "epoch": 3}, tmp_path / "dann.ckpt")
    model = resnet18(norm="bin", weights=tmp_path / "dann.ckpt", num_classes=65)
    assert torch.all(model.layer1[0].bn1.gate == 0.25)
    assert torch.equal(model.conv1.weight, trained.backbone.conv1.weight)
    assert model.fc.out_features == 65


# -- torchvision's published weights, as distributed ------------------------------------------------


@pytest.fixture(scope="module")
def published_file(tmp_path_factory):
    """A file laid out exactly like ``resnet18-f37072fd.pth`` (random values)."""
    from dabin.testing.weights import write_published_weights

    return write_published_weights(tmp_path_factory.mktemp("published") / "resnet18-f37072fd.pth", seed=1)


def test_published_fixture_has_the_published_layout(published_file):
    import collections
    import zipfile

    from dabin.testing.weights import published_layout

    assert not zipfile.is_zipfile(published_file)  # legacy torch.save format, as in 2017
    state = torch.load(published_file, weights_only=True)
    assert isinstance(state, collections.OrderedDict) and not hasattr(state, "_metadata")
    assert [(k, tuple(v.shape)) for k, v in state.items()] == published_layout("resnet18")
    assert len(state) == 102 and not any("num_batches_tracked" in k for k in state)
    # The recorded layout is torchvision's ResNet-18 without the buffer added in torch 0.4.1.
    theirs = {k: tuple(v.shape) for k, v in torchvision.models.resnet18().state_dict().items()
              if not k.endswith("num_batches_tracked")}
    assert dict(published_layout("resnet18")) == theirs


def _torchvision_with(path):
    reference = torchvision.models.resnet18()
    reference.load_state_dict(torch.load(path, weights_only=True))  # torchvision's own loading
    return reference


@pytest.mark.parametrize("norm", ["bn", "bin"])
@pytest.mark.parametrize("train", [False, True])
def test_published_file_loads_and_equals_torchvision(published_file, norm, train):
    model = resnet18(norm=norm, weights=published_file).train(train)
    reference = _torchvision_with(published_file).train(train)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)
    assert all(int(m.num_batches_tracked) == (1 if train else 0)
               for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    if norm == "bin":
        assert all(bool((g == 1).all()) for g in gate_parameters(model))


def test_published_file_by_torchvision_name_through_its_cache(published_file, tmp_path, monkeypatch):
    """Online, torchvision fetches the same file into $TORCH_HOME; dabin loads what it returns."""
    import shutil

    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    shutil.copy(published_file, cache / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = resnet18(norm="bin", weights="IMAGENET1K_V1", num_classes=0).eval()
    reference = _torchvision_with(published_file).eval()
    reference.fc = nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)


def test_strict_check_is_kept_for_everything_else(published_file, tmp_path):
    state = torch.load(published_file, weights_only=True)
    partial = dict(state)
    partial["bn1.num_batches_tracked"] = torch.tensor(5)  # some counters but not all: not a published layout
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(DabinError, match=r"19 missing keys \(e.g. layer1.0.bn1.num_batches_tracked"):
        resnet18(weights=tmp_path / "partial.pth")
    no_conv = {k: v for k, v in state.items() if k != "layer2.0.conv1.weight"}
    torch.save(no_conv, tmp_path / "no_conv.pth")
    with pytest.raises(DabinError, match=r"1 missing keys \(e.g. layer2.0.conv1.weight\)"):
        resnet18(weights=tmp_path / "no_conv.pth")
