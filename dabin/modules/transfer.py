"""Domain-adversarial training (DANN; Ganin et al., JMLR 2016) with a BIN backbone (Table 4).

Architecture (recipes, Section 4.2 of the BIN paper)::

    images (B, 3, H, W) ─ ResNet-18 ─ f (B, 512) ─ bottleneck ─ z (B, 256) ─┬─ label predictor ─ (B, C)
                                                                           └─ GRL(λ) ─ domain classifier ─ (B, 2)

with bottleneck ``Linear(512, 256) + BatchNorm + ReLU``, label predictor ``256 → 1024 → C`` and domain
classifier ``256 → 1024 → 2`` (ReLU and dropout 0.5 between). Each step takes ``B_s`` labelled
source and ``B_t`` unlabelled target images (32 + 32 by default) through the network as one batch,
so the normalization layers see both domains, and minimizes

.. math::

    L = \\frac{1}{B_s}\\sum_{i \\in S} \\mathrm{CE}(y_i, \\hat y_i)
        + \\frac{1}{B_s + B_t}\\sum_{i \\in S \\cup T} \\mathrm{CE}(d_i, \\hat d_i),

where the gradient reversal layer multiplies the domain loss's gradient by ``−λ_p`` on its way
into the features. The author's schedules, with ``p`` the training progress:
``μ_p = μ₀ / (1 + 10 p)^0.75`` and ``λ_p = 2 / (1 + exp(−10 p)) − 1``; pretrained layers train at
``μ_p / 10``. With ``adaptation=False`` the same module is the source-only baseline: only source
images pass through the network and the domain branch is unused.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dabin.errors import DabinError
from dabin.models import WeightsArg
from dabin.methods import TRANSFER_METHODS, AdaptationLoss, StepOutputs, build_method
from dabin.nn import (NORM_SPECS, NORM_STATS_ESTIMATES, DomainNeed, GateLrBase, NormName, NormStatsEstimate,
                      TransNorm2d, add_domain_stats, check_norm, domain_split, eval_statistics,
                      recalibrate_norm_stats, target_stats)
from dabin.nn.mixstyle import MixStyleMode
from dabin.modules.base import Batch, DomainModule, lab_backbone
from dabin.schedules import dann_lr_factor, progress
from dabin.record import EvaluationPoint
from dabin.selection.probe import evaluation_steps, probe
from datamodules import TransferDataModule

__all__ = ["DANN", "DomainStats", "MethodFactory", "MethodName", "TransferModule"]

#: An adaptation method by registry name (:data:`dabin.methods.METHODS`), with its paper's defaults.
MethodName = Literal[TRANSFER_METHODS]  # type: ignore[valid-type]
#: How source and target pass through the normalization layers (see :class:`TransferModule`).
DomainStats = Literal["joint", "separate", "domain_specific"]
#: A loss class with options (``--model.method CDANLoss --model.method.entropy true``); the module
#: calls it with its feature width and class count.
MethodFactory = Callable[[int, int], AdaptationLoss]


def _mlp(in_features: int, hidden: int, out_features: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(hidden, out_features))


class TransferModule(DomainModule):
    """The transfer module: DANN's harness (backbone, bottleneck, classifier, schedules) with any method.

    ``method`` picks the adaptation loss added to the source classification loss (:mod:`dabin.methods`):
    ``dann`` (the default, the paper's), ``cdan``, ``cdan_e``, ``mcc``, ``mdd``, ``dan``, ``bnm``;
    ``source_only`` adds none (only source images pass); ``adabn`` trains as source-only and
    re-estimates the normalization statistics on the unlabelled target images before testing.

    Args:
        num_classes: Number of classes (linked from the data module by the CLI).
        norm: A name of :data:`dabin.nn.NORMS` for every normalization layer of the backbone:
            ``bn``, ``in``, ``bnin``, ``bin``, or the lab's ``dsbin`` (BIN with per-domain statistics
            and gates: implies ``domain_stats: domain_specific``), ``switchable``, ``transnorm``
            (per-domain statistics in one joint batch, source rows first: implies ``joint``),
            ``ibn_a``, ``ibn_b`` (IBN-Net's layouts) and ``mixstyle`` (BN with MixStyle). dsbin and
            transnorm need target batches (not ``source_only`` or ``adabn``).
        mixstyle: MixStyle after layer1–3 of the backbone during training (:mod:`dabin.nn.mixstyle`),
            with any norm: ``off``, ``random`` (partners drawn from the whole batch) or
            ``crossdomain`` (source and target halves of the joint batch swap styles; needs equal
            batch sizes). ``norm: mixstyle`` is BN with ``random`` unless this says otherwise.
        mixstyle_p: Probability that a MixStyle layer mixes a batch (its paper's 0.5).
        mixstyle_alpha: λ ~ Beta(α, α) (its paper's 0.1).
        backbone: ``resnet18`` (the paper's), another of torchvision's ResNet family (``resnet50``,
            ``resnext50_32x4d``, ``wide_resnet50_2``, ...; see :data:`dabin.models.RESNETS`) or the
            class path of any model whose classifier is ``fc``; its normalization layers become ``norm``.
        weights: None (random init), a torchvision weights name (``IMAGENET1K_V1``) or a state dict file.
        small_input: 3×3 stride-1 stem without max-pool, for tiny (e.g. 32-px) images.
        width: Channels of the backbone's first stage (64 is the standard ResNet-18; resnet18 only).
        adaptation: The older switch: False is ``method: source_only`` (kept so existing configs and
            checkpoints work); True leaves ``method`` in charge.
        bottleneck_dim: Width of the bottleneck feature ``z``.
        hidden_dim: Hidden width of the label predictor (and of DANN's domain classifier).
        dropout: Dropout of the two heads' hidden layers.
        lr: ``μ₀``, the learning rate of the layers trained from scratch.
        momentum: SGD momentum.
        weight_decay: Weight decay (not applied to gates); the recipe gives none for the author's
            schedule, 5e-4 is the usual choice for this network.
        gate_lr_mult: Gate learning-rate multiplier (×10 in the paper).
        gate_lr_base: What the multiplier multiplies: ``group`` (the rate of the gate's own group: the
            backbone's) or ``base`` (``lr``, the heads' rate); recorded in ``metrics.json``.
        backbone_lr_mult: Learning-rate multiplier of the backbone; None: 0.1 with pretrained
            ``weights`` (the author's rule), 1 when training from scratch.
        lr_alpha: ``α`` of ``μ_p = μ₀ / (1 + α p)^β``.
        lr_beta: ``β`` of the same.
        lambda_gamma: ``γ`` of DANN's ``λ_p = 2 / (1 + exp(−γ p)) − 1``.
        lambda_max: Final value of DANN's ``λ`` (1 in the paper).
        target_norm_stats: Before testing, re-estimate the running statistics of every BatchNorm/BIN
            layer on the unlabelled target train split (AdaBN); uses no target label. Off in the paper.
        norm_stats_estimate: How that re-estimation (and method ``adabn``'s) computes them
            (:func:`dabin.nn.recalibrate_norm_stats`): ``population`` (the default, AdaBN's
            Algorithm 1: each layer's mean and variance over every target train image, layer by
            layer in eval mode) or ``shuffled_batch_average`` (the cumulative average of per-batch
            statistics in train mode, over the split shuffled by the data module's ``seed``).
        method: A name of :data:`dabin.methods.METHODS` (its paper's defaults; DANN takes this
            module's ``hidden_dim``, ``dropout``, ``lambda_gamma``, ``lambda_max``), or a loss class
            with options (``--model.method CDANLoss --model.method.entropy true``). None: from
            ``adaptation``. Recorded in ``metrics.json`` by name.
        domain_stats: How source and target pass through the normalization layers: ``joint`` (one
            concatenated batch, as Ganin's code and the Transfer-Learning-Library do; the default),
            ``separate`` (a pass per domain, each normalized by its own batch statistics, as Dassl
            and pytorch-adapt do) or ``domain_specific`` (separate passes, and each domain keeps its
            own running statistics, DSBN-style: the target's are used to test on the target).
            Affine weights and BIN gates are shared in every case (but dsbin's gates). None: the
            norm's own (``domain_specific`` for dsbin), else ``joint``.
        evaluation_points: How many times, evenly over training (the last at its end), to score the
            model with every unsupervised validator (:mod:`dabin.selection`) and record, apart and
            labelled oracle, its target test accuracy; stored in ``metrics.json``
            (``evaluation_points``). 0: none. Does not change what training computes. Scored by the
            first process only, over whole splits.
        evaluation_target_images: At most this many target train images (a fixed random subset)
            are scored at each evaluation point; None: all. Bounds the points' time and memory.
    """

    def __init__(
        self,
        num_classes: int = 65,
        norm: NormName = "bin",
        mixstyle: MixStyleMode = "off",
        mixstyle_p: float = 0.5,
        mixstyle_alpha: float = 0.1,
        backbone: str = "resnet18",
        weights: WeightsArg = None,
        small_input: bool = False,
        width: int = 64,
        adaptation: bool = True,
        bottleneck_dim: int = 256,
        hidden_dim: int = 1024,
        dropout: float = 0.5,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        gate_lr_mult: float = 10.0,
        gate_lr_base: GateLrBase = "group",
        backbone_lr_mult: float | None = None,
        lr_alpha: float = 10.0,
        lr_beta: float = 0.75,
        lambda_gamma: float = 10.0,
        lambda_max: float = 1.0,
        target_norm_stats: bool = False,
        norm_stats_estimate: NormStatsEstimate = "population",
        method: MethodName | MethodFactory | None = None,
        domain_stats: DomainStats | None = None,
        evaluation_points: int = 5,
        evaluation_target_images: int | None = 1000,
    ) -> None:
        super().__init__(num_classes, lr, momentum, weight_decay, gate_lr_mult, gate_lr_base)
        check_norm(norm)
        if not 0.0 <= dropout < 1.0:
            raise DabinError(f"dropout must be in [0, 1), got {dropout}")
        if method is None:
            method = "dann" if adaptation else "source_only"
        elif not adaptation and method != "source_only":
            raise DabinError(f"adaptation: false (the older spelling of method: source_only) contradicts method "
                             f"{method if isinstance(method, str) else 'given by class'}; drop adaptation")
        self.save_hyperparameters(ignore=["method"])
        spec = NORM_SPECS[norm]
        self.backbone, mix = lab_backbone(backbone, norm=norm, mixstyle=mixstyle, mixstyle_p=mixstyle_p,
                                          mixstyle_alpha=mixstyle_alpha, weights=weights, small_input=small_input,
                                          width=width)
        self.mixstyle = mix
        # BatchNorm keeps the bottleneck centred, so the reversed gradient cannot push every ReLU
        # input below zero and silence both heads (the Transfer-Learning-Library's bottleneck too).
        self.bottleneck = nn.Sequential(nn.Linear(self.backbone.num_features, bottleneck_dim),
                                        nn.BatchNorm1d(bottleneck_dim), nn.ReLU(inplace=True))
        self.classifier = _mlp(bottleneck_dim, hidden_dim, num_classes, dropout)
        if isinstance(method, str):
            # DANN keeps this module's own head and schedule options (its recipe); the others take
            # their papers' defaults, or their options through a class (see MethodFactory).
            options = ({"hidden_dim": hidden_dim, "dropout": dropout, "lambda_gamma": lambda_gamma,
                        "lambda_max": lambda_max} if method == "dann" else {})
            self.adaptation_loss = build_method(method, bottleneck_dim, num_classes, **options)
            self.method_name = method
        else:
            self.adaptation_loss = method(bottleneck_dim, num_classes)
            self.method_name = self.adaptation_loss.method_name
        # Recorded by name (a class path for a loss of one's own), so a checkpoint rebuilds the method.
        self.hparams["method"] = self.method_name
        domain_stats = self._resolve_domain_stats(norm, spec.domains, domain_stats)
        if spec.domains is not None and self.adaptation_loss is None:
            raise DabinError(f"norm {norm} needs target batches in training (per-domain statistics); method "
                             f"{self.method_name} passes none")
        if mix == "crossdomain" and (self.adaptation_loss is None or domain_stats != "joint"):
            raise DabinError("mixstyle crossdomain mixes the source and target halves of the joint batch; it needs a "
                             "method with target batches and domain_stats joint (or use mixstyle random)")
        if spec.domains == "source_then_target" and target_norm_stats:
            raise DabinError(f"target_norm_stats re-estimates the target statistics that norm {norm} already keeps")
        if domain_stats != "joint" and self.adaptation_loss is None:
            raise DabinError(f"domain_stats {domain_stats} needs target batches in training; method "
                             f"{self.method_name} passes none (use joint)")
        if domain_stats == "domain_specific" and target_norm_stats:
            raise DabinError("target_norm_stats re-estimates the statistics that domain_stats domain_specific already "
                             "keeps per domain; use one or the other")
        if norm_stats_estimate not in NORM_STATS_ESTIMATES:
            raise DabinError(f"unknown norm_stats_estimate {norm_stats_estimate!r}; expected one of "
                             f"{', '.join(NORM_STATS_ESTIMATES)}")
        self.domain_stats = domain_stats
        self.norm_domains = spec.domains
        if domain_stats == "domain_specific":
            add_domain_stats(self, gates=norm == "dsbin")  # every norm layer, the bottleneck's too
        if spec.domains == "source_then_target":
            # Outside target_context() (source validation) TransNorm normalizes with the source's
            # statistics, as a domain_specific model does; the target's sets go through target_context().
            for layer in self.modules():
                if isinstance(layer, TransNorm2d):
                    layer.eval_domain = "source"
        self.backbone_lr_mult = backbone_lr_mult if backbone_lr_mult is not None else (0.1 if weights else 1.0)
        if evaluation_points < 0:
            raise DabinError(f"evaluation_points must be >= 0, got {evaluation_points}")
        if evaluation_target_images is not None and evaluation_target_images < 2:
            raise DabinError(f"evaluation_target_images must be >= 2 (or null for all), got {evaluation_target_images}")
        self.evaluation_records: list[EvaluationPoint] = []
        #: Seconds spent scoring evaluation points (part of the fit's time).
        self.evaluation_seconds = 0.0
        self._evaluation_steps: frozenset[int] = frozenset()

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)``."""
        return self.classifier(self.bottleneck(self.backbone(images)))

    def embed(self, images: Tensor) -> Tensor:
        """The bottleneck features ``z`` (B, bottleneck_dim) the classifier reads."""
        return self.bottleneck(self.backbone(images))

    def classify_features(self, features: Tensor) -> Tensor:
        """Class logits from bottleneck features."""
        return self.classifier(features)

    def target_context(self) -> contextlib.AbstractContextManager[Any]:
        """Target images are evaluated with the target's statistics where the model keeps them per domain."""
        if self.domain_stats == "domain_specific":
            return target_stats(self)
        if self.norm_domains == "source_then_target":
            return eval_statistics(self, "target")
        return contextlib.nullcontext()

    @staticmethod
    def _resolve_domain_stats(norm: str, need: DomainNeed | None, domain_stats: DomainStats | None) -> DomainStats:
        """``domain_stats`` as given, or the norm's own: ``domain_specific`` for dsbin, else ``joint``."""
        if domain_stats is not None and domain_stats not in get_args(DomainStats):
            raise DabinError(f"unknown domain_stats {domain_stats!r}; expected one of {', '.join(get_args(DomainStats))}")
        wanted: DomainStats = {"domain_specific": "domain_specific", "source_then_target": "joint"}.get(
            need or "", "joint")  # type: ignore[assignment]
        if domain_stats is None:
            return wanted
        if need is not None and domain_stats != wanted:
            raise DabinError(f"norm {norm} needs domain_stats {wanted} ("
                             + ("per-domain statistics and gates" if need == "domain_specific" else
                                "it splits the joint batch into source and target itself")
                             + f"), got {domain_stats}; leave domain_stats out")
        return domain_stats

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """At an evaluation point, score the model with every validator (and the oracle, kept apart)."""
        datamodule = self.trainer.datamodule
        if self.global_step not in self._evaluation_steps or not isinstance(datamodule, TransferDataModule):
            return
        if not self.trainer.is_global_zero:
            return  # one process scores whole splits; only its record is written
        if any(point.step == self.global_step for point in self.evaluation_records):
            return  # accumulated gradients: several batches end on one step
        started = time.monotonic()
        was_training = self.training
        self.eval()
        # A data loader's iterator draws its base seed from torch's global generator: forked, so
        # training after the point draws exactly what it would have without it.
        try:
            with torch.random.fork_rng(devices=[]):
                loaders = datamodule.probe_dataloaders(self.hparams.evaluation_target_images)
                point = probe(self, *loaders, self.global_step, self.device)
        finally:
            self.train(was_training)
        self.evaluation_records.append(point)
        self.evaluation_seconds += time.monotonic() - started

    def on_fit_start(self) -> None:
        """The steps of the evaluation points, once the trainer knows the run's length."""
        super().on_fit_start()
        self._evaluation_steps = frozenset(evaluation_steps(self.total_steps, self.hparams.evaluation_points))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Evaluation points so far travel with the checkpoint, so a resumed run keeps them."""
        checkpoint["evaluation_points"] = [point.to_json() for point in self.evaluation_records]

    def param_groups(self) -> list[dict[str, Any]]:
        """The backbone at ``backbone_lr_mult × lr``; bottleneck and heads at ``lr``."""
        lr = self.hparams.lr
        heads = [p for m in (self.bottleneck, self.classifier) for p in m.parameters()]
        if self.adaptation_loss is not None:  # a discriminator, an adversarial head: trained like heads
            heads += list(self.adaptation_loss.parameters())
        return [{"params": list(self.backbone.parameters()), "lr": lr * self.backbone_lr_mult},
                {"params": heads, "lr": lr}]

    def batch_composition(self, batch_size: int) -> dict[str, int]:
        """``batch_size`` source and as many target images per step (source only: no target)."""
        if self.adaptation_loss is None:
            return {"source": batch_size}
        return {"source": batch_size, "target": batch_size}

    def lr_lambda(self, step: int) -> float:
        """``1 / (1 + α p)^β`` with ``p`` from the step count (so resuming continues exactly)."""
        total = self.total_steps if self._trainer is not None else 0
        return dann_lr_factor(progress(step, total), self.hparams.lr_alpha, self.hparams.lr_beta)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Read checkpoints of the DANN module before the methods became loss modules.

        Their domain classifier was ``domain_classifier.*`` and their λ a ``grl.coeff`` buffer; it is
        now the DANN loss's ``discriminator`` and λ follows the trainer's progress.
        """
        self.evaluation_records = [EvaluationPoint.from_json(i, point)
                                   for i, point in enumerate(checkpoint.get("evaluation_points", []))]
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith("domain_classifier.") or k == "grl.coeff"]:
            value = state.pop(key)
            if key.startswith("domain_classifier."):
                state["adaptation_loss.discriminator." + key[len("domain_classifier."):]] = value

    def on_test_start(self) -> None:
        """With ``target_norm_stats`` or method ``adabn``, replace the norm layers' statistics by the target's.

        They are estimated on the target train split as ``norm_stats_estimate`` says.
        """
        datamodule = self.trainer.datamodule
        recalibrate = self.hparams.target_norm_stats or self.method_name == "adabn"
        if recalibrate and isinstance(datamodule, TransferDataModule):
            estimate = self.hparams.norm_stats_estimate
            # Averaging per-batch statistics needs batches that mix the classes (the split is in
            # file order, grouped by class); the population's statistics do not depend on order.
            seed = datamodule.seed if estimate == "shuffled_batch_average" else None
            loader = datamodule.target_dataloader(shuffle_seed=seed)
            # One loader, iterated once per norm layer (population): its workers are started once.
            recalibrate_norm_stats(self, lambda: (images for images, *_ in loader), self.device, estimate)

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Evaluate; with ``domain_specific`` statistics, the target's sets use the target's."""
        name = self._names("test")[dataloader_idx] if dataloader_idx < len(self._names("test")) else ""
        datamodule = self.trainer.datamodule
        target = isinstance(datamodule, TransferDataModule) and name.split("/", 1)[0] == datamodule.target_name
        with self.target_context() if target else contextlib.nullcontext():
            super().test_step(batch, batch_idx, dataloader_idx)

    def training_step(self, batch: dict[str, Batch], batch_idx: int) -> Tensor:
        """One step on ``{"source": (x, y, d), "target": (x, y, d)}`` (target labels unused).

        Source and target pass through the network as one batch (the normalization layers see both
        domains); the adaptation loss gets the step's features and logits split by domain.
        """
        source_images, source_labels, _ = batch["source"]
        if self.adaptation_loss is None:  # source_only, adabn
            logits = self(source_images)
            loss = F.cross_entropy(logits, source_labels)
            self.check_finite(loss)
            self._log_train(loss, loss, logits, source_labels)
            return loss
        target_images = batch["target"][0]
        n_source = source_images.shape[0]
        if self.domain_stats == "joint":
            if self.mixstyle == "crossdomain" and n_source != target_images.shape[0]:
                raise DabinError(f"mixstyle crossdomain needs source and target batches of one size, got {n_source} "
                                 f"and {target_images.shape[0]}")
            # TransNorm layers take the first n_source rows as the source's (a no-op without them).
            with domain_split(self, n_source):
                features = self.bottleneck(self.backbone(torch.cat([source_images, target_images])))
        else:
            # Two passes: each domain's batch normalized by its own batch statistics; with
            # domain_specific, the target's also kept in (and evaluated with) its own running ones.
            features_s = self.bottleneck(self.backbone(source_images))
            with target_stats(self) if self.domain_stats == "domain_specific" else contextlib.nullcontext():
                features_t = self.bottleneck(self.backbone(target_images))
            features = torch.cat([features_s, features_t])
        logits = self.classifier(features[:n_source])
        class_loss = F.cross_entropy(logits, source_labels)
        logits_t = (self.classifier(features[n_source:]) if self.adaptation_loss.uses_target_logits
                    else logits.new_empty((0, logits.shape[1])))
        step = StepOutputs(features[:n_source], features[n_source:], logits, logits_t,
                           progress(self.global_step, self.total_steps))
        adaptation, logs = self.adaptation_loss(step)
        loss = class_loss + adaptation
        self.check_finite(loss)
        self._log_train(loss, class_loss, logits, source_labels)
        self.log_dict({"train/adapt_loss": adaptation, **{f"train/{k}": v for k, v in logs.items()}})
        return loss

    def _log_train(self, loss: Tensor, class_loss: Tensor, logits: Tensor, labels: Tensor) -> None:
        accuracy = (logits.argmax(1) == labels).float().mean() * 100
        self.log_dict({"train/loss": loss, "train/cls_loss": class_loss, "train/acc": accuracy}, prog_bar=True)
        self.log("train/lr", self.hparams.lr * self.lr_lambda(self.global_step))  # μ_p of the heads


#: The module's earlier name (configs and checkpoints written with ``dabin.tasks.DANN`` still load).
DANN = TransferModule
