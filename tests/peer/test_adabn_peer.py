"""AdaBN against its paper and a published implementation, and through the TransferModule.

Reference: Y. Li, N. Wang, J. Shi, J. Liu, X. Hou, "Revisiting Batch Normalization For Practical
Domain Adaptation" (ICLR 2017 workshop; Pattern Recognition 80, 2018, "Adaptive Batch
Normalization for practical domain adaptation"), Algorithm 1::

    for neuron j in DNN do
        concatenate neuron responses on all images of target domain t: x_j = [..., x_j(m), ...]
        compute the mean and variance of the target domain: mu_j^t = E(x_j^t), sigma_j^t = sqrt(Var(x_j^t))
    end for
    for neuron j in DNN, testing image m in target domain do
        compute BN output y_j(m) := gamma_j (x_j(m) - mu_j^t) / sigma_j^t + beta_j
    end for

Implementation transcribed: pytorch-adapt (K. Musgrave), ``src/pytorch_adapt/layers/
adaptive_batch_norm.py``: ``PopulationBatchNorm2d`` accumulates its input's per-channel count,
mean and M2 with Welford's update (``update``) while in train mode, always normalizes with
``final_mean``/``final_var``, and ``finalize`` turns the aggregate into them;
``set_bn_layer_to_train`` puts one layer at a time in train mode, so the data is run once per layer,
each layer collecting with the layers before it already finalized. (The Transfer-Learning-Library
ships no AdaBN.) One change, to match torch's convention: pytorch-adapt finalizes ``final_var`` to
the biased ``M2 / count`` and normalizes with it; BatchNorm's ``running_var`` (dabin's too) is the
unbiased ``M2 / (count - 1)`` (pytorch-adapt's ``sampleVariance``), which is what is kept here.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import Tensor, nn

from dabin.errors import DabinError
from dabin.modules import TransferModule
from dabin.nn import recalibrate_norm_stats
from datamodules import TransferDataModule


# --- pytorch-adapt's PopulationBatchNorm2d, transcribed (see the module docstring) -------------------

def _update(aggregate: tuple[int, Tensor, Tensor], new_values: Tensor) -> tuple[int, Tensor, Tensor]:
    new_values = new_values.permute(0, 2, 3, 1).flatten(start_dim=0, end_dim=2)
    count, mean, m2 = aggregate
    count += new_values.shape[0]
    delta = new_values - mean
    mean += torch.sum(delta / count, dim=0)
    delta2 = new_values - mean
    m2 += torch.sum(delta * delta2, dim=0)
    return count, mean, m2


def _finalize(aggregate: tuple[int, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    count, mean, m2 = aggregate
    if count < 2:
        raise ValueError("Can't finalize when count is less than 2")
    return mean, m2 / count, m2 / (count - 1)


class _PeerPopulationBatchNorm2d(nn.BatchNorm2d):
    def __init__(self, num_features: int, init_mean: Tensor, init_var: Tensor) -> None:
        super().__init__(num_features, momentum=None, track_running_stats=True, dtype=init_mean.dtype)
        self.total_n = 0
        self.register_buffer("M2", torch.zeros(num_features, dtype=init_mean.dtype))
        self.register_buffer("final_mean", init_mean.clone())
        self.register_buffer("final_var", init_var.clone())

    def finalize(self) -> None:
        try:
            # The one change: the unbiased variance (pytorch-adapt: the biased, ``[1]``).
            self.final_mean, _, self.final_var = _finalize((self.total_n, self.running_mean, self.M2))
        except ValueError:
            pass

    def forward(self, input: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():
                self.total_n, self.running_mean, self.M2 = _update((self.total_n, self.running_mean, self.M2), input)
        mean, var = self.final_mean, self.final_var
        input = (input - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        return input * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def _peer_adabn(model: nn.Module, batches: list[Tensor]) -> list[_PeerPopulationBatchNorm2d]:
    """pytorch-adapt's protocol: per layer, ``set_bn_layer_to_train``, a pass over the data, ``finalize_bn``."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            peer = _PeerPopulationBatchNorm2d(child.num_features, child.running_mean, child.running_var)
            peer.weight.data.copy_(child.weight.data)
            peer.bias.data.copy_(child.bias.data)
            setattr(model, name, peer)
    layers = [m for m in model.modules() if isinstance(m, _PeerPopulationBatchNorm2d)]
    model.eval()
    for layer_num in range(len(layers)):
        for i, layer in enumerate(layers):
            layer.train(i == layer_num)
        with torch.no_grad():
            for x in batches:
                model(x)
        for layer in layers:
            layer.finalize()
    return layers


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.Conv2d(5, 4, 3),
                        nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).double()
    for index in (1, 4):  # source statistics and affine weights, nothing like the target's
        net[index].running_mean.uniform_(-2.0, 2.0)
        net[index].running_var.uniform_(0.5, 4.0)
        net[index].weight.data.uniform_(0.5, 1.5)
        net[index].bias.data.uniform_(-0.5, 0.5)
    return net


