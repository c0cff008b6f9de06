"""The sweep spec: base configs per method and the axes (methods, norms, tasks, seeds, folds).

A spec is a small YAML file::

    name: demo
    dataset: embedded            # embedded | officehome, or `domains: [...]` for another dataset
    out: runs/demo               # relative to the working directory
    configs:                     # relative to the spec's folder
      dann: dann.yaml            # source_only defaults to the DANN config with adaptation off
      mixed: mixed.yaml
    axes:
      methods: [dann, mixed]
      norms: [bn, bin]
      tasks: all                 # or ["Ar->Cl", "Cl→Ar", "Ar,Cl,Pr->Rw", ...], or leave_one_out
      seeds: [0]
      folds: [0, 1, 2, 3, 4]
      model.lambda_max: [0.1, 0.3, 1.0]   # a hyper-parameter axis: any config key, dotted
      model.lr: {values: [0.01, 0.05], methods: [dann]}   # ... for some methods only
    extra: [--trainer.max_steps, "100"]   # passed to every run
    workers: 2

Transfer methods (``dann``, ``source_only``) run every (norm, task, seed); the mixed-domain method
runs every (norm, fold, seed); each run once per combination of the hyper-parameter axes that apply
to its method. A hyper-parameter value is passed as ``--KEY VALUE`` after the spec's ``extra``, is
part of the run's name and record, and is one more axis for resuming: adding a value later runs only
the new runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dabin.errors import DabinError
from dabin.methods.names import GENERALIZATION_METHODS, RUN_KINDS, TRANSFER_METHODS
from dabin.record.run import Scalar
from datamodules.naming import format_task

__all__ = [
    "AXES",
    "DATASETS",
    "HyperAxis",
    "Scalar",
    "SweepSpec",
    "load_spec",
    "narrow",
    "resolve_task",
    "sweep_fingerprint",
]

AXES: tuple[str, ...] = ("methods", "norms", "tasks", "seeds", "folds")
DATASETS: tuple[str, ...] = ("embedded", "officehome")
#: A hyper-parameter axis's key: a dotted config key (``model.lambda_max``, ``data.batch_size``).
_HYPER_KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
#: Config keys every job sets itself, each from its own axis or the run's folder.
_JOB_KEYS = {"model.norm": "norms", "model.method": "methods", "data.source": "tasks", "data.target": "tasks",
             "data.task": "tasks", "data.fold": "folds", "data.test_domain": "tasks", "data.train_domains": "tasks",
             "trainer.default_root_dir": "out"}
_KEYS = ("name", "dataset", "domains", "out", "configs", "axes", "extra", "workers", "command", "slurm",
         "leave_one_domain_out")
#: Method whose config a method borrows when the spec gives it none: every transfer method runs in
#: the DANN harness (same backbone, bottleneck, heads and schedule; source-only adds no loss), so
#: sharing its config keeps them comparable by construction. Every domain-generalization method
#: runs in ERM's harness likewise.
_CONFIG_FALLBACK = {**{method: "dann" for method in TRANSFER_METHODS if method != "dann"},
                    **{method: "erm" for method in GENERALIZATION_METHODS if method != "erm"}}


@dataclasses.dataclass(frozen=True)
class HyperAxis:
    """A hyper-parameter axis: one config key and the values a sweep tries.

    Attributes:
        key: The dotted config key, as on the command line without ``--`` (``model.lambda_max``).
        values: The values, in the spec's order.
        methods: The methods it applies to (None: every method of the spec).
        tasks: The ``(source, target)`` tasks it applies to (None: every task). A key may have
            several axes with disjoint tasks: each task's own values (e.g. its best learning rate).
    """

    key: str
    values: tuple[Scalar, ...]
    methods: tuple[str, ...] | None = None
    tasks: tuple[tuple[str, str], ...] | None = None

    def applies(self, method: str, task: tuple[str, str] | None = None) -> bool:
        """Whether runs of ``method`` (on ``task``, for a task-restricted axis) sweep this axis."""
        return ((self.methods is None or method in self.methods)
                and (self.tasks is None or task in self.tasks))


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A parsed, validated sweep spec.

    Attributes:
        path: The spec file.
        name: Sweep name (stored in the output folder's manifest).
        dataset: ``embedded``, ``officehome`` or ``custom`` (domains given explicitly).
        domains: The dataset's domain names, in order.
        out: Output folder.
        configs: method -> config path as written in the spec (part of each run's identity).
        config_files: method -> resolved config file.
        methods: Methods to run.
        norms: Normalization layers to compare.
        tasks: ``(source, target)`` domain names for the transfer methods.
        seeds: Seeds.
        folds: Folds for the mixed-domain method.
        extra: Arguments passed to every run.
        workers: Default number of parallel jobs.
        command: Training command replacing ``python -m dabin fit`` (tests use a fake trainer).
        slurm: Parameters for the submitit executor (partition, timeout_min, gpus_per_node, ...).
        own_configs: Transfer methods with a config of their own (not DANN's): their jobs do not add
            ``--model.method NAME``, which would replace the options the config gives the method.
        hyper: Hyper-parameter axes, in the spec's order.
        leave_one_domain_out: Domain-generalization methods also run, for every task and every one of
            its training domains, without that domain: the runs leave-one-domain-out
            cross-validation selects with (:mod:`dabin.report.generalization`).
    """

    path: Path
    name: str
    dataset: str
    domains: tuple[str, ...]
    out: Path
    configs: dict[str, str]
    config_files: dict[str, Path]
    methods: tuple[str, ...]
    norms: tuple[str, ...]
    tasks: tuple[tuple[str, str], ...]
    seeds: tuple[int, ...]
    folds: tuple[int, ...]
    extra: tuple[str, ...] = ()
    workers: int = 1
    command: tuple[str, ...] | None = None
    slurm: dict[str, Any] = dataclasses.field(default_factory=dict)
    own_configs: frozenset[str] = frozenset()
    hyper: tuple[HyperAxis, ...] = ()
    leave_one_domain_out: bool = False

    def fingerprint(self) -> str:
        """Hash of what makes two sweeps' runs comparable: dataset, configs (with contents), extra.

        The axes are left out on purpose: adding a seed or narrowing the tasks keeps the sweep the
        same, while a changed config or extra argument would mix incomparable runs in one table.
        """
        return sweep_fingerprint(self.dataset, self.domains, self.configs, self.config_files, self.extra)


