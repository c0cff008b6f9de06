"""A spec that adds methods to a sweep's folder extends that sweep; one that changes it is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from dabin.errors import DabinError
from dabin.sweep.cli import _check_out_dir, _manifest
from dabin.sweep.job import expand_jobs
from dabin.sweep.spec import load_spec

SPEC = """\
name: dg
dataset: embedded
out: {out}
configs: {{erm: erm.yaml}}
axes:
  methods: {methods}
  norms: [bn]
  seeds: [0]
"""


def _spec(folder: Path, methods: str, out: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "erm.yaml").exists():
        (folder / "erm.yaml").write_text("model: {}\n")
    path = folder / f"spec{len(list(folder.glob('spec*.yaml')))}.yaml"
    path.write_text(SPEC.format(out=out, methods=methods))
    return path


def _write_manifest(path: Path) -> None:
    spec = load_spec(path)
    spec.out.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(spec, expand_jobs(spec))
    _check_out_dir(spec.out, manifest)
    manifest.write(spec.out)


def test_adding_methods_in_the_same_harness_extends_the_sweep(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_manifest(_spec(tmp_path, "[erm]", out))
    _write_manifest(_spec(tmp_path, "[erm, coral, mmd]", out))  # more methods: the same runs stay comparable
    _write_manifest(_spec(tmp_path, "[erm]", out))  # and back
    (tmp_path / "erm.yaml").write_text("model: {init_args: {lr: 0.1}}\n")
    with pytest.raises(DabinError, match="holds runs of another sweep"):
        _write_manifest(_spec(tmp_path, "[erm, coral]", out))  # the harness changed: not comparable
