"""SyncBatchInstanceNorm: two gloo processes on CPU against one process on the whole batch.

Each process holds a different share of one batch (3 and 5 samples); pooled statistics must give
exactly the single-process outputs, input gradients and running statistics, and the processes'
parameter gradients must sum to the single-process ones (float64, tight tolerances). Two negative
controls show the comparison can fail: layers that do not synchronize, and a backward whose
all-reduce is skipped (outputs still right, input gradients not).
"""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from dabin.models import resnet18
from dabin.nn import (
    BatchInstanceNorm1d,
    BatchInstanceNorm2d,
    BatchInstanceNorm3d,
    SyncBatchInstanceNorm,
    SyncNorm,
    convert_sync_norm,
    revert_sync_norm,
)
from dabin.nn.bin import _BatchInstanceNorm
from dabin.nn.group import GroupSynced
from dabin.nn.ibn import IBN
from dabin.nn.switchable import SwitchNorm2d
from dabin.nn.transnorm import TransNorm2d, domain_split

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "experiments" / "demo"
SPLIT = (0, 3, 8)  # rank 0 holds samples 0..2, rank 1 samples 3..7
WORLD = len(SPLIT) - 1
TOL = {"rtol": 1e-10, "atol": 1e-12}


# --- cases: a module and its full batch -------------------------------------------------------------

def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random γ, β, gates and running statistics, so that every term of eq. (3) matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if not isinstance(m, nn.modules.batchnorm._BatchNorm):
                continue
            c = m.num_features
            if m.affine:
                m.weight.copy_(torch.rand(c, generator=g, dtype=torch.float64) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g, dtype=torch.float64))
            if isinstance(m, _BatchInstanceNorm) and m.learn_gate:
                m.gate.copy_(torch.rand(c, generator=g, dtype=torch.float64))
            if isinstance(m, SwitchNorm2d):  # a switch away from 1/3 each, so BN's share matters
                m.mean_weight.copy_(torch.randn(3, generator=g, dtype=torch.float64))
                m.var_weight.copy_(torch.randn(3, generator=g, dtype=torch.float64))
            if m.track_running_stats:
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g, dtype=torch.float64))
                m.running_var.copy_(torch.rand(c, generator=g, dtype=torch.float64) + 0.5)
    return module


def _batch(shape: tuple[int, ...], seed: int) -> tuple[Tensor, Tensor]:
    """Input with per-channel offsets and scales, and fixed loss weights (``loss = Σ y·w``)."""
    g = torch.Generator().manual_seed(seed)
    view = (1, shape[1]) + (1,) * (len(shape) - 2)
    offset = 3 * torch.randn(view, generator=g, dtype=torch.float64)
    scale = torch.rand(view, generator=g, dtype=torch.float64) + 0.5
    x = offset + scale * torch.randn(shape, generator=g, dtype=torch.float64)
    return x, torch.randn(shape, generator=g, dtype=torch.float64)