def sweep_fingerprint(dataset: str, domains: Sequence[str], configs: dict[str, str], config_files: dict[str, Path],
                      extra: Sequence[str]) -> str:
    """:meth:`SweepSpec.fingerprint` of these parts (also of an earlier sweep's, from its manifest).

    Raises:
        OSError: A config file cannot be read.
    """
    digest = hashlib.sha256()
    digest.update(repr((dataset, tuple(domains), tuple(sorted(configs.items())), tuple(extra))).encode())
    for method in sorted(config_files):
        digest.update(config_files[method].read_bytes())
    return digest.hexdigest()[:16]


def resolve_task(task: str, domains: Sequence[str]) -> tuple[str, str]:
    """The ``(source, target)`` domain names of a task written ``Ar→Cl``, ``Ar->Cl``, ``Ar,Cl,Pr->Rw`` or by names.

    Args:
        task: The task as written by a user.
        domains: The dataset's domain names.

    Returns:
        The domain names as the dataset spells them; several sources joined by commas in the
        dataset's order (``("Art,Clipart,Product", "Real World")``).

    Raises:
        DabinError: The task is malformed, names a domain the dataset does not have, names a source
            twice, or has its target among its sources.
    """
    from datamodules.naming import domain_aliases, domain_code, domain_key, join_domains
    from datamodules.tasks import parse_multi_task

    by_key = domain_aliases(domains)
    sources, target = parse_multi_task(task)
    names = []
    for part in (*sources, target):
        if domain_key(part) not in by_key:
            codes = ", ".join(domain_code(name) for name in domains)
            raise DabinError(f"unknown domain {part!r} in task {task!r}; domains: {codes}")
        names.append(by_key[domain_key(part)])
    *source_names, target_name = names
    if len(source_names) == 1 and source_names[0] == target_name:
        raise DabinError(f"task {task!r} has the same source and target")
    if target_name in source_names:
        raise DabinError(f"task {task!r}: the target {target_name!r} is also a source")
    repeated = [name for name in dict.fromkeys(source_names) if source_names.count(name) > 1]
    if repeated:
        raise DabinError(f"task {task!r} names the source {repeated[0]!r} twice")
    return join_domains([name for name in domains if name in source_names]), target_name


