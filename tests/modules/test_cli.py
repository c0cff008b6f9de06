"""Every shipped config runs through ``dabin fit`` (fast_dev_run) and bad inputs are one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from .conftest import DEMO, OFFICEHOME, TINY, run

#: What importing the deprecated package ``dabin.tasks`` warns.
TASKS_DEPRECATED = r"dabin\.tasks is the earlier name of dabin\.modules"


@pytest.fixture
def unimported_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """``dabin.tasks`` as if not imported yet, so that importing it warns again (it warns once a process).

    Whatever was imported before is put back afterwards.
    """
    import sys

    import dabin

    monkeypatch.delitem(sys.modules, "dabin.tasks", raising=False)
    monkeypatch.delattr(dabin, "tasks", raising=False)


@pytest.mark.parametrize("config", ["dann.yaml", "mixed.yaml"])
def test_demo_configs_fast_dev_run(config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["fit", "-c", str(DEMO / config), "--trainer.fast_dev_run", "1",
                       "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model_selection"].startswith("last checkpoint")
    names = {"dann.yaml": ["Neon"], "mixed.yaml": ["Ink", "Neon", "Photo", "Sketch"]}[config]
    assert list(metrics["test"]) == names
    assert all(0 <= v["accuracy"] <= 100 and v["n"] > 0 for v in metrics["test"].values())
    gates = (tmp_path / "gates.csv").read_text().splitlines()
    assert gates[0] == "layer,stage,level,depth,channel,gate" and len(gates) > 100


@pytest.mark.parametrize(("config", "extra", "names"), [
    ("dann.yaml", ["--data.task", "Pr->Rw"], ["Real World"]),
    ("mixed.yaml", ["--data.fold", "1", "--data.k", "3"], ["Art", "Clipart", "Product", "Real World"]),
])
def test_officehome_configs_fast_dev_run(config: str, extra: list[str], names: list[str], office_tree: Path,
                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["fit", "-c", str(OFFICEHOME / config), "--data.root", str(office_tree.parent),
                       "--model.weights", "null", *TINY, *extra, "--trainer.fast_dev_run", "1",
                       "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                       "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert list(metrics["test"]) == names
    assert metrics["norm"] == "bin"
    assert metrics["num_classes"] == 3  # linked from the data


def test_officehome_recipe_with_the_published_weights_file(office_tree: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The paper's DANN recipe, offline, with a file laid out exactly like resnet18-f37072fd.pth."""
    import torch

    from dabin.testing.weights import write_published_weights

    weights = write_published_weights(tmp_path / "resnet18-f37072fd.pth", seed=3)
    status, err = run(["fit", "-c", str(OFFICEHOME / "dann.yaml"), "--data.root", str(office_tree.parent),
                       "--model.weights", str(weights), *TINY, "--trainer.max_steps", "1",
                       "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
                       "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path / "run")], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["batch"]["per_device"] == {"source": 4, "target": 4} and metrics["batch"]["devices"] == 1
    assert metrics["gate_lr"]["of"] == "group"
    published = torch.load(weights, weights_only=True)
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    # The backbone started from the file: conv weights moved by one small step at most.
    assert torch.allclose(saved["backbone.layer4.1.conv2.weight"], published["layer4.1.conv2.weight"], atol=1e-2)


def test_source_only_is_recorded_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), "--model.adaptation", "false", "--model.norm", "bn",
                       "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["method"], metrics["norm"]) == ("source_only", "bn")
    assert not (tmp_path / "gates.csv").exists()  # a BN model has no gates


@pytest.mark.parametrize("norm", ["dsbin", "switchable"])
def test_learned_mixtures_are_written_beside_the_record(norm: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), "--model.norm", norm, "--trainer.fast_dev_run", "1",
                       "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status == 0, err
    if norm == "dsbin":
        lines = (tmp_path / "gates.csv").read_text().splitlines()
        assert lines[0] == "layer,stage,level,depth,channel,gate,target_gate" and len(lines) > 100
        assert not (tmp_path / "switch_weights.csv").exists()
    else:
        lines = (tmp_path / "switch_weights.csv").read_text().splitlines()
        assert lines[0] == "layer,stage,level,depth,statistic,in,ln,bn" and len(lines) > 20
        assert not (tmp_path / "gates.csv").exists()


def test_source_validation_accuracy_is_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), "--trainer.max_steps", "3", "--trainer.val_check_interval",
                       "3", "--trainer.check_val_every_n_epoch", "null", "--data.task", "Ph->Sk",
                       "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    logged = [row for row in csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))) if row.get("val/acc/Photo")]
    # The last validation (on Photo's validation split, the source's) is what metrics.json records.
    assert metrics["source_val"] == {"accuracy": pytest.approx(float(logged[-1]["val/acc/Photo"]), abs=1e-3),
                                     "step": 3}


