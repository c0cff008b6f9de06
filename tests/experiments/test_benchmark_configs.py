"""The benchmark configs (Office-31, VisDA-2017, DomainNet, digits) parse with ``dabin fit``, build, and hold tllib's recipe.

Each config goes through the real CLI parser with ``--print_config`` (``--model.weights null``,
``--data.root`` a tiny replica, as in ``tests/experiments/test_officehome_configs.py``); the printed
data section then builds the data module on a replica with one image per class and domain
(:func:`dabin.testing.replicas.make_replica`: the dataset's real folders and list files) and the
printed model section builds the model for its classes. The recipe numbers the files' comments
claim are asserted from the YAML, and every sweep spec expands to the runs it says it has.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from dabin.cli import main
from dabin.sweep.job import expand_jobs
from dabin.sweep.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


#: Config -> (dataset key of the replica, what its comments claim: tllib's recipe).
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "office31/dann.yaml": ("office_31", {"backbone": "resnet50", "bottleneck_dim": 256, "hidden_dim": 1024,
                                         "lr": 0.01, "max_steps": 20000, "batch_size": 32, "image_size": 224,
                                         "source": "amazon", "target": "webcam"}),
    "visda2017/dann.yaml": ("visda2017", {"backbone": "resnet101", "bottleneck_dim": 256, "hidden_dim": 1024,
                                          "lr": 0.01, "max_steps": 30000, "batch_size": 32, "image_size": 224,
                                          "steps_per_epoch": 1000, "crop_scale": 1.0,
                                          "source": "train", "target": "validation"}),
    "domainnet/dann.yaml": ("domainnet", {"backbone": "resnet101", "bottleneck_dim": 1024, "hidden_dim": 1024,
                                          "lr": 0.01, "max_steps": 75000, "batch_size": 32, "image_size": 224,
                                          "steps_per_epoch": 2500, "source": "clipart", "target": "painting"}),
    "digits/dann_mnist_usps.yaml": ("digits", {"backbone": "lenet", "bottleneck_dim": 256, "hidden_dim": 1024,
                                               "lr": 0.01, "max_steps": 50000, "batch_size": 128, "image_size": 28,
                                               "steps_per_epoch": 2500, "hflip": False,
                                               "source": "MNIST", "target": "USPS"}),
    "digits/dann_usps_mnist.yaml": ("digits", {"backbone": "lenet", "bottleneck_dim": 256, "hidden_dim": 1024,
                                               "lr": 0.1, "max_steps": 50000, "batch_size": 128, "image_size": 28,
                                               "steps_per_epoch": 2500, "hflip": False,
                                               "source": "USPS", "target": "MNIST"}),
    "digits/dann_svhn_mnist.yaml": ("digits", {"backbone": "dtn", "bottleneck_dim": 256, "hidden_dim": 1024,
                                               "lr": 0.03, "max_steps": 50000, "batch_size": 128, "image_size": 32,
                                               "steps_per_epoch": 2500, "hflip": False,
                                               "source": "SVHN", "target": "MNIST"}),
}
#: Sweep spec -> (distinct tasks, runs) as its comment states them.
SPECS: dict[str, tuple[int, int]] = {
    "office31/sweep.yaml": (6, 72),
    "visda2017/sweep.yaml": (1, 12),
    "domainnet/sweep.yaml": (30, 120),
    "digits/sweep_mnist_usps.yaml": (1, 6),    # 2 methods x BN x 3 seeds (LeNet has no norm to swap)
    "digits/sweep_usps_mnist.yaml": (1, 6),
    "digits/sweep_svhn_mnist.yaml": (1, 12),   # 2 methods x BN, BIN x 3 seeds (DTN)
}


def _raw(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXPERIMENTS / name).read_text())


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny replica per dataset (one image per class and domain; official folders and lists)."""
    from dabin.testing.replicas import make_replica

    root = tmp_path_factory.mktemp("replicas")
    return {key: make_replica(key, root / key, per_class=1) for key in {key for key, _ in RECIPES.values()}}


