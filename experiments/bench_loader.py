"""Benchmark: dabin's image loading against plain torchvision, side by side in one run.

The contenders produce the same evaluation tensor (short side 256, centre crop 224, ImageNet
normalisation) from large JPEGs, in one process (no DataLoader workers), so what is compared is
the work per image:

* **ours**: :class:`~datamodules.dataset.ImageDataset` with ``crop=224`` and
  :class:`~datamodules.transforms.ToNormalizedTensor`, as the data modules evaluate: JPEG decoded
  in draft mode (at 1/2-1/8 scale by libjpeg), then only the centre crop of the short-side-256
  image is resampled (:func:`~datamodules.loading.decode_center_crop`), then converted and
  normalised in one pass;
* **ours, cache warm**: the same, cutting the crop from resized copies in a warm
  :class:`~datamodules.cache.ResizedImageCache` (every epoch after the first);
* **ours, previous path** (for information): the same draft decode, but the whole image resized
  to short side 256, then the v2 transforms ``Resize`` (a no-op) + ``CenterCrop`` +
  ``PILToTensor`` + ``ToDtype`` + ``Normalize``;
* **torchvision**: ``ImageFolder`` + ``Resize(256)`` + ``CenterCrop(224)`` + ``ToTensor`` +
  ``Normalize``: full-size decode, then resize.

Passes over the dataset are interleaved (so drifts in machine load hit all contenders alike) and
the median of the repeats is reported. Target: ours at least 3x torchvision's images/s. The
speed-up grows with the size of the originals: draft mode saves the inverse DCT, colour conversion
and most of the resize, but libjpeg still entropy-decodes the whole file at any scale, and at
1600x1200 that part is about 2-3 ms of ours' 3.5-5 ms (more for larger, noisier files). Every
output is then compared with torchvision's: same size, and mean absolute difference at most
2 grey levels (0..255) per image; the 99th percentile and maximum difference are reported too
(draft decoding downscales in the DCT domain, not with torchvision's filter, so single pixels
can differ by more).

By default a tree of 2 domains x 3 classes x 20 photo-like 1600x1200 JPEGs (gradients, texture,
shapes and sensor-like noise; about 230 KiB each at quality 90, the low end for photographs of
that resolution; ``--noise 6`` gives about 400 KiB) is generated in a temporary folder; ``--root`` benchmarks an existing ``<domain>/<class>/<image>``
tree instead (e.g. Office-Home, whose images reach 6500x4900).

Usage::

    python experiments/bench_loader.py [--repeats 5] [--images 20] [--noise 3]
    python experiments/bench_loader.py --width 4000 --height 3000 --images 5
    python experiments/bench_loader.py --root ~/data/OfficeHome --limit 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image, ImageDraw, ImageFilter
from torch import Tensor
from torchvision import datasets, transforms
from torchvision.transforms import v2

from datamodules import DomainTree, ImageDataset, ResizedImageCache, Sample, resize_size
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD, ToNormalizedTensor
from timing import median_interleaved

#: ours / torchvision images per second, at least.
SPEED_TARGET = 3.0
#: Largest mean absolute difference from torchvision's output, per image, in grey levels (0..255).
MEAN_DIFF_TOLERANCE = 2.0
IMAGE_SIZE = 224


def photo_like(rng: np.random.Generator, size: tuple[int, int], noise: float = 3.0) -> Image.Image:
    """A synthetic photograph: smooth lighting, texture, a few sharp-edged shapes, sensor noise.

    Pure noise would make JPEGs several times larger (and slower to decode) than photographs;
    pure gradients would make them tiny. This mix gives files of realistic size; ``noise`` sets
    where in the range they fall (at 1600x1200, quality 90: about 180 KiB at 0, 250 KiB at 3,
    430 KiB at 6).

    Args:
        rng: Random source.
        size: ``(width, height)``.
        noise: Standard deviation of the sensor noise, in grey levels.

    Returns:
        An RGB image.
    """
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, 3).astype(np.float32)
    slope = rng.uniform(-80, 80, (2, 3)).astype(np.float32)
    pixels = base + x[..., None] / width * slope[0] + y[..., None] / height * slope[1]
    for _ in range(3):  # texture at a few scales, like foliage, fabric or wood grain
        period = rng.uniform(6, 80)
        angle = rng.uniform(0, np.pi)
        wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) / period + rng.uniform(0, 6))
        pixels += wave[..., None] * rng.uniform(4, 20, 3).astype(np.float32)
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 14))):
        x0, x1 = sorted(rng.integers(0, width, 2).tolist())
        y0, y1 = sorted(rng.integers(0, height, 2).tolist())
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
    # A lens is not perfectly sharp; the sensor adds grain on top.
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(1.2)), np.float32)
    noisy = blurred + noise * rng.standard_normal(blurred.shape, dtype=np.float32)
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def build_tree(root: Path, domains: int, classes: int, images: int, size: tuple[int, int], noise: float,
               seed: int) -> None:
    """Write ``root/domain<d>/class<c>/<i>.jpg`` (quality 90; every 5th image is portrait).

    Args:
        root: Destination folder.
        domains: Number of domains.
        classes: Classes per domain.
        images: Images per class.
        size: ``(width, height)`` of landscape images.
        noise: Sensor noise of :func:`photo_like`.
        seed: Random seed of the content.
    """
    rng = np.random.default_rng(seed)
    for d in range(domains):
        for c in range(classes):
            folder = root / f"domain{d}" / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(images):
                shape = size if i % 5 else (size[1], size[0])
                photo_like(rng, shape, noise).save(folder / f"{i:03d}.jpg", quality=90)


def torchvision_baseline(tree: DomainTree) -> Callable[[Path], Tensor]:
    """torchvision's ``ImageFolder`` per domain with the classic evaluation transform.

    Args:
        tree: The scanned tree (for its domain folders).

    Returns:
        A function from an image path to the baseline's tensor (``ImageFolder.__getitem__``).
    """
    transform = transforms.Compose([
        transforms.Resize(resize_size(IMAGE_SIZE)),
        transforms.CenterCrop(IMAGE_SIZE),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    folders = [datasets.ImageFolder(str(domain.folder), transform=transform) for domain in tree.domains]
    # ImageFolder orders and labels its own way; index it by path to fetch the same image as ours.
    where = {Path(path): (folder, i) for folder in folders for i, (path, _) in enumerate(folder.samples)}

    def load(path: Path) -> Tensor:
        folder, index = where[path]
        return folder[index][0]
    return load


def previous_eval_transform() -> v2.Compose:
    """Our evaluation transform before decoding went straight to the crop (for the info row)."""
    return v2.Compose([v2.Resize(resize_size(IMAGE_SIZE), antialias=True), v2.CenterCrop(IMAGE_SIZE),
                       v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def _pass(load: Callable[[int], object], count: int) -> Callable[[], object]:
    def run() -> object:
        for index in range(count):
            load(index)
        return None
    return run


def _grey_levels(tensor: Tensor) -> Tensor:
    """Undo the normalisation: back to 0..255 pixel values."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (tensor * std + mean) * 255


