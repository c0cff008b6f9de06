"""Mixed-domain classification (Section 4.2 of the paper, Table 3).

One ResNet-18 is trained on the union of all domains and evaluated on each domain's share of the
held-out fold. Defaults are the paper's ImageNet policy with its initial rate: SGD, lr 0.01,
momentum 0.9, weight decay 1e-4, lr ÷ 10 at epochs 30 and 60 of 90 (batch 128 is the data
module's); BIN gates at 10× lr without weight decay, clipped to [0, 1] after every step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from dabin.errors import DabinError
from dabin.models import WeightsArg, build_backbone
from dabin.nn import NORM_SPECS, GateLrBase, NormName, check_norm
from dabin.modules.base import Batch, DomainModule
from dabin.schedules import step_decay_factor

__all__ = ["MixedDomainClassifier"]


class MixedDomainClassifier(DomainModule):
    """ResNet-18 (BN, IN, BN+IN or BIN) trained on all domains at once, evaluated per domain.

    Args:
        num_classes: Number of classes (linked from the data module by the CLI).
        norm: A name of :data:`dabin.nn.NORMS` but the per-domain ones (``dsbin``, ``transnorm``): a
            mixed batch is not split by domain here.
        backbone: ``resnet18`` (the paper's), another of torchvision's ResNet family (``resnet50``,
            ``resnext50_32x4d``, ``wide_resnet50_2``, ...; see :data:`dabin.models.RESNETS`) or the
            class path of any model whose classifier is ``fc``; its normalization layers become ``norm``.
        weights: None (random init), a torchvision weights name (``IMAGENET1K_V1``) or a state dict file.
        small_input: 3×3 stride-1 stem without max-pool, for tiny (e.g. 32-px) images.
        width: Channels of the first stage (64 is the standard ResNet-18; resnet18 only).
        lr: Initial learning rate.
        momentum: SGD momentum.
        weight_decay: Weight decay (not applied to gates).
        gate_lr_mult: Gate learning-rate multiplier.
        gate_lr_base: What the multiplier multiplies: ``group`` (the gate's own group's rate) or
            ``base`` (``lr``); recorded in ``metrics.json``.
        lr_milestones: Epochs after which the rate is divided by 10.
    """

    method_name = "mixed"

    def __init__(
        self,
        num_classes: int = 65,
        norm: NormName = "bin",
        backbone: str = "resnet18",
        weights: WeightsArg = None,
        small_input: bool = False,
        width: int = 64,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        gate_lr_mult: float = 10.0,
        gate_lr_base: GateLrBase = "group",
        lr_milestones: Sequence[int] = (30, 60),
    ) -> None:
        super().__init__(num_classes, lr, momentum, weight_decay, gate_lr_mult, gate_lr_base)
        if NORM_SPECS[check_norm(norm)].domains is not None:
            raise DabinError(f"norm {norm} keeps statistics per domain of a source -> target task; the mixed-domain "
                             "classifier trains on one batch of every domain (use a transfer task, or another norm)")
        if any(m < 0 for m in lr_milestones):
            raise DabinError(f"lr_milestones must be epochs >= 0, got {list(lr_milestones)}")
        self.save_hyperparameters()
        self.backbone = build_backbone(backbone, norm=norm, weights=weights, small_input=small_input, width=width)
        self.backbone.fc = nn.Linear(self.backbone.num_features, num_classes)  # torchvision's head, our classes

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)``."""
        return self.backbone(images)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Cross-entropy on a mixed-domain batch."""
        images, labels, _ = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        self.check_finite(loss)
        accuracy = (logits.argmax(1) == labels).float().mean() * 100
        self.log_dict({"train/loss": loss, "train/acc": accuracy}, prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def lr_lambda(self, step: int) -> float:
        """Step decay by epoch (the ImageNet policy), from the step count so resuming is exact."""
        batches = self.trainer.num_training_batches if self._trainer is not None else math.inf
        # Before the fit loop has measured the epoch (at construction) only step 0 is asked for.
        steps_per_epoch = max(1, int(batches) // self.trainer.accumulate_grad_batches) if math.isfinite(batches) else 1
        return step_decay_factor(step // steps_per_epoch, self.hparams.lr_milestones)
