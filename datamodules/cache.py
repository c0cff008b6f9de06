"""Optional on-disk cache of resized images, so large originals are decoded once, not every epoch.

Entries are keyed by the source's absolute path, size and modification time and by the short side,
so an edited image or another image size never reads a stale entry. JPEG sources are cached as
JPEG (quality 95, no chroma subsampling: the originals are lossy already), anything else as PNG
(lossless). Entries are written atomically (:func:`dabin.io.atomic_open`): concurrent DataLoader
workers may write the same entry, and an interrupted run leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PIL import Image

from dabin.io import atomic_open
from datamodules.loading import decode_image

__all__ = ["ResizedImageCache", "default_cache_dir"]


def default_cache_dir() -> Path:
    """dabin's cache folder: ``$DABIN_CACHE``, else ``$XDG_CACHE_HOME/dabin``, else ``~/.cache/dabin``."""
    if os.environ.get("DABIN_CACHE"):
        return Path(os.environ["DABIN_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dabin"


class ResizedImageCache:
    """Resized copies of images under ``folder/resized-<short_side>/``.

    Args:
        folder: Cache folder (created on first write).
        short_side: Short side of the cached images.
    """

    def __init__(self, folder: str | os.PathLike[str], short_side: int) -> None:
        self.folder = Path(folder).expanduser() / f"resized-{short_side}"
        self.short_side = short_side

    def entry(self, path: str | os.PathLike[str]) -> Path:
        """Where the resized copy of ``path`` lives (whether or not it exists yet)."""
        source = Path(path).absolute()
        stat = source.stat()
        digest = hashlib.sha1(f"{source}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()
        suffix = ".jpg" if source.suffix.lower() in (".jpg", ".jpeg") else ".png"
        return self.folder / digest[:2] / f"{digest}{suffix}"

    def load(self, path: str | os.PathLike[str]) -> Image.Image:
        """The image resized to the cache's short side, from the cache or decoded and stored.

        Args:
            path: Source image.

        Returns:
            A loaded RGB image.

        Raises:
            CorruptImageError: The source cannot be decoded (nothing is written then).
        """
        entry = self.entry(path)
        if entry.exists():
            try:
                with Image.open(entry) as cached:
                    return cached.convert("RGB")
            except OSError:
                pass  # an unreadable entry (disk trouble): rebuild it from the source below
        image = decode_image(path, self.short_side)
        with atomic_open(entry, "wb") as handle:
            if entry.suffix == ".jpg":
                image.save(handle, format="JPEG", quality=95, subsampling=0)
            else:
                image.save(handle, format="PNG", compress_level=1)  # speed over size: it is a cache
        return image