def _cases() -> dict[str, tuple[nn.Module, Tensor, Tensor]]:
    torch.manual_seed(0)
    model = _randomize(resnet18(norm="bin", width=4, small_input=True, num_classes=3).double(), 5)
    x_model, _ = _batch((8, 3, 12, 12), 6)
    w_model = torch.randn(8, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    f64 = {"dtype": torch.float64}
    return {
        "bin2d": (_randomize(BatchInstanceNorm2d(4, **f64), 1), *_batch((8, 4, 3, 5), 1)),
        "bin1d_flat": (_randomize(BatchInstanceNorm1d(3, **f64), 2), *_batch((8, 3), 2)),  # IN term 0
        "bnin3d_fixed": (_randomize(BatchInstanceNorm3d(2, gate_init=0.5, learn_gate=False, **f64), 3),
                         *_batch((8, 2, 2, 3, 2), 3)),
        "bn2d": (_randomize(nn.BatchNorm2d(4, **f64), 4), *_batch((8, 4, 4, 3), 4)),
        "resnet18": (model, x_model, w_model),
        # The lab's layers that pool their own statistics (dabin.nn.group): IBN-a's BN channels
        # (odd C: 2 IN, 3 BN; ratio 0: all BN) and Switchable Norm's BN statistics.
        "ibn": (_randomize(IBN(5, **f64), 8), *_batch((8, 5, 3, 4), 8)),
        "ibn_ratio0": (_randomize(IBN(3, ratio=0.0, **f64), 9), *_batch((8, 3, 2, 3), 9)),
        "switchable": (_randomize(SwitchNorm2d(4, **f64), 10), *_batch((8, 4, 3, 3), 10)),
        "switchable_cumulative": (_randomize(SwitchNorm2d(3, momentum=None, **f64), 11), *_batch((8, 3, 2, 2), 11)),
        "resnet18_ibn_a": (_randomize(resnet18(norm="ibn_a", width=4, small_input=True, num_classes=3).double(), 12),
                           x_model, w_model),
        "resnet18_switchable": (_randomize(resnet18(norm="switchable", width=4, small_input=True,
                                                    num_classes=3).double(), 13), x_model, w_model),
    }


#: TransNorm's batches are cat([source, target]) on every rank: rank 0 holds source rows 0..1 and
#: target row 0, rank 1 source rows 2..4 and target rows 1..2; one process holds all 5 + 3.
SOURCE_SPLIT, TARGET_SPLIT = (0, 2, 5), (0, 1, 3)


def _transnorm_cases() -> dict[str, tuple[nn.Module, Tensor, Tensor]]:
    """Each: a module and its source and target rows ``(8, ...)`` stacked: 5 source rows, then 3 target."""
    model = resnet18(norm="transnorm", width=4, small_input=True, num_classes=3).double()
    x_model, _ = _batch((8, 3, 12, 12), 14)
    w_model = torch.randn(8, 3, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    x, w = _batch((8, 4, 3, 3), 16)
    x[5:] = 0.5 * x[5:] + 1.0  # the target's statistics differ from the source's: α is not 1
    return {"transnorm": (_randomize(TransNorm2d(4, dtype=torch.float64), 16), x, w),
            "resnet18_transnorm": (_randomize(model, 17), x_model, w_model)}


TRANSNORM_CASES = ("transnorm", "resnet18_transnorm")


def _rank_rows(tensor: Tensor, rank: int) -> Tensor:
    """A rank's local batch of TransNorm rows: its source share, then its target share."""
    source, target = tensor[:SOURCE_SPLIT[-1]], tensor[SOURCE_SPLIT[-1]:]
    return torch.cat([source[SOURCE_SPLIT[rank]:SOURCE_SPLIT[rank + 1]],
                      target[TARGET_SPLIT[rank]:TARGET_SPLIT[rank + 1]]])


def _transnorm_step(module: nn.Module, x: Tensor, w: Tensor, n_source: int) -> dict[str, Any]:
    with domain_split(module, n_source):
        return _step(module, x, w)


#: The norm layer classes each case holds once converted.
CONVERTED = {"ibn": ["IBN"], "ibn_ratio0": ["IBN"], "switchable": ["SwitchNorm2d"],
             "switchable_cumulative": ["SwitchNorm2d"], "resnet18_ibn_a": ["IBN", "SyncBatchInstanceNorm"],
             "resnet18_switchable": ["SwitchNorm2d"]}


def _step(module: nn.Module, x: Tensor, w: Tensor) -> dict[str, Any]:
    """One training forward/backward of ``loss = Σ y·w``, then an eval forward (running statistics)."""
    module.train()
    x = x.clone().requires_grad_()
    y = module(x)
    (y * w).sum().backward()
    module.eval()
    with torch.no_grad():
        y_eval = module(x)
    return {
        "y": y.detach(),
        "grad_x": x.grad,
        "y_eval": y_eval,
        "grads": {name: p.grad for name, p in module.named_parameters()},
        "buffers": {name: b.clone() for name, b in module.named_buffers()},
        "types": sorted({type(m).__name__ for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}),
    }


def _worker(rank: int, init_file: str, cases_file: str, out_dir: str) -> None:
    """One of the two processes: every case through convert_sync_norm on this rank's share."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        cases = torch.load(cases_file, weights_only=False)
        lo, hi = SPLIT[rank], SPLIT[rank + 1]
        results: dict[str, Any] = {}
        for name, (module, x, w) in cases.items():
            if name not in TRANSNORM_CASES:
                results[name] = _step(convert_sync_norm(copy.deepcopy(module)), x[lo:hi], w[lo:hi])
        # Negative controls, on the BIN layer: no synchronization at all, and a backward without
        # its all-reduce.
        module, x, w = cases["bin2d"]
        results["control_unsynced"] = _step(copy.deepcopy(module), x[lo:hi], w[lo:hi])
        with mock.patch.object(dist, "all_reduce", lambda *args, **kwargs: None):
            results["control_no_all_reduce"] = _step(convert_sync_norm(copy.deepcopy(module)), x[lo:hi], w[lo:hi])
        for name in ("ibn", "switchable"):  # the lab's layers, not converted: each rank's own statistics
            module, x, w = cases[name]
            results[f"control_unsynced_{name}"] = _step(copy.deepcopy(module), x[lo:hi], w[lo:hi])
        n_source = SOURCE_SPLIT[rank + 1] - SOURCE_SPLIT[rank]
        for name in TRANSNORM_CASES:
            module, x, w = cases[name]
            results[name] = _transnorm_step(convert_sync_norm(copy.deepcopy(module)), _rank_rows(x, rank),
                                            _rank_rows(w, rank), n_source)
        module, x, w = cases["transnorm"]
        results["control_unsynced_transnorm"] = _transnorm_step(copy.deepcopy(module), _rank_rows(x, rank),
                                                                _rank_rows(w, rank), n_source)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The cases, run by two gloo processes; returns the cases and each rank's results."""
    folder = tmp_path_factory.mktemp("sync")
    cases = {**_cases(), **_transnorm_cases()}  # made once and shipped: the ranks' own RNGs differ
    torch.save(cases, folder / "cases.pt")
    mp.spawn(_worker, args=(str(folder / "init"), str(folder / "cases.pt"), str(folder)), nprocs=WORLD, join=True)
    return cases, [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _reference(case: tuple[nn.Module, Tensor, Tensor]) -> dict[str, Any]:
    module, x, w = case
    return _step(copy.deepcopy(module), x, w)


@pytest.mark.parametrize("name", ["bin2d", "bin1d_flat", "bnin3d_fixed", "bn2d", "resnet18", *CONVERTED])
def test_two_processes_match_one_process_on_the_whole_batch(two_processes: Any, name: str) -> None:
    cases, ranks = two_processes
    ref = _reference(cases[name])
    got = [r[name] for r in ranks]
    assert all(g["types"] == CONVERTED.get(name, ["SyncBatchInstanceNorm"]) for g in got)
    torch.testing.assert_close(torch.cat([g["y"] for g in got]), ref["y"], **TOL)
    torch.testing.assert_close(torch.cat([g["grad_x"] for g in got]), ref["grad_x"], **TOL)
    # DDP sums (or averages) parameter gradients: the local ones must add up to the global ones.
    assert set(got[0]["grads"]) == set(ref["grads"])
    for param, grad in ref["grads"].items():
        torch.testing.assert_close(got[0]["grads"][param] + got[1]["grads"][param], grad, **TOL, msg=param)
    for rank in got:
        extra = set(rank["buffers"]) - set(ref["buffers"])  # a former BatchNorm's fixed gate ρ = 1
        assert set(ref["buffers"]) <= set(rank["buffers"])
        if name in ("bn2d", "resnet18_ibn_a"):  # BatchNorm layers got a fixed gate ρ = 1 each
            assert extra and all(b == "gate" or b.endswith(".gate") for b in extra), extra
        else:
            assert extra == set()
        for buffer, value in ref["buffers"].items():
            torch.testing.assert_close(rank["buffers"][buffer], value, **TOL, msg=buffer)
    torch.testing.assert_close(torch.cat([g["y_eval"] for g in got]), ref["y_eval"], **TOL)


def _in_reference_order(ranks: list[dict[str, Any]], key: str) -> Tensor:
    """The ranks' TransNorm rows put back in the one-process order: every source row, then every target row."""
    parts = [(r[key][:SOURCE_SPLIT[i + 1] - SOURCE_SPLIT[i]], r[key][SOURCE_SPLIT[i + 1] - SOURCE_SPLIT[i]:])
             for i, r in enumerate(ranks)]
    return torch.cat([source for source, _ in parts] + [target for _, target in parts])


@pytest.mark.parametrize("name", TRANSNORM_CASES)
def test_transnorm_pools_each_domain_over_the_processes(two_processes: Any, name: str) -> None:
    cases, ranks = two_processes
    module, x, w = cases[name]
    ref = _transnorm_step(copy.deepcopy(module), x, w, SOURCE_SPLIT[-1])
    got = [r[name] for r in ranks]
    assert all("TransNorm2d" in g["types"] for g in got)
    for key in ("y", "grad_x", "y_eval"):
        torch.testing.assert_close(_in_reference_order(got, key), ref[key], **TOL, msg=key)
    for param, grad in ref["grads"].items():
        torch.testing.assert_close(got[0]["grads"][param] + got[1]["grads"][param], grad, **TOL, msg=param)
    for rank in got:  # both domains' running statistics, updated from the pooled ones
        for buffer, value in ref["buffers"].items():
            torch.testing.assert_close(rank["buffers"][buffer], value, **TOL, msg=buffer)
    unsynced = [r["control_unsynced_transnorm"] for r in ranks] if name == "transnorm" else None
    if unsynced is not None:
        assert (_in_reference_order(unsynced, "y") - ref["y"]).abs().max() > 1e-3


def test_the_comparison_detects_missing_synchronization(two_processes: Any) -> None:
    cases, ranks = two_processes
    ref = _reference(cases["bin2d"])
    unsynced = torch.cat([r["control_unsynced"]["y"] for r in ranks])
    assert (unsynced - ref["y"]).abs().max() > 1e-3
    # Statistics synchronized, backward sums local: outputs right, input gradients wrong.
    no_reduce = [r["control_no_all_reduce"] for r in ranks]
    torch.testing.assert_close(torch.cat([r["y"] for r in no_reduce]), ref["y"], **TOL)
    assert (torch.cat([r["grad_x"] for r in no_reduce]) - ref["grad_x"]).abs().max() > 1e-3
    for name in ("ibn", "switchable"):  # the lab's layers differ from the whole batch's unless pooled
        unsynced = torch.cat([r[f"control_unsynced_{name}"]["y"] for r in ranks])
        assert (unsynced - _reference(cases[name])["y"]).abs().max() > 1e-3, name


# --- conversion, without processes -------------------------------------------------------------------

def _mixed_model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), BatchInstanceNorm2d(4),
        BatchInstanceNorm2d(4, gate_init=0.5, learn_gate=False),
        nn.Sequential(nn.Flatten(2), BatchInstanceNorm1d(4), nn.BatchNorm1d(4, affine=False)),
        nn.Sequential(nn.Unflatten(2, (1, 2, 2)), nn.BatchNorm3d(4), BatchInstanceNorm3d(4, gate_init=0.0,
                                                                                             learn_gate=False)),
    ).double()


def test_convert_and_revert_reuse_parameters_and_buffers_and_keep_gates() -> None:
    model = _randomize(_mixed_model(), 0)
    model[2].eval()  # mode is kept per layer
    types = [type(m) for m in model.modules()]
    keys = list(model.state_dict())
    tensors = {name: t for name, t in [*model.named_parameters(), *model.named_buffers()]}
    gates = {name: m.gate.clone() for name, m in model.named_modules() if isinstance(m, _BatchInstanceNorm)}

    converted = convert_sync_norm(model)
    assert converted is model
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 7 and all(type(m) is SyncBatchInstanceNorm for m in norms)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    assert list(model.state_dict()) == keys  # plain BN layers got a non-persistent gate
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if name in tensors:
            assert tensor is tensors[name], name
        else:  # the fixed gate ρ = 1 of a former BatchNorm
            assert name.endswith(".gate") and torch.equal(tensor, torch.ones_like(tensor)), name
    assert model[2].training is False and model[1].training is True
    assert isinstance(model[2].gate, nn.Parameter) and not isinstance(model[3].gate, nn.Parameter)
    assert convert_sync_norm(model) is model and list(model.state_dict()) == keys  # idempotent

    reverted = revert_sync_norm(model)
    assert reverted is model
    assert [type(m) for m in model.modules()] == types
    assert list(model.state_dict()) == keys
    assert {name: t for name, t in [*model.named_parameters(), *model.named_buffers()]}.keys() == tensors.keys()
    assert all(t is tensors[name] for name, t in [*model.named_parameters(), *model.named_buffers()])
    for name, m in model.named_modules():
        if isinstance(m, _BatchInstanceNorm):
            assert torch.equal(m.gate, gates[name])
    assert model[2].training is False and model[1].training is True
    assert isinstance(model[2].gate, nn.Parameter) and not isinstance(model[3].gate, nn.Parameter)


def test_a_single_layer_and_state_dicts_move_between_bin_and_sync() -> None:
    layer = _randomize(BatchInstanceNorm2d(3, dtype=torch.float64), 1)
    sync = convert_sync_norm(layer)
    assert isinstance(sync, SyncBatchInstanceNorm) and sync.weight is layer.weight and sync.gate is layer.gate
    fresh = SyncBatchInstanceNorm(3, dtype=torch.float64)
    fresh.load_state_dict(layer.state_dict())
    back = BatchInstanceNorm2d(3, dtype=torch.float64)
    back.load_state_dict(fresh.state_dict())
    assert torch.equal(back.gate, layer.gate) and torch.equal(back.running_var, layer.running_var)
    assert type(revert_sync_norm(sync)) is BatchInstanceNorm2d
    assert revert_sync_norm(fresh) is fresh  # not made by convert_sync_norm: left alone
    with pytest.raises(ValueError, match="at least 2D"):
        fresh(torch.zeros(3, dtype=torch.float64))


def test_outside_a_distributed_run_the_sync_layer_is_the_plain_one(tmp_path: Path) -> None:
    layer = _randomize(BatchInstanceNorm2d(4, dtype=torch.float64), 2)
    x, w = _batch((5, 4, 3, 3), 2)
    expected = _step(copy.deepcopy(layer), x, w)
    assert not dist.is_initialized()
    results = [_step(convert_sync_norm(copy.deepcopy(layer)), x, w)]
    # An initialized group of one process: nothing to exchange, the same arithmetic.
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        results.append(_step(convert_sync_norm(copy.deepcopy(layer)), x, w))
    finally:
        dist.destroy_process_group()
    for got in results:
        for key in ("y", "grad_x", "y_eval"):
            assert torch.equal(got[key], expected[key]), key
        for name, grad in expected["grads"].items():
            assert torch.equal(got["grads"][name], grad), name
        for name, value in expected["buffers"].items():
            assert torch.equal(got["buffers"][name], value), name


def test_lightning_accepts_the_plugin_with_sync_batchnorm() -> None:
    plugin = SyncNorm()
    trainer = pl.Trainer(accelerator="cpu", devices=1, sync_batchnorm=True, plugins=[plugin], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    assert trainer._accelerator_connector._layer_sync is plugin
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), BatchInstanceNorm2d(4))
    assert [type(m) for m in plugin.apply(model)] == [nn.Conv2d, SyncBatchInstanceNorm, SyncBatchInstanceNorm]
    assert [type(m) for m in plugin.revert(model)] == [nn.Conv2d, nn.BatchNorm2d, BatchInstanceNorm2d]