@pytest.mark.parametrize(("args", "expected"), [
    (["--model.norm", "gn"], "gn"),
    (["--data.task", "Ink->Oil"], "'Oil'"),
    (["--data.target", "Ink"], "Ink"),
    (["--model.no_such_key", "1"], "no_such_key"),
    (["--data.root", "/no/such/folder"], "/no/such/folder"),
    (["--model.width", "64", "--model.weights", "/no/such/weights.pth"], "/no/such/weights.pth"),
    (["--model.width", "64", "--model.weights", "IMAGENET1K_V9"], "IMAGENET1K_V9"),
    (["--model.weights", "IMAGENET1K_V1"], "width 64"),
    (["--trainer.max_stepz", "3"], "max_stepz"),
    (["--model.lr", "abc"], "model.lr"),
    # values that parse but that Lightning refuses when it builds the trainer
    (["--trainer.max_steps", "-5"], "You passed in -5"),
    (["--trainer.devices", "0"], "devices='0'"),
    (["--trainer.accelerator", "gpu"], "gpu"),
    (["--trainer.strategy", "nonsense"], "strategy='nonsense'"),
    (["--trainer.num_nodes", "-1"], "got -1"),
    (["--trainer.accumulate_grad_batches", "0"], "accumulate_grad_batches must be at least 1, got 0"),
])
def test_bad_input_is_one_line(args: list[str], expected: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), *args, "--trainer.fast_dev_run", "1",
                       "--trainer.default_root_dir", str(tmp_path)], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status != 0
    assert len(lines) == 1 and lines[0].startswith("dabin: error:"), err
    assert expected in lines[0]
    assert not (tmp_path / "metrics.json").exists()


def test_weights_offline_say_how_to_pass_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached: torchvision must download
    monkeypatch.setattr("torch.hub.download_url_to_file", _offline)
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), "--model.weights", "IMAGENET1K_V1",
                       "--model.small_input", "false", "--model.width", "64", "--trainer.fast_dev_run", "1",
                       "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status != 0
    assert "--model.weights /path/to/resnet18-" in err and len(err.strip().splitlines()) == 1


def _offline(*args: object, **kwargs: object) -> None:
    raise OSError("network is unreachable")


def test_nan_loss_stops_the_run_naming_the_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["fit", "-c", str(DEMO / "mixed.yaml"), "--model.lr", "1e30", "--trainer.max_steps", "6",
                       "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status != 0
    line = err.strip().splitlines()[-1]
    assert line.startswith("dabin: error: training loss became") and "at step" in line
    assert not (tmp_path / "metrics.json").exists()


def test_ddp_on_cpu_two_processes(tmp_path: Path) -> None:
    """The same config under Lightning DDP (gloo, 2 CPU processes): each held-out image is tested exactly
    once (no padding repeats), and the summary records the batch the run really used."""
    import os
    import subprocess
    import sys

    from datamodules import KFoldDataModule

    command = [sys.executable, "-m", "dabin", "fit", "-c", str(DEMO / "mixed.yaml"), "--trainer.accelerator", "cpu",
               "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_steps", "2",
               "--trainer.limit_val_batches", "1", "--data.batch_size", "8", "--data.fold", "0",
               "--trainer.default_root_dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 2 and list(metrics["test"]) == ["Ink", "Neon", "Photo", "Sketch"]
    data = KFoldDataModule(root="embedded", k=5, fold=0, seed=0, image_size=32)
    expected = {name: len(data.held_out(d)) for d, name in enumerate(data.domains)}
    assert any(count % 2 for count in expected.values())  # an uneven split, which padding would repeat
    assert {name: entry["n"] for name, entry in metrics["test"].items()} == expected
    assert metrics["batch"] == {"per_device": {"images": 8}, "devices": 2, "accumulate_grad_batches": 1,
                                "effective": {"images": 16}, "effective_images": 16}


def test_run_records_batch_and_gate_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), "--model.gate_lr_base", "base",
                       "--trainer.accumulate_grad_batches", "2", "--trainer.fast_dev_run", "2",
                       "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["batch"]["per_device"] == {"source": 32, "target": 32}
    assert metrics["batch"]["effective"] == {"source": 64, "target": 64} and metrics["batch"]["devices"] == 1
    # lr 0.05, backbone from scratch at 1x: with "base" the gates run at 10 x 0.05 whatever their group.
    assert metrics["gate_lr"] == {"mult": 10.0, "of": "base", "initial_lr": [0.5]}


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage"])
def test_unreadable_ckpt_path_is_one_line(damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A torn checkpoint (disk full, node lost while writing) is named in one line, not torch's unpickler error."""
    status, err = run(["fit", "-c", str(DEMO / "mixed.yaml"), "--trainer.max_steps", "2", "--trainer.limit_val_batches",
                       "1", "--trainer.limit_test_batches", "1", "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status == 0, err
    last = tmp_path / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    bad = tmp_path / "bad.ckpt"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        bad.write_bytes(b"not a checkpoint" * 64)
    status, err = run(["fit", "-c", str(DEMO / "mixed.yaml"), "--trainer.max_steps", "3",
                       "--trainer.default_root_dir", str(tmp_path / "again"), "--ckpt_path", str(bad)], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    expected = "no such checkpoint file" if damage == "missing" else "cannot be read"
    assert lines[0].startswith(f"dabin: error: --ckpt_path {bad}") and expected in lines[0]


@pytest.mark.parametrize("method", ["source_only", "adabn", "cdan", "cdan_e", "mcc", "mdd", "dan", "bnm"])
def test_every_method_trains_from_the_cli(method: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), "--model.method", method, "--trainer.fast_dev_run", "1",
                       "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == method and metrics["config"]["model"]["init_args"]["method"] == method
    assert metrics["batch"]["per_device"] == ({"source": 32} if method in ("source_only", "adabn")
                                              else {"source": 32, "target": 32})


def test_method_with_options_by_class_and_contradictions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), "--model.method", "CDANLoss",
                       "--model.method.entropy", "true", "--trainer.fast_dev_run", "1",
                       "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status == 0, err
    assert json.loads((tmp_path / "metrics.json").read_text())["method"] == "cdan_e"  # CDAN with entropy is CDAN+E
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), "--model.method", "cdan", "--model.adaptation", "false",
                       "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path / "x")], capsys)
    assert status == 2 and "adaptation: false" in err and len(err.strip().splitlines()) == 1
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), "--model.method", "cdann", "--trainer.fast_dev_run", "1",
                       "--trainer.default_root_dir", str(tmp_path / "y")], capsys)
    assert status == 2 and "model.method" in err and len(err.strip().splitlines()) == 1


