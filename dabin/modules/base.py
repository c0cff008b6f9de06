"""What the LightningModules share: per-domain evaluation, BIN gate training, a finite-loss guard.

A task is a :class:`~pytorch_lightning.LightningModule` around a :func:`~dabin.models.resnet18`
backbone. Subclasses implement four small template methods: :meth:`DomainModule.forward` (images to
class logits), ``training_step``, :meth:`DomainModule.param_groups` (parameter groups before the gate
rule is applied) and :meth:`DomainModule.lr_lambda` (the schedule, a function of the step).

Evaluation follows the data module: each validation/test loader is one evaluated set (a domain,
or a split of one), named by the data module's ``val_names``/``eval_names``; accuracy is logged as
``val/acc/<name>``, ``test/acc/<name>`` and the unweighted mean over names as ``.../acc/avg``; the
mean class accuracy of each test set (:meth:`~dabin.record.PerClass.mean_accuracy`, VisDA-2017's
metric) as ``test/class_acc/<name>``. After testing, :attr:`DomainModule.test_results` holds each
set's :class:`~dabin.record.TestResult` as ``metrics.json`` stores it: ``{name: {"accuracy": %,
"n": images, "class_accuracy": %, "per_class": {"classes", "accuracy", "n", "correct"}}}``.
"""

from __future__ import annotations

import math
from typing import Any, get_args

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from dabin.errors import DabinError
from datamodules import DomainDataModule
from dabin.models import WeightsArg, build_backbone
from dabin.record.metrics import PerClass, TestResult
from dabin.nn import (GATE_LR_BASES, NORM_SPECS, GateLrBase, NormName, bin_param_groups, clamp_gates_,
                      insert_mixstyle)
from dabin.nn.mixstyle import MixStyleMode

__all__ = ["ClassTally", "DomainModule", "NonFiniteLossError", "lab_backbone"]

Batch = tuple[Tensor, Tensor, Tensor]  # images, labels, domain ids


def lab_backbone(name: str, *, norm: NormName, mixstyle: MixStyleMode, mixstyle_p: float, mixstyle_alpha: float,
                 weights: WeightsArg, small_input: bool, width: int) -> tuple[nn.Module, MixStyleMode]:
    """A module's backbone with its norm and MixStyle (:func:`~dabin.models.build_backbone`, :func:`~dabin.nn.insert_mixstyle`).

    ``norm: mixstyle`` is BatchNorm with MixStyle (``random`` unless ``mixstyle`` says otherwise),
    inserted with the module's ``p`` and ``alpha`` rather than the builder's defaults.

    Returns:
        The backbone and the MixStyle mode it got.

    Raises:
        DabinError: An unknown ``mixstyle``.
    """
    if mixstyle not in get_args(MixStyleMode):
        raise DabinError(f"unknown mixstyle {mixstyle!r}; expected one of {', '.join(get_args(MixStyleMode))}")
    with_mixstyle = NORM_SPECS[norm].mixstyle
    mix: MixStyleMode = "random" if with_mixstyle and mixstyle == "off" else mixstyle
    backbone = build_backbone(name, norm="bn" if with_mixstyle else norm, weights=weights, small_input=small_input,
                              width=width)
    if mix != "off":
        insert_mixstyle(backbone, p=mixstyle_p, alpha=mixstyle_alpha, mix=mix)
    return backbone, mix