def _dataset_domains(dataset: str) -> tuple[str, ...]:
    # Imported lazily: the data package pulls in torchvision, which a spec check does not need.
    if dataset == "embedded":
        from datamodules.embedded import EMBEDDED_DOMAINS

        return tuple(EMBEDDED_DOMAINS)
    from datamodules.officehome import OFFICE_HOME_DOMAINS

    return tuple(OFFICE_HOME_DOMAINS)


def _as_list(value: Any, what: str, where: str) -> list[Any]:
    if isinstance(value, (str, int)):
        return [value]
    if not isinstance(value, list) or not value:
        raise DabinError(f"{where}: {what} must be a non-empty list, got {value!r}")
    return value


def _ints(value: Any, what: str, where: str) -> tuple[int, ...]:
    items = _as_list(value, what, where)
    if not all(isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in items):
        raise DabinError(f"{where}: {what} must be non-negative integers, got {value!r}")
    return tuple(dict.fromkeys(items))


def _choices(value: Any, allowed: Sequence[str], what: str, where: str) -> tuple[str, ...]:
    items = [str(item) for item in _as_list(value, what, where)]
    for item in items:
        if item not in allowed:
            raise DabinError(f"{where}: unknown {what[:-1]} {item!r}; expected one of {', '.join(allowed)}")
    return tuple(dict.fromkeys(items))


def _tasks(value: Any, domains: Sequence[str], where: str) -> tuple[tuple[str, str], ...]:
    from datamodules.tasks import leave_one_out_tasks, transfer_tasks

    if value == "all":
        return tuple(transfer_tasks(list(domains)))
    if value == "leave_one_out":  # each domain the target of all the others
        return tuple(leave_one_out_tasks(list(domains)))
    try:
        return tuple(dict.fromkeys(resolve_task(str(task), domains) for task in _as_list(value, "tasks", where)))
    except DabinError as error:
        raise DabinError(f"{where}: {error}") from None


def _hyper_axes(key: str, value: Any, methods: Sequence[str], domains: Sequence[str], where: str,
                ) -> tuple[HyperAxis, ...]:
    """A key's hyper-parameter axes: ``KEY: [values]``, ``KEY: {values: [...], methods: [...]}``, or a
    list of ``{values: [...], tasks: [...]}`` giving disjoint sets of tasks their own values."""
    if not (isinstance(value, list) and value and all(isinstance(item, dict) for item in value)):
        return (_hyper_axis(key, value, methods, domains, where),)
    axes = tuple(_hyper_axis(key, item, methods, domains, where) for item in value)
    if any(axis.tasks is None for axis in axes):
        raise DabinError(f"{where}: axis {key}: each of its {len(axes)} parts must name its `tasks`")
    seen: set[tuple[str, str]] = set()
    for axis in axes:
        for task in axis.tasks or ():
            if task in seen:
                raise DabinError(f"{where}: axis {key}: task {format_task(*task)} has values in two parts")
            seen.add(task)
    return axes


