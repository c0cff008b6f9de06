"""Weights files laid out exactly like torchvision's published ones, for tests and rehearsals.

ImageNet weights cannot be downloaded everywhere dabin is tested, and a state dict that dabin (or
today's torchvision) saves is not what users bring: the published ``resnet18-f37072fd.pth`` was
saved in 2017, before BatchNorm had its ``num_batches_tracked`` buffer, with the legacy (pre-zip)
``torch.save`` format and without the ``_metadata`` that newer state dicts carry. The key set and
shapes of the published file are recorded, in the file's order, in ``<file name>.keys`` beside
this module; :func:`write_published_weights` writes random values under exactly that layout.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["PUBLISHED_FILES", "published_layout", "write_published_weights"]

#: Backbone name -> file name of torchvision's published ImageNet weights whose layout is recorded.
PUBLISHED_FILES: dict[str, str] = {"resnet18": "resnet18-f37072fd.pth"}

_HERE = Path(__file__).resolve().parent


def published_layout(arch: str = "resnet18") -> list[tuple[str, tuple[int, ...]]]:
    """``(key, shape)`` of every entry of the published weights file of ``arch``, in file order."""
    if arch not in PUBLISHED_FILES:
        raise ValueError(f"no published layout recorded for {arch!r}; known: {', '.join(PUBLISHED_FILES)}")
    manifest = _HERE / (Path(PUBLISHED_FILES[arch]).stem + ".keys")
    layout = []
    for line in manifest.read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            layout.append((key, tuple(int(s) for s in shape.split("x"))))
    return layout


def _value(key: str, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    # Values of the right kind per entry (not just noise): positive variances, γ near 1, small β,
    # He-scaled convolutions, so a network built on them computes finite, non-degenerate outputs.
    if key.endswith("running_var"):
        return torch.rand(shape, generator=generator) + 0.5
    if key.endswith("running_mean") or key.endswith(".bias"):
        return 0.1 * torch.randn(shape, generator=generator)
    if len(shape) == 1:  # a norm layer's γ
        return 1.0 + 0.1 * torch.randn(shape, generator=generator)
    fan_in = int(torch.tensor(shape[1:]).prod())
    return torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5


def write_published_weights(path: str | os.PathLike[str], arch: str = "resnet18", seed: int = 0) -> Path:
    """Write random weights under the exact layout of torchvision's published ``arch`` file.

    The file is an ``OrderedDict`` of float32 tensors without ``_metadata`` and without
    ``num_batches_tracked`` keys, saved in the legacy (non-zip) serialization, as in 2017.

    Args:
        path: Where to write (parent folders are created).
        arch: Backbone name (a key of :data:`PUBLISHED_FILES`).
        seed: Seed of the random values.

    Returns:
        The path written.
    """
    generator = torch.Generator().manual_seed(seed)
    state: collections.OrderedDict[str, Tensor] = collections.OrderedDict(
        (key, _value(key, shape, generator)) for key, shape in published_layout(arch))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target, _use_new_zipfile_serialization=False)
    return target