class ClassTally(Metric):
    """Images and correct top-1 predictions per true class, summed over batches and processes.

    States are count vectors reduced by sum, so under DDP every process computes the tallies of the
    whole set (as :class:`~torchmetrics.classification.MulticlassAccuracy` does for the accuracy).
    torchmetrics' own ``average="macro"`` is not used: it averages over every class that is a
    target *or a prediction*, so a class absent from the set but predicted counts as 0 %, while
    the mean class accuracy averages over the classes present only
    (:meth:`~dabin.record.PerClass.mean_accuracy`).

    Args:
        num_classes: Number of classes.
    """

    full_state_update = False
    total: Tensor
    correct: Tensor

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.add_state("total", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("correct", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, labels: Tensor) -> None:
        """Count one batch: logits ``(B, C)`` (top-1 is the prediction) and labels ``(B,)``."""
        hits = labels[logits.argmax(dim=1) == labels]
        self.total += torch.bincount(labels, minlength=self.num_classes)
        self.correct += torch.bincount(hits, minlength=self.num_classes)

    def compute(self) -> tuple[Tensor, Tensor]:
        """Images and correct predictions per class, ``(C,)`` each."""
        return self.total, self.correct


class NonFiniteLossError(DabinError):
    """The training loss became NaN or infinite; the message names the step."""


class DomainModule(pl.LightningModule):
    """Base of :class:`~dabin.modules.MixedDomainClassifier` and :class:`~dabin.modules.TransferModule`.

    Args:
        num_classes: Number of classes (linked from the data module by the CLI).
        lr: Base learning rate of the SGD optimizer.
        momentum: SGD momentum.
        weight_decay: Weight decay (never applied to BIN gates).
        gate_lr_mult: BIN gates train at ``gate_lr_mult ×`` a rate (Section 4 of the paper: 10).
        gate_lr_base: What ``gate_lr_mult`` multiplies: ``"group"``, the rate of the gate's own
            parameter group (a pretrained backbone's, in DANN), or ``"base"``, ``lr``; see
            :func:`~dabin.nn.bin_param_groups` for why ``"group"`` is the default.
    """

    #: The method's name as runs record it (``mixed``, or a transfer method's registry name).
    method_name: str
    #: How the domains share normalization statistics (``joint``: one batch of all domains).
    domain_stats: str = "joint"

    def __init__(self, num_classes: int, lr: float, momentum: float, weight_decay: float,
                 gate_lr_mult: float, gate_lr_base: GateLrBase) -> None:
        super().__init__()
        if num_classes < 2:
            raise DabinError(f"num_classes must be at least 2, got {num_classes}")
        if lr <= 0 or not math.isfinite(lr):
            raise DabinError(f"lr must be a positive number, got {lr}")
        if gate_lr_base not in GATE_LR_BASES:
            raise DabinError(f"unknown gate_lr_base {gate_lr_base!r}; expected one of {', '.join(GATE_LR_BASES)}")
        self.num_classes = num_classes
        self.test_results: dict[str, dict[str, Any]] = {}
        self._eval_metrics = nn.ModuleDict()
        self._eval_names: dict[str, list[str]] = {}
        self._class_names: list[str] = [str(index) for index in range(num_classes)]

    # -- template methods ---------------------------------------------------------------------

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)`` of images ``(B, 3, H, W)``."""
        raise NotImplementedError

    def evaluation_logits(self, images: Tensor, domains: Tensor) -> Tensor:
        """Class logits for evaluation, knowing each image's dataset domain index ``(B,)``.

        The forward pass by default; a model with per-domain branches routes each image by its domain.
        """
        return self(images)

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups (``params`` and optionally ``lr``) before the gate rule."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def lr_lambda(self, step: int) -> float:
        """Learning-rate factor at optimizer step ``step`` (applied to every group)."""
        return 1.0

    def batch_composition(self, batch_size: int) -> dict[str, int]:
        """Images of each kind in one training step on one device, for a data-module ``batch_size``."""
        return {"images": batch_size}

    # -- optimization -------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        """SGD over :meth:`param_groups`, gates at ``gate_lr_mult ×`` their base rate, without weight decay.

        The schedule is a :class:`~torch.optim.lr_scheduler.LambdaLR` stepped every optimizer step;
        its step count is saved in checkpoints, so a resumed run continues it exactly.
        """
        hp = self.hparams
        groups = bin_param_groups(self, self.param_groups(), lr=hp.lr, weight_decay=hp.weight_decay,
                                  gate_lr_mult=hp.gate_lr_mult, gate_lr_base=hp.gate_lr_base)
        optimizer = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_lambda)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Step, then clip the gates to [0, 1] (eq. 4): after every real step, accumulation included."""
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        clamp_gates_(self)

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run, from the trainer (``max_steps`` or epochs × batches)."""
        total = self.trainer.estimated_stepping_batches
        return int(total) if math.isfinite(total) else 0

    def check_finite(self, loss: Tensor, what: str = "loss") -> None:
        """Stop the run with one clear line if ``loss`` is NaN or infinite.

        Raises:
            NonFiniteLossError: Naming the value, the step and the epoch.
        """
        if not bool(torch.isfinite(loss.detach())):
            raise NonFiniteLossError(
                f"training {what} became {loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                "stopping: lower --model.lr or check the data")

    # -- evaluation ---------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Build the metrics of every evaluated set (accuracy, images, per-class tallies), named after the loaders."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        # A DomainDataModule declares its loaders' names; any other data module's sets are unnamed.
        test_names = list(datamodule.eval_names) if isinstance(datamodule, DomainDataModule) else []
        val_names = list(datamodule.val_names) if isinstance(datamodule, DomainDataModule) else []
        if isinstance(datamodule, DomainDataModule) and len(datamodule.class_names) == self.num_classes:
            self._class_names = list(datamodule.class_names)
        for split, names in (("val", val_names), ("test", test_names)):
            self._eval_names[split] = names
            if split not in self._eval_metrics or len(self._eval_metrics[split]) != len(names):
                self._eval_metrics[split] = nn.ModuleList(
                    MetricCollection({"acc": MulticlassAccuracy(self.num_classes, average="micro"),
                                      "n": SumMetric(), "classes": ClassTally(self.num_classes)}) for _ in names)

    def _names(self, split: str) -> list[str]:
        return self._eval_names.get(split) or []

    def _evaluate(self, batch: Batch, split: str, dataloader_idx: int) -> Tensor:
        images, labels, domains = batch
        logits = self.evaluation_logits(images, domains)
        names = self._names(split)
        if dataloader_idx >= len(names):
            raise DabinError(f"{split} loader {dataloader_idx} has no name; the data module lists {names}")
        metrics = self._eval_metrics[split][dataloader_idx]
        metrics["acc"].update(logits, labels)
        metrics["n"].update(torch.tensor(float(labels.numel()), device=logits.device))
        metrics["classes"].update(logits, labels)
        return logits

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Accumulate accuracy on one validation set."""
        self._evaluate(batch, "val", dataloader_idx)

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Accumulate accuracy on one test set."""
        self._evaluate(batch, "test", dataloader_idx)

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        """Predicted class and its probability for every image, with the true label and domain."""
        images, labels, domains = batch
        probabilities = self.evaluation_logits(images, domains).softmax(dim=1)
        confidence, predicted = probabilities.max(dim=1)
        return {"prediction": predicted, "confidence": confidence, "label": labels, "domain": domains}

    def _log_accuracies(self, split: str) -> dict[str, TestResult]:
        results: dict[str, TestResult] = {}
        for name, metrics in zip(self._names(split), self._eval_metrics[split]):
            count = int(metrics["n"].compute().item())
            if count == 0:  # a sanity-check or limited run that never reached this loader
                metrics.reset()
                continue
            accuracy = 100.0 * float(metrics["acc"].compute())
            total, correct = metrics["classes"].compute()
            per_class = PerClass(classes=tuple(self._class_names), n=tuple(int(v) for v in total.tolist()),
                                 correct=tuple(int(v) for v in correct.tolist()))
            results[name] = TestResult(accuracy=accuracy, n=count, class_accuracy=per_class.mean_accuracy(),
                                       per_class=per_class)
            # torchmetrics has already reduced across processes; sync_dist only averages equal values.
            self.log(f"{split}/acc/{name}", accuracy, add_dataloader_idx=False, sync_dist=True)
            class_accuracy = results[name].class_accuracy
            if split == "test" and class_accuracy is not None:
                self.log(f"test/class_acc/{name}", class_accuracy, add_dataloader_idx=False, sync_dist=True)
            metrics.reset()
        if results:
            average = sum(r.accuracy for r in results.values()) / len(results)
            self.log(f"{split}/acc/avg", average, add_dataloader_idx=False, prog_bar=True, sync_dist=True)
        return results

    def on_validation_epoch_end(self) -> None:
        """Log ``val/acc/<name>`` and ``val/acc/avg``."""
        self._log_accuracies("val")

    def on_test_epoch_end(self) -> None:
        """Log ``test/acc/<name>``, ``test/class_acc/<name>``, ``test/acc/avg``; keep them in :attr:`test_results`."""
        self.test_results = {name: result.to_json() for name, result in self._log_accuracies("test").items()}
