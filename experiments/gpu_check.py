"""GPU check: what ``make bench`` measures on the CPU, measured on a GPU, plus a real DANN run.

One run prints one table. Every timing is the median of interleaved repeats
(:func:`timing.median_interleaved`; on CUDA each timed call ends with ``torch.cuda.synchronize()``),
BIN and BatchNorm side by side, over a grid of the settings users turn on:

* precision: ``fp32``, or ``bf16`` under ``torch.autocast`` (what ``--trainer.precision
  bf16-mixed`` does; a single layer is fed bf16 input, as a convolution under autocast would);
* memory format: ``contiguous`` or ``channels_last``;
* mode: ``eager``, or ``compiled`` with ``torch.compile`` (Inductor: Triton kernels on CUDA, C++
  on the CPU) of the layer or of the whole model. dabin's own compiled BIN kernels
  (:mod:`dabin.nn.compiled`) apply to float32 contiguous CPU input only: they are part of
  ``eager`` on the CPU, as users get them, and are switched off inside ``compiled``, so that
  Dynamo traces BIN's eager arithmetic on the CPU exactly as it does on CUDA.

Rows (``BIN/BN`` is always a time ratio, BIN's time over BatchNorm's; lower is better):

* ``layer train``: one normalization layer, forward + backward, at the ResNet-18 shapes of
  ``experiments/bench_bin.py`` (``LAYER_SHAPES``). Target BIN/BN <= 1.2x.
* ``layer eval``: the same layer, eval-mode forward. Target <= 2.5x.
* ``resnet18 step``: one SGD step (momentum 0.9) of a whole ResNet-18, BIN model against BN
  model; batch 64 at 224 px on CUDA (the paper's 32 + 32 per DANN step), 64 at 64 px on the CPU
  as in ``bench_bin.py``. Target <= 1.05x.
* ``DANN train``: training throughput in images/s of ``dabin.modules.TransferModule`` (ResNet-18 width 64,
  BIN or BN, no pretrained weights) driven by a Lightning ``Trainer`` with the real loader
  (:class:`datamodules.TransferDataModule`, Ar->Cl, 224-px crops, batch 32 source + 32 target,
  random resized crops decoded from JPEG), on a generated Office-Home-shaped tree (the four
  official domain folders, ``Real World`` with its space, the 65 class folders and file names of
  ``datamodules/lists``; 3 photo-like JPEGs of 300-640 px per class and domain) in a temporary
  folder. Images/s are counted over the steps after the warm-up steps. Its BIN/BN is the
  end-to-end cost of BIN in training (information; a loader-bound run shows about 1x). ``fp32``
  is ``--trainer.precision 32-true``, ``bf16`` is ``bf16-mixed``.

**Targets** are those ``bench_bin.py`` holds BIN to on the CPU: BIN may cost at most 1.2x
BatchNorm's time per layer in training, 2.5x in eval, and a whole BIN ResNet-18 step at most 1.05x
a BN one (at 224 px on a GPU the convolutions dominate, so that target is the one that decides
whether BIN is affordable there). The ``target`` column says ``ok`` or ``MISSED`` per row; a miss
in one setting only (say ``bf16``, or ``channels_last``) points at the code path to work on. The
two lines under the table give how many graphs ``torch.compile`` built and how many graph breaks
it took (a break inside a compiled BIN layer means BIN is not captured whole), and the worst
ratio per kind.

On a GPU machine (CUDA build of torch)::

    .venv/bin/python experiments/gpu_check.py --quick                # smoke run: about a minute
    .venv/bin/python experiments/gpu_check.py --markdown | tee gpu_check.md

The full run compiles 80 single layers and 8 whole ResNet-18 steps (2 norms x 2 precisions x
2 formats) and trains DANN four times; it should take about 10-15 minutes, most of it compiling
(not yet measured on a GPU). Where one command may run for 10 minutes at most, split it::

    .venv/bin/python experiments/gpu_check.py --markdown --parts layers
    .venv/bin/python experiments/gpu_check.py --markdown --parts resnet,dann

Here (no GPU), to check the script itself (about a minute on 2 cores)::

    .venv/bin/python experiments/gpu_check.py --device cpu --quick

``--quick`` cuts everything to the smallest useful size: two layer shapes, ``--repeats 3``, the
compiled mode for float32 contiguous layers only (compiling a whole ResNet-18 costs one to two
minutes per setting on a 2-core CPU), a width-8 ResNet-18 at batch 8 on 32 px, and DANN at width
8 on 64-px crops, batch 8 + 8, one 96-160 px JPEG per class and domain, no loader workers, for
1 warm-up and 2 timed steps. Other options: ``--repeats N``, ``--workers N`` (DataLoader workers
per loader, two training loaders; default min(8, cores / 2)), ``--threads N`` (CPU threads),
``--verbose`` (progress on stderr). ``--device cuda`` without a usable GPU exits with status 2
and one ``gpu_check: error:`` line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench_bin import LAYER_SHAPES, TARGETS
from dabin.models import resnet18
from dabin.nn import BatchInstanceNorm2d, compiled
from timing import median_interleaved

PRECISIONS = ("fp32", "bf16")
FORMATS = ("contiguous", "channels_last")
MODES = ("eager", "compiled")
PARTS = ("layers", "resnet", "dann")
NUM_CLASSES = 65


@dataclass(frozen=True)
class Setting:
    """One point of the settings grid."""

    precision: str
    fmt: str
    mode: str


@dataclass
class Row:
    """One line of the table: BIN and BN measured side by side."""

    measurement: str
    shape: str
    setting: Setting
    unit: str  # "ms" (time, lower is better) or "img/s" (throughput, higher is better)
    bin: float
    bn: float
    target: float | None

    @property
    def ratio(self) -> float:
        """BIN's time over BN's."""
        return self.bin / self.bn if self.unit == "ms" else self.bn / self.bin


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or ``--quick``) on one device."""

    device: torch.device
    repeats: int
    warmup: int
    layer_shapes: list[tuple[int, int, int, int]]
    layer_settings: list[Setting]
    step_settings: list[Setting]
    step_batch: int
    step_size: int
    step_width: int
    dann_batch: int
    dann_size: int
    dann_width: int
    dann_warmup: int
    dann_steps: int
    dann_images_per_class: int
    dann_image_sides: tuple[int, int]
    workers: int


