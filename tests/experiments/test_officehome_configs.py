"""Every Office-Home config parses with ``dabin fit`` and builds the method its file is named for.

Nothing trains and no ImageNet weights are needed: each config goes through the real CLI parser with
``--print_config`` (``--model.weights null``), and the printed model section is then built on its own.
"""

from __future__ import annotations

import contextlib
import functools
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from dabin.cli import main
from dabin.methods.names import TRANSFER_METHODS

REPO = Path(__file__).resolve().parents[2]
OFFICEHOME = REPO / "experiments" / "officehome"
#: The sweep specs (a top-level ``axes:``) are not training configs; they have a test of their own below.
SPECS = sorted(path.name for path in OFFICEHOME.glob("*.yaml") if "axes" in (yaml.safe_load(path.read_text()) or {}))
CONFIGS = sorted(path.name for path in OFFICEHOME.glob("*.yaml") if path.name not in SPECS)
#: What may differ between two transfer configs: the method and where its runs go.
PER_METHOD = {("trainer", "default_root_dir"), ("model", "init_args", "method")}


@functools.cache
def printed(name: str) -> dict[str, Any]:
    """The config ``dabin fit -c NAME --model.weights null --print_config`` prints, parsed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        main(["fit", "-c", str(OFFICEHOME / name), "--model.weights", "null", "--print_config"])
    assert stop.value.code in (0, None), out.getvalue()
    return yaml.safe_load(out.getvalue())


def build_model(model: dict[str, Any]) -> Any:
    """Instantiate a printed ``model`` section (class path and init args) without the rest of the CLI."""
    from jsonargparse import ArgumentParser

    from dabin.modules import DomainModule

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(DomainModule, "model")
    return parser.instantiate_classes(parser.parse_object({"model": model})).model


def flatten(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    items: dict[tuple[str, ...], Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            items.update(flatten(value, (*prefix, key)))
        else:
            items[(*prefix, key)] = value
    return items


def test_every_transfer_method_has_a_config() -> None:
    assert {name.removesuffix(".yaml") for name in CONFIGS} >= set(TRANSFER_METHODS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_parses_and_builds_its_method(name: str) -> None:
    config = printed(name)
    assert config["model"]["init_args"]["weights"] is None  # the override took: no download needed
    model = build_model(config["model"])
    stem = name.removesuffix(".yaml")
    assert model.method_name == stem  # what metrics.json and the sweep's results record
    if stem == "erm":  # erm.yaml: domain generalization, DomainBed's harness
        assert config["model"]["class_path"] == "dabin.modules.GeneralizationModule"
        assert config["data"]["class_path"] == "datamodules.GeneralizationDataModule"
        return
    if stem not in TRANSFER_METHODS:  # mixed.yaml: the mixed-domain classifier, no transfer method
        assert config["model"]["class_path"] == "dabin.modules.MixedDomainClassifier"
        return
    assert config["model"]["class_path"] == "dabin.modules.TransferModule"
    assert model.hparams["method"] == stem  # what checkpoints and metrics.json record
    method = config["model"]["init_args"]["method"]
    if isinstance(method, dict):
        # Options given by class path reach the loss module (not replaced by the class's defaults).
        raw = yaml.safe_load((OFFICEHOME / name).read_text())["model"]["init_args"]["method"]
        for option, value in raw.get("init_args", {}).items():
            assert method["init_args"][option] == value
            if hasattr(model.adaptation_loss, option):
                assert getattr(model.adaptation_loss, option) == value
    else:
        assert method in (stem, None)  # None: dann.yaml, where DANN is the module's default


def harness(name: str) -> dict[tuple[str, ...], Any]:
    """The printed config without what may differ between methods (:data:`PER_METHOD`)."""
    return {key: value for key, value in flatten(printed(name)).items()
            if key[:2] not in PER_METHOD and key[:3] not in PER_METHOD}


@pytest.mark.parametrize("name", [n for n in CONFIGS if n.removesuffix(".yaml") in TRANSFER_METHODS])
def test_transfer_configs_share_the_dann_harness(name: str) -> None:
    """Backbone, heads, optimizer, schedule, data, batch and devices are dann.yaml's in every method."""
    assert harness(name) == harness("dann.yaml")
    if name != "dann.yaml":  # each method's runs go to a folder of their own
        root = printed(name)["trainer"]["default_root_dir"]
        assert root != printed("dann.yaml")["trainer"]["default_root_dir"]


@pytest.mark.parametrize("name", SPECS)
def test_sweep_spec_loads(name: str) -> None:
    from dabin.sweep.spec import load_spec

    spec = load_spec(OFFICEHOME / name)
    assert all(path.is_file() for path in spec.config_files.values())


def test_the_sweep_specs_are_found() -> None:
    assert SPECS == ["dg.yaml", "multi_source.yaml", "norms.yaml", "sweep.yaml"]
