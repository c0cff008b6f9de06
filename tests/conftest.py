"""Suite-wide fixtures: the embedded dataset is rendered once, into a private cache.

The demo configs use ``weights: embedded`` (:mod:`dabin.models.pretrained`), which pretrains for
about a minute on first use. The session cache gets that file made by the real code with a tiny
recipe (:data:`TINY_RECIPE`, a second), so tests that run the demo configs do not spend the
minute; tests of the pretraining itself use their own caches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dabin.models.pretrained import PretrainRecipe, embedded_weights

#: Pretraining small enough for the suite: the file has the real layout, not the real quality.
TINY_RECIPE = PretrainRecipe(images=200, held_out=50, steps=3, batch_size=16, threads=1)


@pytest.fixture(scope="session", autouse=True)
def embedded_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``$DABIN_CACHE`` at a session folder, so tests never write to ``~/.cache``."""
    folder = tmp_path_factory.mktemp("dabin_cache_all")
    previous = os.environ.get("DABIN_CACHE")
    os.environ["DABIN_CACHE"] = str(folder)
    embedded_weights(folder, recipe=TINY_RECIPE)
    yield folder
    if previous is None:
        os.environ.pop("DABIN_CACHE", None)
    else:
        os.environ["DABIN_CACHE"] = previous
