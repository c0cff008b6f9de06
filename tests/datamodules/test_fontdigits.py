"""The font digits: the pretraining source of the demo's backbone."""

from __future__ import annotations

import numpy as np

from datamodules.fontdigits import FONT_FILES, font_paths, render_font_digits


def test_every_listed_font_is_installed_and_draws_ten_distinct_digits() -> None:
    from PIL import ImageDraw, ImageFont
    from PIL import Image

    paths = font_paths()
    assert [p.name for p in paths] == list(FONT_FILES)
    for path in paths:
        font = ImageFont.truetype(str(path), 24)
        glyphs = []
        for digit in range(10):
            canvas = Image.new("L", (40, 40))
            ImageDraw.Draw(canvas).text((8, 4), str(digit), fill=255, font=font)
            glyphs.append(np.asarray(canvas).tobytes())
        # A symbol font would draw boxes or blanks: the same image for several digits.
        assert len(set(glyphs)) == 10, path.name


def test_rendering_is_deterministic_balanced_and_seeded() -> None:
    images, labels = render_font_digits(60, seed=3)
    again, _ = render_font_digits(60, seed=3)
    other, _ = render_font_digits(60, seed=4)
    assert images.shape == (60, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images, again)
    assert not np.array_equal(images, other)
    assert np.bincount(labels, minlength=10).tolist() == [6] * 10
    # Every digit is visible: its image is not flat.
    assert (images.reshape(60, -1).std(axis=1) > 10).all()