def _fail(message: str) -> None:
    print(f"gpu_check: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


@contextlib.contextmanager
def _precision(setting: Setting, device: torch.device) -> Iterator[None]:
    if setting.precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def _bin_kernels_off(fn: Callable[[], object]) -> Callable[[], object]:
    """Run ``fn`` with dabin's CPU-only BIN kernels off (a no-op on CUDA; see the module docstring)."""
    def run() -> object:
        previous = compiled.compiled_enabled()
        compiled.set_compiled(False)
        try:
            return fn()
        finally:
            compiled.set_compiled(previous)
    return run


def _timed(fn: Callable[[], object], device: torch.device) -> Callable[[], object]:
    sync = _sync(device)

    def run() -> object:
        fn()
        sync()
        return None
    return run


def _input(shape: tuple[int, ...], setting: Setting, device: torch.device, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=generator).to(device)
    if setting.precision == "bf16":
        x = x.bfloat16()  # what a convolution under autocast hands the next layer
    if setting.fmt == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    return x


def _layer_fn(norm: str, shape: tuple[int, int, int, int], train: bool, setting: Setting,
              device: torch.device) -> Callable[[], object]:
    """One layer's training forward+backward or eval forward, ready to time."""
    torch.manual_seed(0)
    layer: nn.Module = (BatchInstanceNorm2d(shape[1]) if norm == "bin" else nn.BatchNorm2d(shape[1])).to(device)
    if norm == "bin":
        with torch.no_grad():
            layer.gate.uniform_()  # every channel mixes both branches: no shortcut applies
    layer.train(train)
    module: Any = torch.compile(layer, dynamic=False) if setting.mode == "compiled" else layer
    x = _input(shape, setting, device)
    if train:
        x = x.detach().requires_grad_()
        grad = torch.randn_like(x)

        def run() -> object:
            x.grad = None
            with _precision(setting, device):
                y = module(x)
            y.backward(grad)
            return None
    else:
        def run() -> object:
            with torch.no_grad(), _precision(setting, device):
                return module(x)
    if norm == "bin" and setting.mode == "compiled":
        run = _bin_kernels_off(run)
    return _timed(run, device)


def _step_fn(norm: str, config: Config, setting: Setting) -> Callable[[], object]:
    """One SGD step of a ResNet-18, ready to time."""
    device = config.device
    torch.manual_seed(0)
    model = resnet18(norm=norm, num_classes=NUM_CLASSES, width=config.step_width,  # type: ignore[arg-type]
                     small_input=config.step_size < 64).to(device)
    if setting.fmt == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    forward: Any = torch.compile(model, dynamic=False) if setting.mode == "compiled" else model
    x = torch.randn(config.step_batch, 3, config.step_size, config.step_size, device=device)
    if setting.fmt == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (config.step_batch,), device=device)

    def step() -> object:
        optimizer.zero_grad(set_to_none=True)
        with _precision(setting, device):
            loss = nn.functional.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()
        return None
    run = _bin_kernels_off(step) if norm == "bin" and setting.mode == "compiled" else step
    return _timed(run, device)