def test_population_statistics_match_pytorch_adapts_adabn_on_class_sorted_images() -> None:
    generator = torch.Generator().manual_seed(3)
    offsets = torch.tensor([[4.0, -4.0, 1.0], [-3.0, 5.0, 0.0], [0.0, -1.0, -6.0]], dtype=torch.float64)
    images = torch.cat([offsets[c].view(1, 3, 1, 1) + torch.randn(16, 3, 7, 7, generator=generator,
                                                                   dtype=torch.float64) for c in range(3)])
    batches = list(images.split(8))  # in class order: each batch one or two classes
    ours = _net()
    assert recalibrate_norm_stats(ours, batches) == 2
    peers = _peer_adabn(_net(), batches)
    for layer, peer in zip((ours[1], ours[4]), peers):
        torch.testing.assert_close(layer.running_mean, peer.final_mean, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(layer.running_var, peer.final_var, rtol=1e-10, atol=0.0)


# --- through the TransferModule: method adabn before testing -------------------------------------

@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two domains, three classes of 6 images; each class its own brightness (between-class variance)."""
    root = tmp_path_factory.mktemp("adabn") / "tree"
    rng = np.random.default_rng(0)
    for d, domain in enumerate(("src", "tgt")):
        for c, name in enumerate(("a", "b", "c")):
            folder = root / domain / name
            folder.mkdir(parents=True)
            for i in range(6):
                pixels = np.clip(40 + 80 * c + 20 * d + rng.normal(0, 15, (16, 16, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def _module(**overrides: object) -> TransferModule:
    torch.manual_seed(0)
    options: dict[str, object] = {"num_classes": 3, "norm": "bin", "small_input": True, "width": 8,
                                  "bottleneck_dim": 8, "hidden_dim": 16, "evaluation_points": 0, "method": "adabn",
                                  **overrides}
    return TransferModule(**options)  # type: ignore[arg-type]


def _tested(module: TransferModule, tree: Path, root: Path) -> TransferDataModule:
    data = TransferDataModule(root=str(tree), task="src->tgt", image_size=16, batch_size=8, num_workers=0)
    trainer = pl.Trainer(default_root_dir=root, accelerator="cpu", devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.test(module, datamodule=data, verbose=False)
    return data


def _norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_transfer_module_tests_with_the_targets_population_statistics(tree: Path, tmp_path: Path) -> None:
    module = _module()
    reference = copy.deepcopy(module).double().eval()  # float64: the reference's rounding is negligible
    data = _tested(module, tree, tmp_path)
    images = torch.cat([batch[0] for batch in data.target_dataloader()]).double()  # the whole target train split
    # Layer by layer in definition order (each ResNet norm layer's input depends only on earlier ones),
    # each from one forward of the whole split with the layers before it already set.
    with torch.no_grad():
        for layer in _norms(reference):
            captured: list[Tensor] = []
            handle = layer.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
            reference(images)
            handle.remove()
            x = captured[0]
            dims = [0, *range(2, x.dim())]
            layer.running_mean.copy_(x.mean(dim=dims))
            layer.running_var.copy_(x.var(dim=dims, correction=1))
    layers, expected = _norms(module), _norms(reference)
    assert len(layers) > 10  # the backbone's BIN layers and the bottleneck's BatchNorm1d
    for layer, ref in zip(layers, expected):
        for name in ("running_mean", "running_var"):
            actual, wanted = getattr(layer, name).double(), getattr(ref, name)
            assert float((actual - wanted).norm() / wanted.norm()) <= 1e-4, name


def test_transfer_module_batch_average_option_and_bad_values(tree: Path, tmp_path: Path) -> None:
    # BatchNorm here: the option's path is the same for BIN (covered in tests/nn), and BN is cheaper on CPU.
    population, averaged = _module(norm="bn"), _module(norm="bn", norm_stats_estimate="shuffled_batch_average")
    _tested(population, tree, tmp_path / "population")
    _tested(averaged, tree, tmp_path / "averaged")
    first = (_norms(population)[0].running_var, _norms(averaged)[0].running_var)
    assert not torch.allclose(*first, rtol=1e-3)  # batches of 8 miss part of the variance
    with pytest.raises(DabinError, match="unknown norm_stats_estimate 'exact'"):
        _module(norm_stats_estimate="exact")


def test_target_loader_is_in_file_order_or_shuffled_by_its_seed(tree: Path) -> None:
    data = TransferDataModule(root=str(tree), task="src->tgt", image_size=16, batch_size=4, num_workers=0)

    def labels(seed: int | None) -> list[int]:
        return torch.cat([batch[1] for batch in data.target_dataloader(shuffle_seed=seed)]).tolist()

    in_order = labels(None)
    assert in_order == sorted(in_order)  # grouped by class: what the population estimate is immune to
    shuffled = labels(0)
    assert shuffled != in_order and sorted(shuffled) == in_order
    assert labels(0) == shuffled and labels(1) != shuffled
