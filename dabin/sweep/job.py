"""A sweep's job: a run's request, its folder's name, and the trainer's command line that runs it.

A run's folder is named from its arguments (readable part + short hash of all of them, as in
DomainBed), so a rerun of the sweep finds the runs it already has. What a run folder holds is
:mod:`dabin.record.files`'s; how a job runs and ends is :mod:`dabin.sweep.running`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dabin.methods.names import GENERALIZATION_METHODS, RUN_KINDS, SOURCE_BATCH_ONLY, TRANSFER_METHODS
from dabin.record.metrics import RecordError
from dabin.record.run import Request, hparam_text
from dabin.sweep.spec import SweepSpec

__all__ = ["DABIN", "DEFAULT_COMMAND", "Job", "expand_jobs", "job_command", "planned"]

#: The ``dabin`` command; what follows it in a training command is what a :class:`Worker` runs.
DABIN: tuple[str, ...] = (sys.executable, "-m", "dabin")
#: The training command; a spec's ``command`` or the DABIN_SWEEP_COMMAND variable replace it.
DEFAULT_COMMAND: tuple[str, ...] = (*DABIN, "fit")
#: Arguments a method adds to its config: every transfer method but DANN (the config's own), and every
#: domain-generalization method but ERM, names itself.
_METHOD_ARGS: dict[str, tuple[str, ...]] = {method: ("--model.method", method)
                                            for method in (*TRANSFER_METHODS, *GENERALIZATION_METHODS)
                                            if method not in ("dann", "erm")}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job(Request):
    """One training run of a sweep: what it is asked (a :class:`~dabin.record.run.Request`) and how it runs.

    Attributes:
        config: Config path as written in the spec (identity; independent of the checkout's place).
        config_file: The resolved config file (not part of the identity).
        extra: Arguments appended to the trainer's command line.
        shared_config: The config is another method's (a transfer method in the DANN config): the
            command names the method (``--model.method NAME``). A method's own config names it
            itself, with its options, which a bare name would replace.
    """

    config: str
    config_file: str = dataclasses.field(default="", compare=False)
    extra: tuple[str, ...] = ()
    shared_config: bool = dataclasses.field(default=True, compare=False)

    def identity(self) -> dict[str, Any]:
        """The arguments that define the run (what the folder name's hash covers)."""
        identity = {"method": self.method, "norm": self.norm, "seed": self.seed, "config": self.config,
                    "source": self.source, "target": self.target, "fold": self.fold, "extra": list(self.extra)}
        # Only when there are some: runs of a sweep without hyper-parameter axes keep their names.
        if self.hparams:
            identity["hparams"] = dict(self.hparams)
        return identity

    @property
    def label(self) -> str:
        """Short human-readable description, for progress lines."""
        where = self.task or f"fold {self.fold}"
        return " ".join(filter(None, (f"{self.method} {self.norm} {where} seed {self.seed}", self.setting)))

    @property
    def name(self) -> str:
        """The run folder's name: readable part plus 8 hex digits of the identity's hash."""
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:8]
        where = self.task.replace("→", "-") if self.task else f"f{self.fold}"
        values = "".join(f"_{key.rsplit('.', 1)[-1]}{hparam_text(value)}" for key, value in self.hparams)
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "", f"{self.method}_{self.norm}_{where}_s{self.seed}{values}")
        return f"{readable}_{digest}"

    def to_json(self) -> dict[str, Any]:
        """``job.json``: the request, then what the sweep needs to run it again and to find its folder."""
        return {**super().to_json(), "config": self.config, "extra": list(self.extra), "config_file": self.config_file,
                "name": self.name, "shared_config": self.shared_config}

    @classmethod
    def from_json(cls, data: Any) -> Job:
        """Inverse of :meth:`to_json`.

        Raises:
            RecordError: A field missing or of the wrong shape.
        """
        request = Request.from_json(data)
        try:
            return cls(method=request.method, norm=request.norm, seed=request.seed, source=request.source,
                       target=request.target, fold=request.fold, hparams=request.hparams, config=str(data["config"]),
                       config_file=str(data.get("config_file", "")), extra=tuple(data.get("extra", ())),
                       shared_config=bool(data.get("shared_config", True)))
        except (KeyError, TypeError) as error:
            raise RecordError(f"a job's fields have the wrong shape ({error!r})") from None


