"""Suite-wide fixtures: the embedded dataset is rendered once, into a private cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def embedded_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``$DABIN_CACHE`` at a session folder, so tests never write to ``~/.cache``."""
    folder = tmp_path_factory.mktemp("dabin_cache_all")
    previous = os.environ.get("DABIN_CACHE")
    os.environ["DABIN_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("DABIN_CACHE", None)
    else:
        os.environ["DABIN_CACHE"] = previous