def printed(name: str, root: Path) -> dict[str, Any]:
    """The config ``dabin fit -c NAME --data.root ROOT --model.weights null --print_config`` prints, parsed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        main(["fit", "-c", str(EXPERIMENTS / name), "--data.root", str(root), "--model.weights", "null",
              "--print_config"])
    assert stop.value.code in (0, None), out.getvalue()
    return yaml.safe_load(out.getvalue())


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_numbers_are_the_comments(name: str) -> None:
    """lr_alpha = 0.001 x max_steps, lambda_gamma = max_steps / 1000 (tllib's per-iteration schedules), and the rest."""
    config = _raw(name)
    model, data, trainer = config["model"]["init_args"], config["data"]["init_args"], config["trainer"]
    claims = RECIPES[name][1]
    steps = trainer["max_steps"]
    assert steps == claims["max_steps"] and trainer["max_epochs"] == -1
    assert model["lr_alpha"] == pytest.approx(0.001 * steps)  # (1 + 0.001 i)^-0.75 with p = i / max_steps
    assert model["lambda_gamma"] == pytest.approx(steps / 1000)  # 2 / (1 + exp(-i / 1000)) - 1
    assert (model["lr_beta"], model["lambda_max"], model["momentum"], model["weight_decay"]) == (0.75, 1.0, 0.9, 0.001)
    assert model["method"] == "dann" and model["norm"] == "bn"
    for key in ("backbone", "bottleneck_dim", "hidden_dim", "lr"):
        assert model[key] == claims[key], key
    for key in ("batch_size", "image_size", "steps_per_epoch", "crop_scale", "hflip", "source", "target"):
        if key in claims:
            assert data[key] == claims[key], key
    assert data["split"] == "official"
    # The weights the comments name: ImageNet's for the ResNets, from scratch (null) for the digit nets.
    assert model["weights"] == (None if claims["backbone"] in ("lenet", "dtn") else "IMAGENET1K_V1")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_config_parses_and_builds_on_a_replica(name: str, replicas: dict[str, Path]) -> None:
    from jsonargparse import ArgumentParser

    from datamodules import TransferDataModule
    from datamodules.presets import DATASETS
    from dabin.modules import DomainModule
    from datamodules.tree import DatasetWarning

    key, claims = RECIPES[name]
    config = printed(name, replicas[key])
    assert config["model"]["init_args"]["weights"] is None  # the override took: no download needed
    data = dict(config["data"]["init_args"])
    assert data["root"] == str(replicas[key])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)  # one image per class: the replica's count notes
        module = TransferDataModule(**data)
    info = DATASETS[key]
    assert module.tree.dataset is info and module.split == "official"
    assert (module.source_name, module.target_name) == (claims["source"], claims["target"])
    assert module.tree.num_classes == info.num_classes
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(DomainModule, "model")
    model_section = {"class_path": config["model"]["class_path"],
                     "init_args": {**config["model"]["init_args"], "num_classes": module.tree.num_classes}}
    model = parser.instantiate_classes(parser.parse_object({"model": model_section})).model
    assert model.method_name == "dann"
    assert model.bottleneck[0].out_features == claims["bottleneck_dim"]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_sweep_spec_expands_to_its_runs(name: str) -> None:
    spec = load_spec(EXPERIMENTS / name)
    assert all(path.is_file() for path in spec.config_files.values())
    jobs = expand_jobs(spec)
    tasks, runs = SPECS[name]
    assert len({(job.source, job.target) for job in jobs}) == tasks
    assert len(jobs) == runs
    assert {job.method for job in jobs} == {"dann", "source_only"}


def test_every_benchmark_config_and_spec_is_covered() -> None:
    found = {str(path.relative_to(EXPERIMENTS)) for folder in ("office31", "visda2017", "digits")
             for path in (EXPERIMENTS / folder).glob("*.yaml")}
    found |= {f"domainnet/{n}" for n in ("dann.yaml", "sweep.yaml")}  # dg.yaml, erm.yaml: the DG configs
    assert found == set(RECIPES) | set(SPECS)