def _trainable(method: str, norm: str) -> bool:
    """Whether ``norm`` can train under ``method`` (a per-domain norm needs target batches)."""
    from dabin.nn.convert import NORM_SPECS

    need = NORM_SPECS[norm].domains
    if need is None:
        return True
    if RUN_KINDS[method] == "dg":  # dsbin's branches, one per training domain; TransNorm needs a target
        return need == "domain_specific"
    return RUN_KINDS[method] == "transfer" and method not in SOURCE_BATCH_ONLY


def _generalization_places(spec: SweepSpec) -> list[dict[str, Any]]:
    """A DG method's runs: each task (training domains -> test domain), then its leave-one-out runs.

    With ``leave_one_domain_out``, every task with two or more training domains also runs once
    without each of them (DomainBed's runs with two test environments), in the dataset's order.
    """
    from datamodules.naming import join_domains, split_domains

    places = [{"source": s, "target": t} for s, t in spec.tasks]
    if spec.leave_one_domain_out:
        for sources, target in spec.tasks:
            names = split_domains(sources)
            if len(names) > 1:
                places += [{"source": join_domains([n for n in names if n != left]), "target": target}
                           for left in names]
    return list({(p["source"], p["target"]): p for p in places}.values())


def planned(jobs: Sequence[Job]) -> list[tuple[str, Request]]:
    """(run folder name, request) per job: what :func:`dabin.record.read_runs` reads a sweep folder by."""
    return [(job.name, job) for job in jobs]


def expand_jobs(spec: SweepSpec) -> list[Job]:
    """All jobs of a spec, in a stable order (method, task or fold, norm, seed).

    BN and BIN of one task sit next to each other, so a partial sweep has comparable pairs. A norm
    that keeps statistics per domain (``dsbin``, ``transnorm``: :data:`dabin.nn.NORM_SPECS`) runs
    only with the methods that train on target batches, dsbin also with the domain-generalization
    methods (a branch per training domain), neither with the mixed-domain method: the other pairs
    are left out of the spec's runs rather than failed.

    Args:
        spec: The (possibly narrowed) spec.

    Returns:
        The jobs.
    """
    jobs = []
    for method in spec.methods:
        config, config_file = spec.configs[method], str(spec.config_files[method])
        shared = method not in spec.own_configs
        if RUN_KINDS[method] == "transfer":
            places: list[dict[str, Any]] = [{"source": s, "target": t} for s, t in spec.tasks]
        elif RUN_KINDS[method] == "dg":
            places = _generalization_places(spec)
        else:
            places = [{"fold": fold} for fold in spec.folds]
        for place in places:
            task = (place["source"], place["target"]) if "source" in place else None
            axes = [axis for axis in spec.hyper if axis.applies(method, task)]
            settings = [tuple(zip((axis.key for axis in axes), values))
                        for values in itertools.product(*(axis.values for axis in axes))]
            for hparams in settings:
                for norm in spec.norms:
                    if not _trainable(method, norm):
                        continue
                    for seed in spec.seeds:
                        jobs.append(Job(method=method, norm=norm, seed=seed, config=config, config_file=config_file,
                                        extra=spec.extra, shared_config=shared, hparams=hparams, **place))
    return jobs




def job_command(job: Job, run_dir: Path, base: Sequence[str] = DEFAULT_COMMAND, ckpt: Path | None = None) -> list[str]:
    """The trainer's command line for a job: the one place that knows the training CLI's flags.

    Args:
        job: The job.
        run_dir: Its run folder (``--trainer.default_root_dir``).
        base: The command before the arguments (``python -m dabin fit``).
        ckpt: Checkpoint to resume from.

    Returns:
        The argument list.
    """
    method_args = _METHOD_ARGS.get(job.method, ()) if job.shared_config else ()
    command = [*base, "-c", job.config_file or job.config, "--model.norm", job.norm, *method_args]
    if job.source is not None and job.target is not None and RUN_KINDS[job.method] == "dg":
        command += ["--data.train_domains", job.source, "--data.test_domain", job.target]
    elif job.source is not None and job.target is not None:
        command += ["--data.source", job.source, "--data.target", job.target]
    if job.fold is not None:
        command += ["--data.fold", str(job.fold)]
    command += ["--seed_everything", str(job.seed), "--trainer.default_root_dir", str(run_dir), *job.extra]
    # After extra: an axis's value is what the run is named by, so nothing may override it.
    for key, value in job.hparams:
        command += [f"--{key}", hparam_text(value)]
    if ckpt is not None:
        command += ["--ckpt_path", str(ckpt)]
    return command