def _pair(make: Callable[[str], Callable[[], object]], repeats: int, warmup: int,
          compiled_mode: bool) -> dict[str, float]:
    """Median seconds of BN and BIN, interleaved; compiled callables are compiled in the warm-up."""
    fns = {norm: make(norm) for norm in ("bn", "bin")}
    result = median_interleaved(fns, repeats, warmup=warmup + 1 if compiled_mode else warmup)
    if compiled_mode:
        torch._dynamo.reset()  # each layer/model compiles afresh; no recompile limit can be hit
    return result


# -- DANN with the real loader ---------------------------------------------------------------------


def _office_home_tree(root: Path, per_class: int, sides: tuple[int, int], seed: int = 0) -> Path:
    """Office-Home's folders and first file names (official lists) with photo-like JPEGs."""
    from bench_loader import photo_like
    from datamodules.officehome import ARCHIVE_FOLDER, OFFICE_HOME_DOMAINS, office_home_list

    top = root / ARCHIVE_FOLDER
    rng = np.random.default_rng(seed)
    for domain in OFFICE_HOME_DOMAINS:
        taken: dict[int, int] = {}
        for relative, label in office_home_list(domain):
            if taken.get(label, 0) >= per_class:
                continue
            taken[label] = taken.get(label, 0) + 1
            width = int(rng.integers(sides[0], sides[1] + 1))
            height = int(width * rng.uniform(0.6, 1.33))
            path = top / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            photo_like(rng, (width, height)).save(path, quality=90)
    return top


def _dann_throughput(config: Config, norm: str, precision: str, root: Path) -> float:
    """Images/s of a DANN run after its warm-up steps (source + target images per step)."""
    import pytorch_lightning as pl

    from dabin.modules import TransferModule
    from datamodules import TransferDataModule

    sync = _sync(config.device)

    class Clock(pl.Callback):
        def __init__(self) -> None:
            self.batches = 0
            self.images = 0
            self.start = self.end = 0.0

        def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                               batch_idx: int) -> None:
            sync()
            now = time.perf_counter()
            self.batches += 1
            if self.batches == config.dann_warmup:
                self.start = now
            elif self.batches > config.dann_warmup:
                self.images += sum(int(part[0].shape[0]) for part in batch.values())
                self.end = now

    clock = Clock()
    pl.seed_everything(0, verbose=False)
    data = TransferDataModule(root=str(root), task="Ar->Cl", image_size=config.dann_size,
                              batch_size=config.dann_batch, num_workers=config.workers)
    # No evaluation points: they would stop the clock's steps to score validators.
    model = TransferModule(num_classes=data.num_classes, norm=norm, weights=None,  # type: ignore[arg-type]
                           width=config.dann_width, evaluation_points=0)
    trainer = pl.Trainer(
        accelerator="gpu" if config.device.type == "cuda" else "cpu", devices=1,
        precision="bf16-mixed" if precision == "bf16" else "32-true",
        max_steps=config.dann_warmup + config.dann_steps, max_epochs=-1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, callbacks=[clock],
        default_root_dir=str(root.parent / "runs"))
    trainer.fit(model, datamodule=data)
    if clock.images == 0 or clock.end <= clock.start:
        raise RuntimeError(f"DANN run timed no step ({clock.batches} batches)")
    return clock.images / (clock.end - clock.start)


