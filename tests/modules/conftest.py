"""Tiny data for the training tasks: an Office-Home-shaped tree and a CLI runner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dabin.cli import main

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo"
OFFICEHOME = REPO / "experiments" / "officehome"
#: Flags that make any config tiny: few steps, small images and batches, no workers.
TINY = ["--data.image_size", "32", "--data.batch_size", "4", "--data.num_workers", "0"]


@pytest.fixture(scope="session")
def office_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Office-Home's four domains (``Real_World`` spelling), 3 classes, 6 tiny images each.

    Each class has its own colour, so a few steps can learn something.
    """
    root = tmp_path_factory.mktemp("office") / "OfficeHomeDataset_10072016"
    rng = np.random.default_rng(0)
    for d, domain in enumerate(("Art", "Clipart", "Product", "Real_World")):
        for c, name in enumerate(("Alarm_Clock", "Backpack", "Batteries")):
            folder = root / domain / name
            folder.mkdir(parents=True)
            for i in range(6):
                base = np.zeros((20, 24, 3)) + 60 * c + 20 * d
                pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:05d}.jpg")
    return root


def run(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``dabin ARGS``; returns the exit status and what went to stderr."""
    capsys.readouterr()
    status = main(list(args))
    return status, capsys.readouterr().err
