"""Domain generalization end to end: the data module's splits and loaders, the module, its record, the sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dabin.errors import DabinError
from dabin.modules import GeneralizationModule
from dabin.record import AccuracyPoint, RecordError, RunRecord
from dabin.record import TestResult as Result
from dabin.sweep.job import expand_jobs, job_command
from dabin.sweep.spec import load_spec
from datamodules import GeneralizationDataModule
from tests.modules.conftest import DEMO, TINY, run


@pytest.fixture(scope="module")
def photo_held_out() -> GeneralizationDataModule:
    return GeneralizationDataModule("embedded", test_domain="Ph", image_size=32, batch_size=8, num_workers=0)


def test_splits_names_and_sizes(photo_held_out: GeneralizationDataModule) -> None:
    data = photo_held_out
    assert data.train_names == ["Ink", "Neon", "Sketch"] and data.test_name == "Photo"
    assert data.source_name == "Ink,Neon,Sketch" and data.num_train_domains == 3
    assert data.val_names == ["Ink/out", "Neon/out", "Sketch/out", "Photo/in", "Photo/out"]
    assert data.eval_names == ["Photo", *data.val_names]
    for name, (inside, outside) in data.splits.items():
        keys_in, keys_out = {s.key for s in inside}, {s.key for s in outside}
        assert not keys_in & keys_out
        assert keys_in | keys_out == {s.key for s in data.tree.domain_samples(data.domains.index(name))}
        assert abs(len(outside) / (len(inside) + len(outside)) - 0.2) < 0.01
    # The test domain's whole set is every one of its images.
    assert len(data.samples("Photo")) == len(data.splits["Photo"][0]) + len(data.splits["Photo"][1])


def test_each_training_loader_serves_its_domain_only(photo_held_out: GeneralizationDataModule) -> None:
    loaders = photo_held_out.train_dataloader()
    assert list(loaders) == ["Ink", "Neon", "Sketch"]
    for name, loader in loaders.items():
        images, labels, domains = next(iter(loader))
        assert images.shape == (8, 3, 32, 32)
        assert set(domains.tolist()) == {photo_held_out.domains.index(name)}


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"test_domain": "Ph", "train_domains": "In,Ph"}, "the test domain 'Photo' is also a training domain"),
    ({"test_domain": "Ph", "train_domains": ["In", "Ink"]}, "train_domains names 'Ink' twice"),
    ({"test_domain": "Mars"}, "Mars"),
    ({"task": "In,Ne->Ne"}, "the test domain 'Neon' is also a training domain"),
])
def test_bad_domains_are_one_line(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(DabinError, match=expected):
        GeneralizationDataModule("embedded", image_size=32, num_workers=0, **kwargs)


def test_leave_one_out_run_evaluates_its_validation_domain() -> None:
    data = GeneralizationDataModule("embedded", task="In,Ne->Sk", image_size=32, num_workers=0)
    assert data.unseen_names == ["Sketch", "Photo"]
    assert "Photo/in" in data.val_names and "Photo/out" in data.val_names


def test_crossdomain_mixstyle_needs_two_training_domains() -> None:
    # The per-domain norms' refusals: tests/modules/test_dson.py.
    with pytest.raises(DabinError, match="with 3 training domains use mixstyle random"):
        GeneralizationModule(num_classes=10, num_domains=3, mixstyle="crossdomain", small_input=True, width=8)


def test_fit_records_checkpoints_and_the_whole_test_domain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "run"
    status, err = run(["fit", "-c", str(DEMO / "dg_erm.yaml"), *TINY, "--trainer.max_steps", "20",
                       "--model.method", "group_dro", "--data.test_domain", "Sketch",
                       "--trainer.default_root_dir", str(root)], capsys)
    assert status == 0, err
    record = RunRecord.read(root)
    assert record.method == "group_dro" and record.source == "Ink,Neon,Photo" and record.target == "Sketch"
    assert [p.step for p in record.accuracy_points] == [10, 20]
    last = record.accuracy_points[-1].accuracy
    assert set(last) == {"Ink/out", "Neon/out", "Photo/out", "Sketch/in", "Sketch/out"}
    # The final test and the last checkpoint are the same weights: the same numbers.
    for name, result in last.items():
        assert record.test[name].n == result.n
        assert record.test[name].accuracy == pytest.approx(result.accuracy, abs=1e-4)  # float32 vs float64
    whole = record.test["Sketch"]
    parts = record.test["Sketch/in"], record.test["Sketch/out"]
    assert whole.n == parts[0].n + parts[1].n
    assert whole.accuracy == pytest.approx(sum(p.accuracy * p.n for p in parts) / whole.n, abs=1e-3)
    # Group DRO's domain weights travel in the checkpoint (a resumed run continues them).
    state = torch.load(root / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert any(key.startswith("objective.") for key in state)


def test_accuracy_points_round_trip_and_refuse_bad_fields() -> None:
    point = AccuracyPoint(step=5, accuracy={"Ink/out": Result(50.0, 90)})
    assert AccuracyPoint.from_json(0, json.loads(json.dumps(point.to_json()))) == point
    with pytest.raises(RecordError, match=r"accuracy of 'accuracy_points\[3\] Ink/out' is 150"):
        AccuracyPoint.from_json(3, {"step": 5, "accuracy": {"Ink/out": {"accuracy": 150, "n": 9}}})


def _spec(tmp_path: Path, extra: str = "") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "erm.yaml").write_text("model: {}\n")
    spec = tmp_path / "dg.yaml"
    spec.write_text(f"name: dg\ndataset: embedded\nout: {tmp_path / 'out'}\nconfigs: {{erm: erm.yaml}}\n"
                    f"axes:\n  methods: [erm, coral]\n  norms: [bn, dsbin]\n  seeds: [0]\n{extra}")
    return spec


def test_sweep_runs_every_held_out_domain_and_the_leave_one_out_runs(tmp_path: Path) -> None:
    jobs = expand_jobs(load_spec(_spec(tmp_path)))
    # dsbin runs too (a branch per training domain); each domain held out once per method and norm.
    assert {job.norm for job in jobs} == {"bn", "dsbin"}
    bn = [job for job in jobs if job.norm == "bn"]
    assert [(job.method, job.source, job.target) for job in bn][:4] == [
        ("erm", "Neon,Photo,Sketch", "Ink"), ("erm", "Ink,Photo,Sketch", "Neon"),
        ("erm", "Ink,Neon,Sketch", "Photo"), ("erm", "Ink,Neon,Photo", "Sketch")]
    assert len(jobs) == 16
    command = job_command(jobs[0], tmp_path / "r")
    assert command[command.index("--data.train_domains") + 1] == "Neon,Photo,Sketch"
    assert command[command.index("--data.test_domain") + 1] == "Ink"
    coral = next(job for job in jobs if job.method == "coral")
    coral_command = job_command(coral, tmp_path / "r")
    assert coral_command[coral_command.index("--model.method") + 1] == "coral"
    assert "--model.method" not in command  # ERM is its config's own method
    lodo = expand_jobs(load_spec(_spec(tmp_path / "lodo", "leave_one_domain_out: true\n")))
    assert len(lodo) == 2 * 2 * (4 + 4 * 3)
    assert ("erm", "Neon,Photo", "Ink") in {(job.method, job.source, job.target) for job in lodo}
    assert len({job.name for job in lodo}) == len(lodo)


def test_leave_one_domain_out_needs_a_dg_method(tmp_path: Path) -> None:
    (tmp_path / "dann.yaml").write_text("model: {}\n")
    spec = tmp_path / "s.yaml"
    spec.write_text("dataset: embedded\nconfigs: {dann: dann.yaml}\naxes: {methods: [dann]}\n"
                    "leave_one_domain_out: true\n")
    with pytest.raises(DabinError, match="leave_one_domain_out adds runs of the domain-generalization methods"):
        load_spec(spec)


def test_pacs_replica_uses_its_authors_split_files(tmp_path: Path) -> None:
    from dabin.testing.replicas import make_replica

    root = make_replica("pacs", tmp_path / "pacs", per_class=3)
    data = GeneralizationDataModule(str(root), test_domain="sketch", image_size=32, num_workers=0)
    assert data.split_source == "official"
    assert data.train_names == ["art_painting", "cartoon", "photo"]
    # The replica's split files put each class's last image in validation (crossval).
    assert all(len(outside) == 7 and len(inside) == 14 for inside, outside in data.splits.values())
    random = GeneralizationDataModule(str(root), test_domain="sketch", image_size=32, num_workers=0,
                                      official_splits=False)
    assert random.split_source == "random 80/20"
    assert random.splits["photo"][1] != data.splits["photo"][1]


def test_sweep_cli_tasks_keep_a_multi_source_task_whole() -> None:
    from dabin.sweep.cli import _split_tasks

    assert _split_tasks("In,Ne,Ph->Sk, Ar->Cl,Cl→Ar") == ["In,Ne,Ph->Sk", "Ar->Cl", "Cl→Ar"]
    assert _split_tasks("Ar") == ["Ar"]  # no arrow: resolve_task says what is wrong with it


def test_real_scale_dg_specs_load_with_their_leave_one_out_runs() -> None:
    root = DEMO.parent
    for name, domains in (("officehome", 4), ("pacs", 4), ("vlcs", 4), ("terra_incognita", 4), ("domainnet", 6)):
        spec = load_spec(root / name / "dg.yaml")
        jobs = expand_jobs(spec)
        # methods x norms x seeds x (tasks + their leave-one-out runs)
        assert len(jobs) == 5 * 2 * 3 * (domains + domains * (domains - 1)), name
        if name != "officehome":  # the domains as the catalog spells them
            from datamodules.catalog import DATASETS

            assert spec.domains == DATASETS[name].domains


@pytest.mark.parametrize("name", ["pacs", "vlcs", "terra_incognita", "domainnet"])
def test_real_scale_dg_configs_parse(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from dabin.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["fit", "-c", str(DEMO.parent / name / "erm.yaml"), "--model.weights", "null", "--print_config"])
    assert stop.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["class_path"] == "dabin.modules.GeneralizationModule"
    assert config["model"]["init_args"]["backbone"] == "resnet50" and config["trainer"]["max_steps"] == 5000


def test_a_dataset_of_one_domain_is_one_line(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / "Only" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8)).save(tmp_path / "Only" / name / f"{i}.png")
    with pytest.raises(DabinError, match=r"domain generalization needs at least two domains; .* has only \['Only'\]"):
        GeneralizationDataModule(str(tmp_path), image_size=32, num_workers=0)