def compare(ours: Callable[[int], Tensor], baseline: Callable[[Path], Tensor],
            samples: Sequence[Sample]) -> dict[str, float]:
    """Compare our output with the baseline's for every image.

    Args:
        ours: Index -> our tensor.
        baseline: Path -> the baseline's tensor.
        samples: The images, in our order.

    Returns:
        ``same_size`` (count of images whose outputs have equal shapes), ``worst_mean`` (largest
        per-image mean absolute difference), ``mean`` (over all pixels), ``p99`` and ``max``,
        all differences in grey levels.
    """
    same, means, p99s, maxima = 0, [], [], []
    for index, sample in enumerate(samples):
        a, b = ours(index), baseline(sample.path)
        if a.shape != b.shape:
            continue
        same += 1
        diff = (_grey_levels(a) - _grey_levels(b)).abs().flatten()
        means.append(diff.mean().item())
        p99s.append(torch.quantile(diff, 0.99).item())
        maxima.append(diff.max().item())
    if not means:
        return {"same_size": 0, "worst_mean": float("inf"), "mean": float("inf"), "p99": float("inf"),
                "max": float("inf")}
    return {"same_size": same, "worst_mean": max(means), "mean": statistics.fmean(means),
            "p99": statistics.median(p99s), "max": max(maxima)}


