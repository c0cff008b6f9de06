"""Trees of tiny generated images, including a replica of Office-Home with its real names and counts."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.officehome import OFFICE_HOME_DOMAINS, office_home_list


def image_bytes(seed: int, size: tuple[int, int] = (12, 10), fmt: str = "JPEG") -> bytes:
    """An encoded noise image (small, so writing thousands of files stays fast)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def write_files(root: Path, relative_paths: list[str], seed: int = 0) -> None:
    """Write one tiny JPEG at each path (a few distinct contents, reused: the bytes do not matter)."""
    contents = [image_bytes(seed + i) for i in range(4)]
    for i, relative in enumerate(relative_paths):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contents[i % len(contents)])


def make_tree(root: Path, spec: Mapping[str, Mapping[str, int]], ext: str = ".jpg") -> Path:
    """Build ``root/<domain>/<class>/<n>.<ext>`` with ``spec[domain][class]`` images each."""
    fmt = "JPEG" if ext in (".jpg", ".jpeg") else "PNG"
    for d, (domain, classes) in enumerate(spec.items()):
        for c, (class_name, count) in enumerate(classes.items()):
            folder = root / domain / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / f"{i:03d}{ext}").write_bytes(image_bytes(1000 * d + 50 * c + i, fmt=fmt))
    return root


def office_home_paths(classes: int | None = None, folder: str = "Real World") -> list[str]:
    """Relative paths of the official lists, optionally only the first ``classes`` classes."""
    paths = []
    for domain in OFFICE_HOME_DOMAINS:
        for path, label in office_home_list(domain):
            if classes is None or label < classes:
                paths.append(path.replace("Real World/", f"{folder}/", 1))
    return paths


@pytest.fixture(scope="session")
def office_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Full replica: 15,588 tiny JPEGs at the official paths (read-only for tests)."""
    root = tmp_path_factory.mktemp("officehome") / "OfficeHomeDataset_10072016"
    write_files(root, office_home_paths())
    return root


@pytest.fixture(scope="session")
def office_home_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official names of the first 4 classes of every domain (``Real_World`` spelling)."""
    root = tmp_path_factory.mktemp("officehome_small")
    write_files(root, office_home_paths(classes=4, folder="Real_World"))
    return root


@pytest.fixture()
def small_tree(tmp_path: Path) -> Path:
    """A 3-domain, 3-class tree that a test may modify."""
    spec = {d: {"bird": 6, "cat": 5, "dog": 7} for d in ("photo", "sketch", "cartoon")}
    return make_tree(tmp_path / "tree", spec)
