"""Multi-source tasks (``Ar,Cl,Pr->Rw``): parsing, union and balanced source batches, validation per
source, one clear line for each bad input, leave-one-out tasks in a sweep spec, and a short training run."""

from __future__ import annotations

import collections
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from dabin.errors import DabinError
from dabin.modules import TransferModule
from dabin.modules.outputs import RunSummary
from dabin.nn import compiled
from dabin.sweep import expand_jobs, load_spec
from dabin.sweep.spec import resolve_task
from datamodules import TransferDataModule
from datamodules.embedded import EMBEDDED_DOMAINS, embedded_root
from datamodules.officehome import OFFICE_HOME_DOMAINS
from datamodules.samplers import BalancedDomainSampler
from datamodules.tasks import leave_one_out_tasks, parse_multi_task, parse_task

from .conftest import make_tree

SOURCES = ["Ink", "Neon", "Photo"]


def embedded(**kwargs: object) -> TransferDataModule:
    options: dict[str, object] = {"root": "embedded", "image_size": 32, "num_workers": 0, "batch_size": 12}
    return TransferDataModule(**{**options, **kwargs})


def drawn_domains(loader: torch.utils.data.DataLoader) -> list[int]:
    """The domain of every item the loader's sampler draws, in order (no image decoded)."""
    samples = loader.dataset.samples
    return [samples[index].domain for index in loader.sampler]


@pytest.mark.parametrize(("text", "sources", "target"), [
    ("Ar,Cl,Pr->Rw", ["Ar", "Cl", "Pr"], "Rw"),
    ("Ar, Cl ,Pr → Rw", ["Ar", "Cl", "Pr"], "Rw"),
    ("Art,Clipart,Product->Real World", ["Art", "Clipart", "Product"], "Real World"),
    ("Ar:Cl", ["Ar"], "Cl"),
])
def test_parse_multi_task(text: str, sources: list[str], target: str) -> None:
    assert parse_multi_task(text) == (sources, target)
    assert parse_task(text) == (",".join(sources), target)  # the joined field records write


@pytest.mark.parametrize("text", ["Ar,Cl", "Ar,->Rw", "Ar->Cl,Pr", ",Ar->Rw"])
def test_parse_multi_task_rejects(text: str) -> None:
    with pytest.raises(DabinError, match=f"unknown task '{text}'"):
        parse_multi_task(text)


@pytest.mark.parametrize("kwargs", [
    {"task": "In,Ne,Ph->Sk"},
    {"task": "Photo,Ink,Neon->Sketch"},  # any order: dataset order inside
    {"source": "ink, neon,PHOTO", "target": "sk"},
    {"source": ["Ph", "In", "Ne"], "target": "Sketch"},
])
def test_sources_resolve_once_in_dataset_order(kwargs: dict) -> None:
    data = embedded(**kwargs)
    assert data.source_names == SOURCES and data.source_name == "Ink,Neon,Photo"
    assert data.target_name == "Sketch"
    assert data.val_names == SOURCES and data.eval_names == ["Sketch"]
    assert set(data.splits) == {*SOURCES, "Sketch"}


def test_one_source_is_as_before() -> None:
    data = embedded(source="Ink", target="Neon")
    assert (data.source_names, data.source_name, data.val_names) == (["Ink"], "Ink", ["Ink"])
    assert isinstance(data.val_dataloader(), torch.utils.data.DataLoader)  # one loader, not a list


def test_union_draws_only_sources_about_in_proportion_to_their_sizes(tmp_path: Path) -> None:
    # Unequal sources: every Ink image, every third Neon image, every ninth Photo image.
    root = embedded_root(None)
    lines = []
    for domain, step in (("Ink", 1), ("Neon", 3), ("Photo", 9), ("Sketch", 1)):
        for label, folder in enumerate(sorted((root / domain).iterdir(), key=lambda p: p.name)):
            lines += [f"{domain}/{folder.name}/{image.name} {label}" for image in sorted(folder.iterdir())[::step]]
    lists = tmp_path / "lists.txt"
    lists.write_text("\n".join(lines) + "\n")
    data = embedded(task="In,Ne,Ph->Sk", image_lists=str(lists), steps_per_epoch=300)
    loader = data.train_dataloader()["source"]
    drawn = collections.Counter(drawn_domains(loader))
    sizes = {data.domains.index(name): len(data.splits[name][0]) for name in SOURCES}
    assert set(drawn) == set(sizes) and sum(drawn.values()) == 300 * 12  # never the target
    for domain, size in sizes.items():
        assert drawn[domain] / sum(drawn.values()) == pytest.approx(size / sum(sizes.values()), abs=0.02)
    images, labels, domains = next(iter(loader))  # the batch's domain ids are the dataset's indices
    assert images.shape == (12, 3, 32, 32) and set(domains.tolist()) <= set(sizes)
    assert set(drawn_domains(data.train_dataloader()["target"])) == {data.domains.index("Sketch")}