def test_checkpoint_of_the_older_dann_module_loads(tmp_path: Path, unimported_tasks: None) -> None:
    """Before the methods became loss modules, DANN's domain classifier and λ had other names."""
    import torch

    from dabin.modules import TransferModule

    model = TransferModule(num_classes=4, norm="bn", small_input=True, width=8, bottleneck_dim=16, hidden_dim=8)
    state = {k.replace("adaptation_loss.discriminator.", "domain_classifier."): v for k, v in model.state_dict().items()}
    state["grl.coeff"] = torch.tensor(0.5)
    hparams = {k: v for k, v in model.hparams.items() if k != "method"}
    torch.save({"state_dict": state, "hyper_parameters": hparams, "pytorch-lightning_version": "2.6.0"},
               tmp_path / "old.ckpt")
    with pytest.warns(DeprecationWarning, match=TASKS_DEPRECATED):
        from dabin.tasks import DANN  # the earlier name, as an old script would use it

    loaded = DANN.load_from_checkpoint(tmp_path / "old.ckpt")
    assert loaded.method_name == "dann"
    assert torch.equal(loaded.adaptation_loss.discriminator[0].weight, model.adaptation_loss.discriminator[0].weight)


def test_domain_stats_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), "--model.domain_stats", "domain_specific",
                       "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path)], capsys)
    assert status == 0, err
    assert json.loads((tmp_path / "metrics.json").read_text())["domain_stats"] == "domain_specific"


def test_model_error_is_the_only_line_a_user_sees(tmp_path: Path) -> None:
    """Lightning's own info lines ("Seed set to 0", "GPU available") are held until the model is built."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "dabin", "fit", "-c", str(DEMO / "dann.yaml"), "--model.backbone",
                             "resnet9000", "--trainer.default_root_dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("dabin: error: unknown backbone 'resnet9000'")


def test_configs_naming_the_earlier_module_still_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     unimported_tasks: None) -> None:
    # Configs (and the config.yaml beside every earlier run) name dabin.tasks.DANN; the package is
    # dabin.modules and the class TransferModule now.
    config = tmp_path / "old.yaml"
    config.write_text((DEMO / "dann.yaml").read_text().replace("dabin.modules.TransferModule", "dabin.tasks.DANN"))
    assert "dabin.tasks.DANN" in config.read_text()
    with pytest.warns(DeprecationWarning, match=TASKS_DEPRECATED):
        status, err = run(["fit", "-c", str(config), "--trainer.fast_dev_run", "1", "--trainer.default_root_dir",
                           str(tmp_path / "run")], capsys)
    assert status == 0, err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["method"] == "dann"


def test_the_earlier_package_name_warns_where_it_is_imported(unimported_tasks: None) -> None:
    import dabin.modules

    with pytest.warns(DeprecationWarning, match=TASKS_DEPRECATED) as caught:
        import dabin.tasks
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert [Path(w.filename).name for w in deprecations] == ["test_cli.py"]  # stacklevel: the importer
    message = str(deprecations[0].message)
    assert "will be removed" in message and "dabin.modules.TransferModule" in message
    assert dabin.tasks.DANN is dabin.modules.TransferModule
    assert dabin.tasks.MixedDomainClassifier is dabin.modules.MixedDomainClassifier
    assert dabin.tasks.DomainTask is dabin.modules.DomainModule