# --- the CLI under DDP --------------------------------------------------------------------------------

class RecordNormLayers(pl.Callback):
    """Given to the CLI run below: each rank writes which norm classes its model trains with."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        classes = sorted({type(m).__name__ for m in pl_module.modules()
                          if isinstance(m, nn.modules.batchnorm._BatchNorm)})
        world = dist.get_world_size() if dist.is_initialized() else 1
        pooled = sorted({m.synchronized for m in pl_module.modules() if isinstance(m, GroupSynced)})
        Path(trainer.default_root_dir, f"norms-rank{trainer.global_rank}.json").write_text(
            json.dumps({"classes": classes, "world": world, **({"pooled": pooled} if pooled else {})}))


def test_cli_sync_batchnorm_keeps_bin_on_cpu_ddp(tmp_path: Path) -> None:
    """``--trainer.sync_batchnorm true`` trains BIN synchronized (gloo), not Lightning's SyncBatchNorm."""
    command = [sys.executable, "-m", "dabin", "fit", "-c", str(DEMO / "mixed.yaml"), "--trainer.accelerator", "cpu",
               "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.sync_batchnorm", "true",
               "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
               "--data.batch_size", "8", "--trainer.default_root_dir", str(tmp_path),
               "--trainer.callbacks+=tests.nn.test_sync.RecordNormLayers"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    for rank in range(2):
        seen = json.loads((tmp_path / f"norms-rank{rank}.json").read_text())
        assert seen == {"classes": ["SyncBatchInstanceNorm"], "world": 2}
    # Saved while training (layers synchronized): the gates are in the state dict.
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert sum(key.endswith(".gate") for key in state) >= 20
    # Reverted to BIN after fit: the summary found BIN layers, and their gates trained.
    with (tmp_path / "gates.csv").open() as f:
        gates = [float(row["gate"]) for row in csv.DictReader(f)]
    assert gates and min(gates) < 1.0


def test_plugin_names_the_lab_layers_it_leaves_unsynchronized() -> None:
    from dabin.nn import convert_norm

    def model(norm: str) -> nn.Module:
        return convert_norm(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1),
                                          nn.BatchNorm2d(4)), norm)

    class FusedBatchNorm(nn.BatchNorm2d):  # someone else's BatchNorm subclass: not dabin's to rewrite
        pass

    with pytest.warns(UserWarning, match="sync_batchnorm: FusedBatchNorm layers are not synchronized"):
        SyncNorm().apply(nn.Sequential(nn.Conv2d(3, 4, 1), FusedBatchNorm(4), nn.BatchNorm2d(4)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # BN, BIN and the layers that pool their own statistics: nothing to say
        SyncNorm().apply(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
        for norm in ("switchable", "transnorm"):
            SyncNorm().apply(model(norm))
        SyncNorm().apply(resnet18(norm="ibn_a", width=4))


def test_convert_switches_the_lab_layers_synchronization_on_and_revert_off() -> None:
    model = resnet18(norm="switchable", width=4)
    keys = list(model.state_dict())
    layers = [m for m in model.modules() if isinstance(m, SwitchNorm2d)]
    assert layers and not any(m.synchronized for m in layers)
    group = object()  # any process group object; nothing is exchanged outside a distributed run
    convert_sync_norm(model, group)  # type: ignore[arg-type]
    assert all(m.synchronized and m.sync_group is group for m in layers)
    assert [m for m in model.modules() if isinstance(m, SwitchNorm2d)] == layers  # the same objects
    assert list(model.state_dict()) == keys and layers[0].batch_group() is None  # not a distributed run
    revert_sync_norm(model)
    assert not any(m.synchronized or m.sync_group is not None for m in layers)


def test_cli_sync_batchnorm_pools_transnorm_per_domain_on_cpu_ddp(tmp_path: Path) -> None:
    """DANN with TransNorm under DDP: every TransNorm layer pools each domain over both processes."""
    command = [sys.executable, "-m", "dabin", "fit", "-c", str(DEMO / "dann.yaml"), "--model.norm", "transnorm",
               "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
               "--trainer.sync_batchnorm", "true", "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
               "--trainer.limit_test_batches", "1", "--model.evaluation_points", "0", "--data.batch_size", "8",
               "--trainer.default_root_dir", str(tmp_path), "--trainer.callbacks+=tests.nn.test_sync.RecordNormLayers"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "not synchronized" not in result.stderr
    for rank in range(2):
        seen = json.loads((tmp_path / f"norms-rank{rank}.json").read_text())
        # The bottleneck's BatchNorm1d is synchronized as BIN with ρ = 1; the backbone's layers pool themselves.
        assert seen == {"classes": ["SyncBatchInstanceNorm", "TransNorm2d"], "world": 2, "pooled": [True]}
    assert json.loads((tmp_path / "metrics.json").read_text())["norm"] == "transnorm"