def test_balanced_batches_hold_equal_shares_of_every_source() -> None:
    data = embedded(task="In,Ne,Ph->Sk", source_balance=True, steps_per_epoch=200)
    loader = data.train_dataloader()["source"]
    assert isinstance(loader.sampler, BalancedDomainSampler)
    drawn = drawn_domains(loader)
    assert len(drawn) == 200 * 12
    for start in range(0, len(drawn), 12):
        assert collections.Counter(drawn[start:start + 12]) == {0: 4, 1: 4, 2: 4}
    # Without replacement within a pass: the first pass over Ink's split draws each image once.
    indices = list(loader.sampler)
    ink = [i for i in indices if i < len(data.splits["Ink"][0])][:len(data.splits["Ink"][0])]
    assert len(set(ink)) == len(ink)
    torch.manual_seed(0)
    first = list(loader.sampler)
    torch.manual_seed(0)
    assert list(loader.sampler) == first  # seeded by the global torch seed, as RandomSampler is
    images, _, domains = next(iter(loader))
    assert sorted(domains.tolist()) == [0] * 4 + [1] * 4 + [2] * 4


def test_balanced_sampler_on_its_own() -> None:
    sampler = BalancedDomainSampler([2, 7], batch_size=4, num_batches=5, generator=torch.Generator().manual_seed(1))
    indices = list(sampler)
    assert len(indices) == len(sampler) == 20
    for start in range(0, 20, 4):
        batch = indices[start:start + 4]
        assert sum(i < 2 for i in batch) == 2 and all(0 <= i < 9 for i in batch)


def test_validation_is_one_loader_per_source_and_probe_pools_them() -> None:
    data = embedded(task="In,Ne,Ph->Sk", test_all_splits=True)
    loaders = data.val_dataloader()
    assert [loader.dataset.samples for loader in loaders] == [data.splits[name][1] for name in SOURCES]
    assert data.eval_names == ["Sketch", "Sketch/train", "Ink/test", "Ink/train", "Neon/test", "Neon/train",
                               "Photo/test", "Photo/train"]
    tests = data.test_dataloader()
    assert tests[5].dataset.samples == data.splits["Neon"][0]
    source_val, target_train, target_test = data.probe_dataloaders()
    assert source_val.dataset.samples == [s for name in SOURCES for s in data.splits[name][1]]
    assert target_train.dataset.samples == data.splits["Sketch"][0]
    assert target_test.dataset.samples == data.splits["Sketch"][1]
    assert data.target_dataloader().dataset.samples == data.splits["Sketch"][0]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"task": "In,Sk->Sk"}, r"^unknown task In,Sk->Sk: the target 'Sketch' is also a source$"),
    ({"source": ["In", "Ne"], "target": "Neon"}, r"the target 'Neon' is also a source"),
    ({"task": "In,Ne,Ink->Sk"}, r"^unknown task In,Ne,Ink->Sk: source 'Ink' is given twice \('In' and 'Ink'\)$"),
    ({"task": "In,Paintings->Sk"}, r"^unknown domain 'Paintings' in .*; found: Ink \(In\), Neon \(Ne\)"),
    ({"task": "In,Ne,Ph->Sk", "source_balance": True, "batch_size": 32},
     r"^source_balance needs batch_size divisible by the number of sources: batch_size 32 is not divisible by 3 "
     r"\(Ink, Neon, Photo\)$"),
    ({"source": []}, r"^unknown source \[\]"),
])
def test_bad_input_is_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(DabinError, match=message) as error:
        embedded(**kwargs)
    assert "\n" not in str(error.value)


def test_single_domain_dataset_has_no_multi_source_task(tmp_path: Path) -> None:
    make_tree(tmp_path, {"only": {"a": 3, "b": 3}})
    with pytest.raises(DabinError, match=r"^a transfer task needs two domains; .* has only \['only'\]$"):
        TransferDataModule(root=str(tmp_path), task="only,only->only", num_workers=0)
    with pytest.raises(DabinError, match=r"leave-one-out tasks need at least two domains, got \['only'\]"):
        leave_one_out_tasks(["only"])


def test_leave_one_out_tasks() -> None:
    assert leave_one_out_tasks(list(OFFICE_HOME_DOMAINS)) == [
        ("Clipart,Product,Real World", "Art"), ("Art,Product,Real World", "Clipart"),
        ("Art,Clipart,Real World", "Product"), ("Art,Clipart,Product", "Real World")]
    assert leave_one_out_tasks(["Rw", "Pr", "Ar", "Cl"])[0] == ("Cl,Pr,Rw", "Ar")  # Office-Home codes: its order
    assert leave_one_out_tasks(list(EMBEDDED_DOMAINS)) == [
        ("Neon,Photo,Sketch", "Ink"), ("Ink,Photo,Sketch", "Neon"), ("Ink,Neon,Sketch", "Photo"),
        ("Ink,Neon,Photo", "Sketch")]


