"""The package's shape: no import circles, no module past 500 lines, the report reading records only.

Read from the source with :mod:`ast` (every import, those inside functions too: a deferred import
is still a dependency), so a change that breaks one of these rules fails here, with the modules named.
On the tree before the run record became the report's interface, these checks name the circles
methods.base -> methods.registry -> methods.base and models.pretrained -> models.resnet ->
models.pretrained, sweep/jobs.py's 618 lines, and report.inputs importing three sweep modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dabin", "datamodules")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


MODULES = _modules()


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """The project modules a file imports (``from a.b import c`` counts ``a.b.c`` if it is a module, else ``a.b``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES)
    return found


def test_no_module_is_longer_than_500_lines() -> None:
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules along what they hold: {long}"


def test_no_import_circles_between_modules() -> None:
    # A package's __init__ re-exporting its submodules is its face, not a circle: left out.
    graph = {name: {m for m in _imports(path, top_level_only=False) if not MODULES[m].name == "__init__.py"}
             for name, path in MODULES.items() if path.name != "__init__.py"}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        seen[name] = 1
        for other in sorted(graph.get(name, ())):
            if seen.get(other) == 1:
                circles.append([*path[path.index(other):], other])
            elif other not in seen:
                visit(other, [*path, other])
        seen[name] = 2

    for name in sorted(graph):
        if name not in seen:
            visit(name, [name])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


@pytest.mark.parametrize("package", ["dabin.report"])
def test_the_report_reads_run_records_and_nothing_of_the_sweep(package: str) -> None:
    offenders = {name: sorted(m for m in _imports(path, top_level_only=False) if m.startswith("dabin.sweep"))
                 for name, path in MODULES.items() if name.startswith(package)}
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_the_checks_see_a_circle_and_a_sweep_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The reading above must be able to fail: two modules that import each other, one from the sweep.
    (tmp_path / "a.py").write_text("from dabin.report import b\nfrom dabin.sweep.job import Job\n")
    (tmp_path / "b.py").write_text("import dabin.report.a\n")
    monkeypatch.setitem(MODULES, "dabin.report.a", tmp_path / "a.py")
    monkeypatch.setitem(MODULES, "dabin.report.b", tmp_path / "b.py")
    assert _imports(tmp_path / "a.py", top_level_only=True) == {"dabin.report.b", "dabin.sweep.job"}
    with pytest.raises(AssertionError, match="dabin.report.a -> dabin.report.b -> dabin.report.a"):
        test_no_import_circles_between_modules()
    with pytest.raises(AssertionError, match="dabin.sweep.job"):
        test_the_report_reads_run_records_and_nothing_of_the_sweep("dabin.report")