def _file_sizes(samples: Sequence[Sample]) -> tuple[float, tuple[int, int]]:
    sizes = [s.path.stat().st_size for s in samples]
    with Image.open(samples[0].path) as image:
        first = image.size
    return statistics.fmean(sizes) / 1024, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="benchmark this tree instead of a generated one")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many images (spread evenly)")
    parser.add_argument("--images", type=int, default=20, help="generated images per class (default 20)")
    parser.add_argument("--width", type=int, default=1600, help="generated image width (default 1600)")
    parser.add_argument("--height", type=int, default=1200, help="generated image height (default 1200)")
    parser.add_argument("--noise", type=float, default=3.0,
                        help="sensor noise of the generated images in grey levels; sets the file size (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved passes per contender (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="dabin-bench-loader-") as scratch:
        root = args.root
        if root is None:
            root = Path(scratch) / "tree"
            start = time.perf_counter()
            build_tree(root, 2, 3, args.images, (args.width, args.height), args.noise, seed=0)
            print(f"generated {6 * args.images} JPEGs in {time.perf_counter() - start:.0f} s")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # count warnings of a partial Office-Home do not matter here
            tree = DomainTree.scan(root)
        samples = tree.samples
        if args.limit is not None and args.limit < len(samples):
            samples = [samples[round(i * len(samples) / args.limit)] for i in range(args.limit)]
        kib, first_size = _file_sizes(samples)
        print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {PIL.__version__}, "
              f"{args.threads} torch thread(s), num_workers=0")
        print(f"{len(samples)} images from {tree.root} (first {first_size[0]}x{first_size[1]}, "
              f"mean {kib:.0f} KiB), output {IMAGE_SIZE}x{IMAGE_SIZE}, median of {args.repeats} interleaved passes\n")

        short = resize_size(IMAGE_SIZE)
        ours = ImageDataset(samples, ToNormalizedTensor(), short, crop=IMAGE_SIZE)
        cache = ResizedImageCache(Path(scratch) / "cache", short)
        cached = ImageDataset(samples, ToNormalizedTensor(), short, cache, crop=IMAGE_SIZE)
        previous = ImageDataset(samples, previous_eval_transform(), short)
        baseline = torchvision_baseline(tree)

        start = time.perf_counter()
        _pass(cached.__getitem__, len(samples))()  # fills the cache: the first epoch's cost
        cold = time.perf_counter() - start
        _pass(ours.__getitem__, len(samples))()  # warm-up: file-system cache, lazy imports
        _pass(previous.__getitem__, len(samples))()
        _pass(lambda i: baseline(samples[i].path), len(samples))()
        med = median_interleaved({
            "torchvision": _pass(lambda i: baseline(samples[i].path), len(samples)),
            "ours": _pass(ours.__getitem__, len(samples)),
            "ours, cache warm": _pass(cached.__getitem__, len(samples)),
            "ours, previous path": _pass(previous.__getitem__, len(samples)),
        }, args.repeats)

        checks = {name: compare(lambda i, d=dataset: d[i][0], baseline, samples)
                  for name, dataset in (("ours", ours), ("ours, cache warm", cached),
                                        ("ours, previous path", previous))}

    n = len(samples)
    rate = {name: n / seconds for name, seconds in med.items()}
    print("| pipeline | images/s | ms/image | speed-up | same size | mean abs diff | worst image mean | "
          "p99 diff | max diff |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| torchvision ImageFolder + Resize + CenterCrop | {rate['torchvision']:.1f} | "
          f"{1e3 / rate['torchvision']:.1f} | 1.00x | - | - | - | - | - |")
    for name in ("ours", "ours, cache warm", "ours, previous path"):
        c = checks[name]
        label = f"{name} (info)" if name == "ours, previous path" else name
        print(f"| {label} | {rate[name]:.1f} | {1e3 / rate[name]:.1f} | {rate[name] / rate['torchvision']:.2f}x | "
              f"{c['same_size']}/{n} | {c['mean']:.2f} | {c['worst_mean']:.2f} | {c['p99']:.1f} | {c['max']:.0f} |")
    print(f"| ours, cache cold (first epoch, info) | {n / cold:.1f} | {1e3 * cold / n:.1f} | "
          f"{n / cold / rate['torchvision']:.2f}x | - | - | - | - | - |")
    print("\ndifferences in grey levels (0..255) against torchvision's output; p99: median over images of the "
          "per-image 99th percentile")
    speedup = rate["ours"] / rate["torchvision"]
    verdicts = [
        (f"speed: ours {speedup:.2f}x torchvision (target >= {SPEED_TARGET}x)", speedup >= SPEED_TARGET),
        (f"speed: cache warm {rate['ours, cache warm'] / rate['torchvision']:.2f}x torchvision "
         f"(target >= {SPEED_TARGET}x)", rate["ours, cache warm"] / rate["torchvision"] >= SPEED_TARGET),
    ]
    for name in ("ours", "ours, cache warm"):  # the previous path is information only
        c = checks[name]
        verdicts.append((f"size: {name} {c['same_size']}/{n} outputs the size of torchvision's", c["same_size"] == n))
        verdicts.append((f"pixels: {name} worst per-image mean abs diff {c['worst_mean']:.2f} "
                         f"(tolerance <= {MEAN_DIFF_TOLERANCE})", c["worst_mean"] <= MEAN_DIFF_TOLERANCE))
    for text, ok in verdicts:
        print(f"{'met' if ok else 'MISSED'}: {text}")


if __name__ == "__main__":
    main()
