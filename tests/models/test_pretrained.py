"""``weights: embedded``: the demo's pretrained backbone (dabin.models.pretrained)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dabin.errors import DabinError
from dabin.models import build_backbone, resnet18
from dabin.models import pretrained
from dabin.models.pretrained import EMBEDDED_WEIGHTS, PretrainRecipe, embedded_weights, pretrain

TINY = PretrainRecipe(images=300, held_out=100, steps=60, batch_size=32, threads=1)


def test_pretraining_is_deterministic_and_learns() -> None:
    state, record = pretrain(TINY, seed=1)
    again, _ = pretrain(TINY, seed=1)
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)
    # 60 steps on 300 images do not make a classifier (the real recipe's 400 x 128 images do: its
    # held-out accuracy is in pretraining.json), but the training loss must fall from chance, ln 10.
    first, last = record["train_loss"]  # type: ignore[misc]
    assert first > 2.2 and last < first - 0.1
    assert state["fc.weight"].shape == (10, 64) and state["conv1.weight"].shape == (8, 3, 3, 3)


def test_pretraining_starts_from_the_builders_network() -> None:
    """The architecture pretrain builds is resnet18's, initialised with the same draws (so old caches stay valid)."""
    from dabin.models.architecture import ResNet18
    from dabin.nn import norm_layer

    torch.manual_seed(5)
    built = resnet18(norm="bn", num_classes=10, **pretrained.EMBEDDED_ARCH)  # type: ignore[arg-type]
    torch.manual_seed(5)
    bare = ResNet18(norm=norm_layer("bn"), **pretrained.EMBEDDED_ARCH)  # type: ignore[arg-type]
    bare.fc = torch.nn.Linear(bare.num_features, 10)
    mine, theirs = built.state_dict(), bare.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_made_once_cached_and_loaded_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DABIN_CACHE", str(tmp_path))
    path = embedded_weights(tmp_path, recipe=TINY)
    record = json.loads((path.parent / "pretraining.json").read_text())
    assert record["recipe"]["steps"] == 60 and record["architecture"]["width"] == 8
    state = torch.load(path, weights_only=True)

    def no_second_pretraining(*args: object) -> None:
        raise AssertionError("pretrained again although cached")

    monkeypatch.setattr(pretrained, "pretrain", no_second_pretraining)
    assert embedded_weights(tmp_path) == path
    # By name, into a BIN backbone of the demo's shape: every tensor loaded, the stem included
    # (same 3x3 shape, so no "not loading conv1" warning), gates at 1.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = resnet18(norm="bin", weights=EMBEDDED_WEIGHTS, width=8, small_input=True, num_classes=0)
    loaded = model.state_dict()
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    assert all(torch.all(v == 1) for k, v in loaded.items() if k.endswith(".gate"))
    backbone = build_backbone("resnet18", norm="bn", weights=EMBEDDED_WEIGHTS, width=8, small_input=True)
    assert torch.equal(backbone.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


def test_another_architecture_is_told_what_the_embedded_weights_fit() -> None:
    # The session cache holds the (tiny-recipe) embedded file, see tests/conftest.py.
    with pytest.raises(DabinError, match="embedded weights are a small-input ResNet-18 of width 8"), \
            pytest.warns(UserWarning, match="conv1"):
        resnet18(norm="bn", weights=EMBEDDED_WEIGHTS, width=16, small_input=True)
    with pytest.raises(DabinError, match="width 64"):
        resnet18(norm="bn", weights="IMAGENET1K_V1", width=8)


def test_a_cache_that_cannot_be_written_is_one_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be\n")
    with pytest.raises(DabinError, match="not-a-folder") as caught:
        embedded_weights(blocker, recipe=TINY)
    assert "\n" not in str(caught.value)
    assert blocker.read_text() == "a file where the cache folder should be\n"