@pytest.mark.parametrize(("task", "expected"), [
    ("Ar,Cl,Pr->Rw", ("Art,Clipart,Product", "Real World")),
    ("Pr,Art,clipart→real_world", ("Art,Clipart,Product", "Real World")),
    ("Art,Clipart,Product->Real World", ("Art,Clipart,Product", "Real World")),
    ("Ar->Cl", ("Art", "Clipart")),
])
def test_resolve_task(task: str, expected: tuple[str, str]) -> None:
    assert resolve_task(task, OFFICE_HOME_DOMAINS) == expected


@pytest.mark.parametrize(("task", "message"), [
    ("Ar,Rw->Rw", "task 'Ar,Rw->Rw': the target 'Real World' is also a source"),
    ("Ar,Art->Rw", "task 'Ar,Art->Rw' names the source 'Art' twice"),
    ("Ar,Xy->Rw", "unknown domain 'Xy' in task 'Ar,Xy->Rw'"),
    ("Ar->Ar", "task 'Ar->Ar' has the same source and target"),
])
def test_resolve_task_rejects(task: str, message: str) -> None:
    with pytest.raises(DabinError, match=message):
        resolve_task(task, OFFICE_HOME_DOMAINS)


SPEC = """\
name: multi
dataset: {dataset}
out: {out}
configs: {{dann: dann.yaml}}
axes:
  methods: [source_only, dann]
  norms: [bn, bin]
  tasks: {tasks}
  seeds: [0, 1, 2]
"""


@pytest.mark.parametrize("dataset", ["officehome", "embedded"])
def test_leave_one_out_spec_expands_to_one_task_per_domain(tmp_path: Path, dataset: str) -> None:
    (tmp_path / "dann.yaml").write_text("model: {}\n")
    spec_file = tmp_path / "sweep.yaml"
    spec_file.write_text(SPEC.format(dataset=dataset, out=tmp_path / "out", tasks="leave_one_out"))
    spec = load_spec(spec_file)
    domains = OFFICE_HOME_DOMAINS if dataset == "officehome" else EMBEDDED_DOMAINS
    assert spec.tasks == tuple(leave_one_out_tasks(list(domains)))
    jobs = expand_jobs(spec)
    assert len(jobs) == 4 * 2 * 2 * 3 and len({job.name for job in jobs}) == len(jobs)
    if dataset == "officehome":
        names = {job.name.rsplit("_", 1)[0] for job in jobs}
        assert "dann_bin_ArClPr-Rw_s0" in names and "source_only_bn_ClPrRw-Ar_s2" in names
        assert {job.task for job in jobs} == {"Cl,Pr,Rw→Ar", "Ar,Pr,Rw→Cl", "Ar,Cl,Rw→Pr", "Ar,Cl,Pr→Rw"}
    # An explicit multi-source task (quoted: YAML splits a bare flow list at commas) is the same task.
    task = '["Ar,Cl,Pr->Rw"]' if dataset == "officehome" else '["Ph,In,Ne->Sk"]'
    spec_file.write_text(SPEC.format(dataset=dataset, out=tmp_path / "out", tasks=task))
    assert load_spec(spec_file).tasks == (spec.tasks[-1],)


@pytest.fixture()
def eager_bin() -> Iterator[None]:
    """BIN's eager arithmetic (the same math): spares this file the kernels' compilation."""
    before = compiled.compiled_enabled()
    compiled.set_compiled(False)
    yield
    compiled.set_compiled(before)


@pytest.mark.usefixtures("eager_bin")
def test_multi_source_trains_and_tests_with_the_transfer_module(tmp_path: Path) -> None:
    pl.seed_everything(0)
    data = embedded(task="In,Ne,Ph->Sk", batch_size=6, steps_per_epoch=2)
    model = TransferModule(num_classes=data.num_classes, norm="bin", method="dann", small_input=True, width=8,
                           bottleneck_dim=16, hidden_dim=16, evaluation_points=0)
    trainer = pl.Trainer(default_root_dir=tmp_path, max_steps=2, max_epochs=-1, accelerator="cpu", devices=1,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=1,
                         val_check_interval=1, check_val_every_n_epoch=None, limit_test_batches=1,
                         callbacks=[RunSummary(seed=0)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about workers and logging
        trainer.fit(model, datamodule=data)
        validated = dict(trainer.callback_metrics)
        trainer.test(model, datamodule=data)
    assert trainer.global_step == 2
    per_source = [float(validated[f"val/acc/{name}"]) for name in SOURCES]
    assert float(validated["val/acc/avg"]) == pytest.approx(sum(per_source) / 3)
    assert list(model.test_results) == ["Sketch"]
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert (record["source"], record["target"]) == ("Ink,Neon,Photo", "Sketch")
    assert list(record["test"]) == ["Sketch"]
    assert record["source_val"]["accuracy"] == pytest.approx(sum(per_source) / 3, abs=1e-3)