def _hyper_axis(key: str, value: Any, methods: Sequence[str], domains: Sequence[str], where: str) -> HyperAxis:
    """A hyper-parameter axis from ``KEY: [values]`` or ``KEY: {values: [...], methods: [...], tasks: [...]}``."""
    if not _HYPER_KEY.match(key):
        raise DabinError(f"{where}: axis {key!r} is not a dotted config key (e.g. model.lambda_max)")
    if key in _JOB_KEYS:
        raise DabinError(f"{where}: axis {key!r} is set by every job; use the {_JOB_KEYS[key]!r} axis instead")
    only: tuple[str, ...] | None = None
    tasks: tuple[tuple[str, str], ...] | None = None
    if isinstance(value, dict):
        unknown = set(value) - {"values", "methods", "tasks"}
        if unknown or "values" not in value:
            raise DabinError(f"{where}: axis {key}: expected {{values: [...], methods: [...], tasks: [...]}}, "
                             f"got {value!r}")
        if "tasks" in value:
            tasks = _tasks(value["tasks"], domains, f"{where}: axis {key}")
        only = _choices(value.get("methods", list(methods)), tuple(RUN_KINDS), "methods", f"{where}: axis {key}")
        for method in only:
            if method not in methods:
                raise DabinError(f"{where}: axis {key}: method {method!r} is not on the methods axis "
                                 f"({', '.join(methods)})")
        value = value["values"]
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, (bool, int, float, str)) for item in items):
        raise DabinError(f"{where}: axis {key} must list scalar values (numbers, strings, booleans), got {value!r}")
    if len(set(map(repr, items))) != len(items):
        raise DabinError(f"{where}: axis {key} repeats a value: {value!r}")
    return HyperAxis(key=key, values=tuple(items), methods=only, tasks=tasks)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec.

    Args:
        path: The YAML file.

    Returns:
        The spec, with config paths resolved against the spec's folder.

    Raises:
        DabinError: Unreadable file, unknown key, axis, method, norm or task, or a missing config.
    """
    from dabin.nn.convert import NORMS

    spec_path = Path(path)
    where = str(spec_path)
    try:
        raw = yaml.safe_load(spec_path.read_text())
    except FileNotFoundError:
        raise DabinError(f"sweep spec not found: {where}") from None
    except yaml.YAMLError as error:
        raise DabinError(f"{where}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise DabinError(f"{where}: a sweep spec is a mapping with keys {', '.join(_KEYS)}")
    for key in raw:
        if key not in _KEYS:
            raise DabinError(f"{where}: unknown key {key!r}; expected one of {', '.join(_KEYS)}")
    axes = raw.get("axes") or {}
    if not isinstance(axes, dict):
        raise DabinError(f"{where}: axes must be a mapping of {', '.join(AXES)}")
    for axis in axes:
        if axis not in AXES and "." not in str(axis):
            raise DabinError(f"{where}: unknown axis {axis!r}; expected one of {', '.join(AXES)} "
                             "or a dotted config key (model.lr)")

    dataset = str(raw.get("dataset", "embedded" if "domains" not in raw else "custom"))
    if "domains" in raw:
        domains = tuple(str(d) for d in _as_list(raw["domains"], "domains", where))
    elif dataset in DATASETS:
        domains = _dataset_domains(dataset)
    else:
        raise DabinError(f"{where}: unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)} "
                         "(or list the dataset's `domains`)")

    methods = _choices(axes.get("methods", ["dann"]), tuple(RUN_KINDS), "methods", where)
    norms = _choices(axes.get("norms", ["bn", "bin"]), NORMS, "norms", where)
    transfer = any(RUN_KINDS[m] == "transfer" for m in methods)
    generalization = any(RUN_KINDS[m] == "dg" for m in methods)
    mixed = any(RUN_KINDS[m] == "mixed" for m in methods)
    # A DG run's task is its training domains -> its test domain; by default each domain held out.
    default_tasks = "all" if transfer else "leave_one_out"
    tasks = _tasks(axes.get("tasks", default_tasks), domains, where) if transfer or generalization else ()
    folds = _ints(axes.get("folds", [0]), "folds", where) if mixed else ()
    seeds = _ints(axes.get("seeds", [0]), "seeds", where)
    hyper = tuple(axis for key, value in axes.items() if key not in AXES
                  for axis in _hyper_axes(str(key), value, methods, domains, where))
    for axis in hyper:
        for task in axis.tasks or ():
            if task not in tasks:
                raise DabinError(f"{where}: axis {axis.key}: task {format_task(*task)} is not on the tasks axis")

    configs_raw = raw.get("configs") or {}
    if not isinstance(configs_raw, dict):
        raise DabinError(f"{where}: configs must map a method to its config file")
    _choices(list(configs_raw) or ["dann"], tuple(RUN_KINDS), "methods", f"{where}: configs")
    configs: dict[str, str] = {}
    for method in methods:
        config = configs_raw.get(method, configs_raw.get(_CONFIG_FALLBACK.get(method, method)))
        if config is None:
            raise DabinError(f"{where}: no config for method {method!r}; add it under `configs:`")
        configs[method] = str(config)
    config_files = {m: (spec_path.parent / c).resolve() for m, c in configs.items()}
    # A method under its own name with a file other than its harness's (DANN's, ERM's): that config
    # names the method (with its options); otherwise the job names it on the command line.
    harness_files = {name: (spec_path.parent / str(configs_raw[name])).resolve()
                     for name in set(_CONFIG_FALLBACK.values()) if name in configs_raw}
    own = frozenset(m for m in methods if m in _CONFIG_FALLBACK and m in configs_raw
                    and config_files[m] != harness_files.get(_CONFIG_FALLBACK[m]))
    for method, file in config_files.items():
        if not file.is_file():
            raise DabinError(f"{where}: config of {method!r} not found: {file}")

    extra = raw.get("extra") or []
    if not isinstance(extra, (str, list)):
        raise DabinError(f"{where}: extra must be a list of arguments, got {extra!r}")
    extra = shlex.split(extra) if isinstance(extra, str) else [str(e) for e in extra]
    command = raw.get("command")
    if command is not None:
        command = tuple(shlex.split(command) if isinstance(command, str) else map(str, command))
    workers = raw.get("workers", 1)
    if not isinstance(workers, int) or workers < 1:
        raise DabinError(f"{where}: workers must be a positive integer, got {workers!r}")
    lodo = raw.get("leave_one_domain_out", False)
    if not isinstance(lodo, bool):
        raise DabinError(f"{where}: leave_one_domain_out must be true or false, got {lodo!r}")
    if lodo and not generalization:
        raise DabinError(f"{where}: leave_one_domain_out adds runs of the domain-generalization methods "
                         f"({', '.join(GENERALIZATION_METHODS)}); the methods axis has none")
    slurm = raw.get("slurm") or {}
    if not isinstance(slurm, dict):
        raise DabinError(f"{where}: slurm must be a mapping of submitit parameters")
    return SweepSpec(
        path=spec_path, name=str(raw.get("name", spec_path.parent.name)), dataset=dataset, domains=domains,
        out=Path(str(raw.get("out", f"runs/{spec_path.parent.name}"))), configs=configs,
        config_files=config_files, methods=methods, norms=norms, tasks=tasks, seeds=seeds, folds=folds,
        extra=tuple(extra), workers=workers, command=command, slurm=slurm, own_configs=own, hyper=hyper,
        leave_one_domain_out=lodo,
    )


def _narrowed(current: tuple[Any, ...], wanted: Sequence[Any] | None, flag: str,
              show: Any = str) -> tuple[Any, ...]:
    if wanted is None:
        return current
    for item in wanted:
        if item not in current:
            raise DabinError(f"{flag}: {show(item)!s} is not in the sweep; it has {', '.join(map(show, current))}")
    return tuple(item for item in current if item in wanted)


def narrow(
    spec: SweepSpec,
    methods: Sequence[str] | None = None,
    norms: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    folds: Sequence[int] | None = None,
) -> SweepSpec:
    """The spec restricted to a subset of each axis (the command line's filters).

    Args:
        spec: The full spec.
        methods: Methods to keep, or None for all.
        norms: Norms to keep.
        tasks: Tasks to keep, written ``Ar→Cl``, ``Ar->Cl`` or with domain names.
        seeds: Seeds to keep.
        folds: Folds to keep.

    Returns:
        The narrowed spec (same fingerprint: a filter selects runs of the same sweep).

    Raises:
        DabinError: A filter names a value that is not on the spec's axis.
    """
    wanted_tasks = None if tasks is None else [resolve_task(task, spec.domains) for task in tasks]
    return dataclasses.replace(
        spec,
        methods=_narrowed(spec.methods, methods, "--methods"),
        norms=_narrowed(spec.norms, norms, "--norms"),
        tasks=_narrowed(spec.tasks, wanted_tasks, "--tasks", show=lambda t: format_task(*t)),
        seeds=_narrowed(spec.seeds, seeds, "--seeds"),
        folds=_narrowed(spec.folds, folds, "--folds"),
    )
