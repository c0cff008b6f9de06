"""``--model.weights embedded``: the demo's pretrained backbone, an offline stand-in for ImageNet weights.

The paper fine-tunes ImageNet features (Section 4.2); the demo cannot download them, and from
scratch its small network has no features for DANN's reversed gradient to align, so adaptation
does not adapt. This module makes, on first use, weights for the demo's backbone (ResNet-18 of
width 8 with the small-input stem, BatchNorm, as torchvision's published ResNets are BN networks)
pretrained on a synthetic source that is none of the embedded domains:
:func:`datamodules.fontdigits.render_font_digits` (printed digits in matplotlib's fonts over
random gradients and clutter; the embedded domains are scikit-learn's handwritten digits).

Recipe (:data:`RECIPE`): 16,000 rendered images plus 2,000 held out, SGD with Nesterov momentum
0.9, weight decay 5e-4, batch 128, a one-cycle learning rate peaking at 0.2, 400 steps, on at most
two threads; about a minute on a 2-core CPU. The held-out accuracy and the time are recorded in
``pretraining.json`` beside the weights.

The file is cached under ``<cache>/embedded-backbone-v<version>-seed<seed>/`` (the cache of the
embedded dataset, :func:`datamodules.cache.default_cache_dir`), written to a temporary name and
renamed, and made under a file lock, so concurrent runs of a sweep wait for one maker instead of
each making it. Deterministic for its seed on a given machine (same thread count, same FreeType).
It holds a plain state dict in torchvision's ResNet layout with a 10-way ``fc``, loaded like any
published file (the classifier is not used).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dabin.io import WriteError, atomic_open
from dabin.models.architecture import ResNet18
from dabin.nn import norm_layer
from datamodules.cache import default_cache_dir
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["EMBEDDED_ARCH", "EMBEDDED_WEIGHTS", "RECIPE", "PretrainRecipe", "embedded_weights", "pretrain"]

#: The weights name that selects these weights wherever a weights name is accepted.
EMBEDDED_WEIGHTS = "embedded"
#: The architecture they fit, as :func:`dabin.models.resnet18` arguments.
EMBEDDED_ARCH: dict[str, object] = {"width": 8, "small_input": True}
#: Bump when the recipe or the rendering changes, so old caches are not reused.
_VERSION = 1
_FILE = "resnet18-w8-small.pth"
_RECORD = "pretraining.json"


@dataclasses.dataclass(frozen=True)
class PretrainRecipe:
    """How the embedded backbone is pretrained (the module docstring gives the values).

    Attributes:
        images: Training images rendered.
        held_out: Further images rendered to measure accuracy.
        steps: SGD steps.
        batch_size: Images per step.
        max_lr: Peak of the one-cycle schedule.
        weight_decay: SGD weight decay.
        threads: Intra-op threads (fixed, so the result does not depend on the machine's core count).
    """

    images: int = 16_000
    held_out: int = 2_000
    steps: int = 400
    batch_size: int = 128
    max_lr: float = 0.2
    weight_decay: float = 5e-4
    threads: int = 2


RECIPE = PretrainRecipe()


def _normalize(images: torch.Tensor) -> torch.Tensor:
    # The data modules' input: ImageNet mean/std on 0..1 values (datamodules.transforms).
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pretrain(recipe: PretrainRecipe = RECIPE, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Train the demo backbone on font digits.

    Args:
        recipe: The recipe.
        seed: Seeds the rendering, the initialisation and the batches.

    Returns:
        ``(state_dict, record)``: the weights (torchvision layout, 10-way ``fc``) and what was
        measured (held-out accuracy in %, seconds, the recipe).
    """
    from datamodules.fontdigits import render_font_digits  # rendering needs matplotlib's fonts

    started = time.monotonic()
    images, labels = render_font_digits(recipe.images + recipe.held_out, seed)
    inputs = _normalize(torch.from_numpy(images))
    targets = torch.from_numpy(labels)
    train_x, train_y = inputs[:recipe.images], targets[:recipe.images]
    test_x, test_y = inputs[recipe.images:], targets[recipe.images:]
    generator = torch.Generator().manual_seed(seed)
    with _threads(recipe.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # What resnet18(norm="bn", num_classes=10, **EMBEDDED_ARCH) builds, with the same draws.
        model = ResNet18(norm=norm_layer("bn"), **EMBEDDED_ARCH)  # type: ignore[arg-type]
        model.fc = nn.Linear(model.num_features, 10)
        optimizer = torch.optim.SGD(model.parameters(), lr=recipe.max_lr, momentum=0.9, nesterov=True,
                                    weight_decay=recipe.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.max_lr, total_steps=recipe.steps,
                                                       pct_start=0.2)
        model.train()
        losses = []
        for _ in range(recipe.steps):
            batch = torch.randint(0, recipe.images, (recipe.batch_size,), generator=generator)
            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
        tenth = max(1, recipe.steps // 10)
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in zip(test_x.split(500), test_y.split(500)))
    record: dict[str, object] = {
        "version": _VERSION, "seed": seed, "source": "datamodules.fontdigits.render_font_digits",
        "held_out_accuracy": round(100.0 * correct / max(1, recipe.held_out), 2),
        # Mean training loss of the first and the last tenth of the steps (ln 10 = 2.30 is chance).
        "train_loss": [round(sum(part) / len(part), 4) for part in (losses[:tenth], losses[-tenth:])],
        "seconds": round(time.monotonic() - started, 1), "recipe": dataclasses.asdict(recipe),
        "architecture": {"name": "resnet18", "norm": "bn", **EMBEDDED_ARCH},
    }
    return model.state_dict(), record


def embedded_weights(cache_dir: str | os.PathLike[str] | None = None, seed: int = 0,
                     recipe: PretrainRecipe = RECIPE) -> Path:
    """The embedded weights file, made first (:func:`pretrain`) if it is not cached yet.

    Args:
        cache_dir: Cache folder; None means :func:`~datamodules.cache.default_cache_dir`.
        seed: Pretraining seed.
        recipe: The recipe used if the file must be made (tests use a tiny one); the cached file's
            own recipe is in ``pretraining.json``.

    Returns:
        Path of the state dict file.
    """
    parent = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = parent / f"embedded-backbone-v{_VERSION}-seed{seed}"
    path = folder / _FILE
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / ".lock", "w")
    except OSError as error:
        raise WriteError(folder, error) from None
    with lock:
        # One maker at a time: the others wait here and find the file made.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.is_file():
            print(f"dabin: pretraining the embedded backbone on font digits (first use only, about a minute on "
                  f"2 cores) into {folder}", file=sys.stderr, flush=True)
            state, record = pretrain(recipe, seed)
            with atomic_open(folder / _RECORD) as handle:
                handle.write(json.dumps(record, indent=1) + "\n")
            with atomic_open(path, "wb") as handle:
                torch.save(state, handle)
    return path