# -- the run -----------------------------------------------------------------------------------------


def _config(args: argparse.Namespace, device: torch.device) -> Config:
    grid = [Setting(p, f, m) for m in MODES for p in PRECISIONS for f in FORMATS]
    cuda = device.type == "cuda"
    workers = args.workers if args.workers is not None else (0 if args.quick else min(8, (os.cpu_count() or 2) // 2))
    if args.quick:
        eager = [s for s in grid if s.mode == "eager"]
        return Config(device, args.repeats or 3, 1, [LAYER_SHAPES[2], LAYER_SHAPES[3]],
                      eager + [Setting("fp32", "contiguous", "compiled")], eager,
                      step_batch=8, step_size=32, step_width=8, dann_batch=8, dann_size=64, dann_width=8,
                      dann_warmup=1, dann_steps=2, dann_images_per_class=1, dann_image_sides=(96, 160),
                      workers=workers)
    return Config(device, args.repeats or 21, 3, list(LAYER_SHAPES), grid, grid,
                  step_batch=64, step_size=224 if cuda else 64, step_width=64, dann_batch=32, dann_size=224,
                  dann_width=64, dann_warmup=5, dann_steps=20 if cuda else 5, dann_images_per_class=3,
                  dann_image_sides=(300, 640), workers=workers)


def _step_repeats(config: Config) -> int:
    return max(3, math.ceil(config.repeats * 0.75))  # a step costs a hundred layers; 15 of 21 as in bench_bin


def _measure(config: Config, parts: set[str], log: Callable[[str], None]) -> list[Row]:
    device = config.device
    rows: list[Row] = []
    for shape in config.layer_shapes if "layers" in parts else []:
        for train in (True, False):
            kind = "train" if train else "eval"
            for setting in config.layer_settings:
                log(f"layer {kind} {'x'.join(map(str, shape))} {setting.precision} {setting.fmt} {setting.mode}")
                med = _pair(lambda norm: _layer_fn(norm, shape, train, setting, device), config.repeats,
                            config.warmup, setting.mode == "compiled")
                rows.append(Row(f"layer {kind}", "x".join(map(str, shape)), setting, "ms",
                                med["bin"] * 1e3, med["bn"] * 1e3, TARGETS[kind]))
    step_shape = f"{config.step_batch}x3x{config.step_size}x{config.step_size}"
    if config.step_width != 64:
        step_shape += f" w{config.step_width}"
    for setting in config.step_settings if "resnet" in parts else []:
        log(f"resnet18 step {setting.precision} {setting.fmt} {setting.mode}")
        med = _pair(lambda norm: _step_fn(norm, config, setting), _step_repeats(config), config.warmup,
                    setting.mode == "compiled")
        rows.append(Row("resnet18 step", step_shape, setting, "ms", med["bin"] * 1e3, med["bn"] * 1e3,
                        TARGETS["resnet18 step"]))
    if "dann" not in parts:
        return rows
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as folder:
        log(f"generating an Office-Home-shaped tree ({config.dann_images_per_class} image(s) per class and domain)")
        root = _office_home_tree(Path(folder) / "data", config.dann_images_per_class, config.dann_image_sides)
        dann_shape = f"2x{config.dann_batch}x3x{config.dann_size}x{config.dann_size}"
        if config.dann_width != 64:
            dann_shape += f" w{config.dann_width}"
        for precision in PRECISIONS:
            setting = Setting(precision, "contiguous", "eager")
            speed = {}
            for norm in ("bn", "bin"):
                log(f"DANN {norm} {precision}")
                speed[norm] = _dann_throughput(config, norm, precision, root)
            rows.append(Row("DANN train", dann_shape, setting, "img/s", speed["bin"], speed["bn"], None))
    return rows


def _cells(row: Row) -> list[str]:
    value = "{:.1f}" if row.unit == "img/s" else "{:.4g}"  # 4 significant digits of a time
    target = "-" if row.target is None else f"<= {row.target}x {'ok' if row.ratio <= row.target else 'MISSED'}"
    return [row.measurement, row.shape, row.setting.precision, row.setting.fmt, row.setting.mode, row.unit,
            value.format(row.bin), value.format(row.bn), f"{row.ratio:.3f}x", target]


HEADER = ["measurement", "shape", "precision", "format", "mode", "unit", "BIN", "BN", "BIN/BN time", "target"]


def render(rows: list[Row], markdown: bool, title: str) -> str:
    """The table as markdown, or drawn by rich."""
    if markdown:
        lines = [f"**{title}**", "", "| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
        lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
        return "\n".join(lines)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, name in enumerate(HEADER):
        table.add_column(name, justify="right" if 6 <= i <= 8 else "left")
    for row in rows:
        table.add_row(*_cells(row))
    console = Console(width=160, record=True, file=open(os.devnull, "w"))  # noqa: SIM115 - recorded only
    console.print(table)
    return console.export_text()


def _title(config: Config) -> str:
    device = config.device
    if device.type == "cuda":
        name = (f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}, TF32 conv "
                f"{torch.backends.cudnn.allow_tf32}/matmul {torch.backends.cuda.matmul.allow_tf32}")
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    return (f"gpu_check: torch {torch.__version__}, {name}; median of {config.repeats} interleaved repeats "
            f"({_step_repeats(config)} for ResNet steps); BIN/BN = BIN time / BN time")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where to measure (default cuda)")
    parser.add_argument("--quick", action="store_true", help="smallest useful sizes (a smoke run of the script)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per measurement (21; 3 with --quick)")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table instead of a drawn one")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers per domain for the DANN run (default min(8, cores/2); 0 with --quick)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)} to measure (default: all)")
    parser.add_argument("--verbose", action="store_true", help="say what is being measured, on stderr")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        _fail(f"--repeats must be at least 1, got {args.repeats}")
    parts = {part.strip() for part in args.parts.split(",") if part.strip()}
    if not parts or parts - set(PARTS):
        _fail(f"--parts takes a comma-separated subset of {','.join(PARTS)}, got {args.parts!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
        _fail(f"CUDA is not available (torch {torch.__version__}, {build}, {torch.cuda.device_count()} device(s) "
              "visible); run it on a GPU machine, or pass --device cpu to check the script here")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = _config(args, device)

    # The measurements must not fall back to eager quietly: fail instead of hitting a recompile limit.
    if hasattr(torch._dynamo.config, "fail_on_recompile_limit_hit"):
        torch._dynamo.config.fail_on_recompile_limit_hit = True
    warnings.filterwarnings("ignore")  # Lightning's and the dataset checks' advice; the table is the output
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    started = time.perf_counter()

    def log(message: str) -> None:
        if args.verbose:
            print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    from torch._dynamo.utils import counters

    rows = _measure(config, parts, log)
    print(render(rows, args.markdown, _title(config)))
    breaks = sum(counters["graph_break"].values())
    print(f"\ntorch.compile: {counters['stats']['unique_graphs']} graphs compiled, {breaks} graph breaks; "
          f"{time.perf_counter() - started:.0f} s in all")
    missed = [row for row in rows if row.target is not None and row.ratio > row.target]
    worst = {kind: max((r.ratio for r in rows if r.measurement == kind), default=math.nan)
             for kind in ("layer train", "layer eval", "resnet18 step")}
    print("worst BIN/BN: " + ", ".join(f"{kind} {value:.2f}x" for kind, value in worst.items())
          + f"; {len(missed)} of {sum(r.target is not None for r in rows)} rows miss their target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
