"""Domain generalization (DomainBed's protocol): train on labelled domains, test on one never seen.

Architecture (DomainBed's ``Featurizer`` + linear ``Classifier``)::

    images (B, 3, H, W) ─ ResNet (any norm of the lab) ─ f (B, F) ─ dropout ─ Linear ─ (B, C)

Each step takes one batch of ``B`` labelled images from each of the ``k`` training domains
(:class:`~datamodules.generalization.GeneralizationDataModule`), passes them through the network as
DomainBed's implementation of the method does (``domain_passes``: ERM and DANN pass the
concatenation once, so the normalization layers see every training domain; CORAL, MMD and Group
DRO pass each domain's batch on its own), splits features, logits and labels by domain and hands them to the method
(:mod:`dabin.methods.generalization`), which returns the whole objective: ERM's cross-entropy, or
CORAL, MMD, Group DRO, domain-adversarial training over the ``k`` domains.

**Domain-specific branches** (``norm: dsbin``, DSON's arrangement; Seo et al., ECCV 2020): every
BIN layer keeps ``k`` sets of running statistics and gates, one per training domain
(:func:`dabin.nn.domain_stats.branch`), every other weight shared. Each training domain's batch
passes through its own branch; an image of a training domain is evaluated through its branch, an
image of a domain never seen through all ``k``, their class probabilities averaged, as the DSON
paper describes its inference (``p(y|x) = 1/k Σ_d p_d(y|x)``; its code was not read here);
:meth:`GeneralizationModule.evaluation_logits` returns the log of that mean. Where dabin differs
from DSON: see :mod:`dabin.nn.domain_stats`.

**Evaluation points.** ``evaluation_points`` times, evenly over training (the last at its end), the
model's accuracy on every evaluated set (each training domain's held-out 20 %, each unseen domain's
80/20 parts) is recorded by step (``metrics.json``'s ``accuracy_points``), so the report can apply
DomainBed's model-selection rules, which choose a step as well as a hyper-parameter setting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from dabin.errors import DabinError
from dabin.methods import GENERALIZATION_METHODS, DomainOutputs, GeneralizationLoss, build_generalization_method
from dabin.models import WeightsArg
from dabin.modules.base import Batch, DomainModule, lab_backbone
from dabin.nn import NORM_SPECS, GateLrBase, NormName, add_domain_stats, bin_param_groups, check_norm
from dabin.nn.domain_stats import branch, domain_slots
from dabin.nn.mixstyle import MixStyleMode
from dabin.record import AccuracyPoint, TestResult
from dabin.schedules import progress
from dabin.selection.probe import evaluation_steps
from datamodules.generalization import GeneralizationDataModule

__all__ = ["GeneralizationMethodName", "GeneralizationModule", "OptimizerName"]

#: A DG method by registry name (:data:`dabin.methods.GENERALIZATION_METHODS`), with its defaults.
GeneralizationMethodName = Literal[GENERALIZATION_METHODS]  # type: ignore[valid-type]
#: A DG loss class with options; the module calls it with its feature width, classes and domains.
GeneralizationFactory = Callable[[int, int, int], GeneralizationLoss]
#: The optimizer: DomainBed's Adam, or SGD with momentum as dabin's other modules.
OptimizerName = Literal["adam", "sgd"]
#: How a step passes through the network: as the method's DomainBed implementation, or forced.
DomainPasses = Literal["method", "joint", "separate"]


class GeneralizationModule(DomainModule):
    """A DG model: a backbone with any norm of the lab, a linear classifier, a DG method's objective.

    Args:
        num_classes: Number of classes (linked from the data module by the CLI).
        num_domains: Training domains; None: the data module's ``num_train_domains``, read when the
            trainer sets the model up (the method's domain-sized parts are built then).
        branch_domains: With ``norm: dsbin``, the dataset domain index of each training domain's
            branch, in order; None: the data module's (``train_indices``), read when the trainer
            sets the model up. Without it every evaluated image goes through all branches.
        norm: A name of :data:`dabin.nn.NORMS` but ``transnorm`` (its attention compares a source's
            statistics with a target's); ``dsbin`` gives each training domain its own branch (see
            the module docstring).
        mixstyle: MixStyle after layer1–3 in training: ``off``, ``random``, or ``crossdomain``
            (partners from the other half of the batch: two training domains only, always passed
            jointly, whatever ``domain_passes`` says).
        mixstyle_p: Probability that a MixStyle layer mixes a batch (its paper's 0.5).
        mixstyle_alpha: λ ~ Beta(α, α) (its paper's 0.1).
        backbone: ``resnet18`` or another name of :data:`dabin.models.RESNETS` (or a class path).
        weights: None (random init), a torchvision weights name or a state dict file.
        small_input: 3×3 stride-1 stem without max-pool, for tiny images.
        width: Channels of the first stage (resnet18 only).
        dropout: Dropout on the features before the classifier (DomainBed's ``resnet_dropout``: 0).
        method: A name of :data:`dabin.methods.GENERALIZATION_METHODS` (``erm``, ``coral``, ``mmd``,
            ``group_dro``, ``dg_dann``) with its defaults, or a loss class with options.
        domain_passes: ``method`` (as the method's DomainBed implementation:
            :attr:`~dabin.methods.generalization.GeneralizationLoss.domain_passes`), ``joint`` (one
            pass of the concatenated batch) or ``separate`` (a pass per training domain).
        optimizer: ``adam`` (DomainBed's) or ``sgd`` (momentum ``momentum``); the rate is constant,
            as DomainBed's.
        lr: Learning rate (DomainBed: 5e-5 with Adam).
        momentum: SGD momentum (unused by Adam).
        weight_decay: Weight decay (DomainBed: 0); never on BIN gates.
        gate_lr_mult: Gate learning-rate multiplier (×10 in the BIN paper).
        gate_lr_base: What the multiplier multiplies (``group`` or ``base``).
        evaluation_points: How many times, evenly over training, to record the accuracy on every
            evaluated set (model selection reads them); at least 1.
    """

    domain_stats = "joint"

    def __init__(
        self,
        num_classes: int = 65,
        num_domains: int | None = None,
        branch_domains: list[int] | None = None,
        norm: NormName = "bn",
        mixstyle: MixStyleMode = "off",
        mixstyle_p: float = 0.5,
        mixstyle_alpha: float = 0.1,
        backbone: str = "resnet18",
        weights: WeightsArg = None,
        small_input: bool = False,
        width: int = 64,
        dropout: float = 0.0,
        method: GeneralizationMethodName | GeneralizationFactory = "erm",
        domain_passes: DomainPasses = "method",
        optimizer: OptimizerName = "adam",
        lr: float = 5e-5,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        gate_lr_mult: float = 10.0,
        gate_lr_base: GateLrBase = "group",
        evaluation_points: int = 5,
    ) -> None:
        super().__init__(num_classes, lr, momentum, weight_decay, gate_lr_mult, gate_lr_base)
        check_norm(norm)
        if NORM_SPECS[norm].domains == "source_then_target":
            raise DabinError(f"norm {norm} compares a source's statistics with a target's; domain generalization has "
                             "no target in training (use dsbin for per-domain statistics)")
        if norm == "dsbin" and domain_passes == "joint":
            raise DabinError("norm dsbin passes each training domain through its own branch; domain_passes joint "
                             "would pass them together (leave domain_passes at method)")
        if norm == "dsbin" and mixstyle == "crossdomain":
            raise DabinError("norm dsbin passes each training domain through its own branch; mixstyle crossdomain "
                             "mixes two domains in one pass (use mixstyle random)")
        if num_domains is not None and num_domains < 1:
            raise DabinError(f"num_domains must be at least 1 training domain, got {num_domains}")
        if branch_domains is not None and num_domains is not None and len(branch_domains) != num_domains:
            raise DabinError(f"branch_domains {branch_domains} names {len(branch_domains)} domains; "
                             f"num_domains is {num_domains}")
        if not 0.0 <= dropout < 1.0:
            raise DabinError(f"dropout must be in [0, 1), got {dropout}")
        if domain_passes not in get_args(DomainPasses):
            raise DabinError(f"unknown domain_passes {domain_passes!r}; expected one of "
                             f"{', '.join(get_args(DomainPasses))}")
        if optimizer not in get_args(OptimizerName):
            raise DabinError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(get_args(OptimizerName))}")
        if evaluation_points < 1:
            raise DabinError(f"evaluation_points must be >= 1 (model selection reads them), got {evaluation_points}")
        self.save_hyperparameters(ignore=["method"])
        self.backbone, self.mixstyle = lab_backbone(backbone, norm=norm, mixstyle=mixstyle, mixstyle_p=mixstyle_p,
                                                    mixstyle_alpha=mixstyle_alpha, weights=weights,
                                                    small_input=small_input, width=width)
        if num_domains is not None:
            self._check_crossdomain(num_domains)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.backbone.num_features, num_classes)
        self._method = method
        self.method_name = method if isinstance(method, str) else f"{method.__module__}.{method.__qualname__}"
        self.objective: GeneralizationLoss | None = None
        if num_domains is not None:
            self._build_objective(num_domains)
        self.hparams["method"] = self.method_name  # by name, so a checkpoint rebuilds it
        self.accuracy_records: list[AccuracyPoint] = []
        #: Seconds spent scoring evaluation points (part of the fit's time).
        self.evaluation_seconds = 0.0
        self._evaluation_steps: frozenset[int] = frozenset()

    def _check_crossdomain(self, num_domains: int) -> None:
        if self.mixstyle == "crossdomain" and num_domains != 2:
            raise DabinError(f"mixstyle crossdomain swaps the styles of the two halves of a batch; with {num_domains} "
                             "training domains use mixstyle random")

    @property
    def branched(self) -> bool:
        """Whether each training domain has its own branch (``norm: dsbin``)."""
        return self.hparams.norm == "dsbin"

    def _build_objective(self, num_domains: int) -> None:
        if self.branched:  # before the optimizer and any checkpoint: the slots are parameters and buffers
            add_domain_stats(self.backbone, gates=True, slots=domain_slots(num_domains))
        features = self.backbone.num_features
        if isinstance(self._method, str):
            self.objective = build_generalization_method(self._method, features, self.num_classes, num_domains)
        else:
            self.objective = self._method(features, self.num_classes, num_domains)
            self.method_name = self.objective.method_name
        self.hparams["num_domains"] = num_domains  # checkpoints rebuild the same parts

    def configure_model(self) -> None:
        """Build the method's parts for the data module's training domains (when ``num_domains`` was None).

        Raises:
            DabinError: The data module is not a DG one, or has another number of training domains.
        """
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if not isinstance(datamodule, GeneralizationDataModule):
            if self.objective is None:
                raise DabinError("a GeneralizationModule needs a GeneralizationDataModule (or num_domains given)")
            return
        wanted = datamodule.num_train_domains
        # Which dataset domain index is which branch: a checkpoint routes its evaluation images so.
        given = self.hparams.branch_domains
        if given is not None and list(given) != list(datamodule.train_indices):
            raise DabinError(f"the model's branches are for domains {list(given)}; the data module trains on "
                             f"{list(datamodule.train_indices)} ({datamodule.source_name})")
        self.hparams["branch_domains"] = list(datamodule.train_indices)
        if self.objective is None:
            self._check_crossdomain(wanted)
            self._build_objective(wanted)
        elif self.hparams.num_domains != wanted:
            raise DabinError(f"the model was built for num_domains={self.hparams.num_domains}; the data module "
                             f"trains on {wanted} domains ({datamodule.source_name})")

    def embed(self, images: Tensor) -> Tensor:
        """The features ``(B, F)`` the classifier reads (DomainBed's featurizer output)."""
        return self.backbone(images)

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)`` (with branches: the first training domain's)."""
        return self.classifier(self.dropout(self.embed(images)))

    def evaluation_logits(self, images: Tensor, domains: Tensor) -> Tensor:
        """Logits; with branches, a training domain's images through its branch, others through all.

        For an image of no training domain the result is ``log(1/k Σ_d softmax(z_d))``, the log of
        the branches' mean class probabilities (DSON's prediction for an unseen domain).
        """
        if not self.branched:
            return self(images)
        known: list[int] = list(self.hparams.branch_domains or [])
        domains = domains.to(images.device)
        if not bool(torch.isin(domains, torch.tensor(known, device=images.device)).all()):
            branches = torch.stack([self._branch_logits(images, index)
                                    for index in range(self.hparams.num_domains)])  # (k, B, C)
            mixed = branches.logsumexp(dim=0) - math.log(len(branches))
            for index, domain in enumerate(known):
                rows = domains == domain
                mixed[rows] = branches[index][rows]
            return mixed
        # Only training domains' images (their held-out parts): each through its own branch alone.
        # In evaluation every row is normalized on its own, so a subset gives the same rows.
        routed = torch.empty(images.shape[0], self.num_classes, device=images.device)
        for index, domain in enumerate(known):
            rows = domains == domain
            if bool(rows.any()):
                routed[rows] = self._branch_logits(images[rows], index).to(routed.dtype)
        return routed

    def _branch_logits(self, images: Tensor, index: int) -> Tensor:
        """Branch ``index``'s class log-probabilities ``(B, C)``."""
        return self.classifier(self.dropout(self._branch_features(images, index))).log_softmax(dim=1)

    def param_groups(self) -> list[dict[str, Any]]:
        """Everything at ``lr`` (DomainBed trains featurizer, classifier and a method's heads alike)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam (DomainBed's) or SGD, at a constant rate; gates as :meth:`DomainModule.configure_optimizers` says."""
        if self.hparams.optimizer == "sgd":
            return super().configure_optimizers()
        hp = self.hparams
        groups = bin_param_groups(self, self.param_groups(), lr=hp.lr, weight_decay=hp.weight_decay,
                                  gate_lr_mult=hp.gate_lr_mult, gate_lr_base=hp.gate_lr_base)
        return {"optimizer": torch.optim.Adam(groups, lr=hp.lr, weight_decay=hp.weight_decay)}

    def batch_composition(self, batch_size: int) -> dict[str, int]:
        """``batch_size`` images from each training domain per step."""
        return {"images": batch_size * self.hparams.num_domains}

    def training_step(self, batch: dict[str, Batch], batch_idx: int) -> Tensor:
        """One step on ``{training domain: (x, y, d)}``: one joint pass, the method's objective."""
        parts = list(batch.values())
        if len(parts) != self.hparams.num_domains:
            raise DabinError(f"the batch has {len(parts)} training domains, the model was built for "
                             f"num_domains={self.hparams.num_domains}")
        assert self.objective is not None  # built by __init__ or configure_model
        sizes = [images.shape[0] for images, _, _ in parts]
        passes = self.hparams.domain_passes
        if self.branched:  # each domain through its own statistics and gates
            features = torch.cat([self._branch_features(images, index) for index, (images, _, _) in enumerate(parts)])
        elif (self.objective.domain_passes if passes == "method" else passes) == "joint" or self.mixstyle == "crossdomain":
            features = self.embed(torch.cat([images for images, _, _ in parts]))
        else:  # each domain normalized by its own batch statistics
            features = torch.cat([self.embed(images) for images, _, _ in parts])
        logits = self.classifier(self.dropout(features))
        outputs = DomainOutputs(features=tuple(features.split(sizes)), logits=tuple(logits.split(sizes)),
                                labels=tuple(labels for _, labels, _ in parts),
                                progress=progress(self.global_step, self.total_steps))
        loss, logs = self.objective(outputs)
        self.check_finite(loss)
        labels = torch.cat(outputs.labels)
        accuracy = (logits.argmax(1) == labels).float().mean() * 100
        self.log_dict({"train/loss": loss, "train/acc": accuracy}, prog_bar=True)
        self.log_dict({f"train/{key}": value for key, value in logs.items()})
        return loss

    def _branch_features(self, images: Tensor, index: int) -> Tensor:
        with branch(self.backbone, index):
            return self.embed(images)

    # -- evaluation points --------------------------------------------------------------------

    def on_fit_start(self) -> None:
        """The steps of the evaluation points, once the trainer knows the run's length."""
        super().on_fit_start()
        self._evaluation_steps = frozenset(evaluation_steps(self.total_steps, self.hparams.evaluation_points))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """At an evaluation point, record the accuracy on every evaluated set (first process only)."""
        datamodule = self.trainer.datamodule
        if self.global_step not in self._evaluation_steps or not isinstance(datamodule, GeneralizationDataModule):
            return
        if not self.trainer.is_global_zero or any(p.step == self.global_step for p in self.accuracy_records):
            return
        started = time.monotonic()
        was_training = self.training
        self.eval()
        try:
            # Forked: the loaders' seeds come from torch's global generator; training goes on as without the point.
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                accuracy = {name: self._accuracy(loader) for name, loader in datamodule.probe_dataloaders().items()}
        finally:
            self.train(was_training)
        self.accuracy_records.append(AccuracyPoint(step=self.global_step, accuracy=accuracy))
        self.evaluation_seconds += time.monotonic() - started

    def _accuracy(self, loader: Any) -> TestResult:
        correct = total = 0
        for images, labels, domains in loader:
            predicted = self.evaluation_logits(images.to(self.device), domains).argmax(1).cpu()
            correct += int((predicted == labels).sum())
            total += int(labels.numel())
        return TestResult(accuracy=100.0 * correct / max(total, 1), n=total)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Evaluation points so far travel with the checkpoint, so a resumed run keeps them."""
        checkpoint["accuracy_points"] = [point.to_json() for point in self.accuracy_records]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the evaluation points of a resumed run."""
        self.accuracy_records = [AccuracyPoint.from_json(i, point)
                                 for i, point in enumerate(checkpoint.get("accuracy_points", []))]
