"""The code's shape: imports run one way (pages -> app -> jobs -> db -> seam), no cycles, no hidden
project imports inside functions, files readable in one sitting (DESIGN.md section 5).

The checks read the source with `ast` (nothing is imported), so they are fast and see lazy imports too.
"""

from __future__ import annotations

import ast
import graphlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("seam", "db", "jobs", "app", "pages")
RANK = {"seam": 0, "db": 1, "jobs": 2, "app": 3, "pages": 4}
MAX_LINES = 600
# Third-party packages the library (seam/ outside seam/cli) must never import.
UI_AND_STORE = ("streamlit", "sqlalchemy", "alembic")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            out[_module_name(path)] = path
    return out


SOURCES = _sources()


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _target(name: str) -> str | None:
    """The project module `name` refers to (the longest known prefix), or None if not ours."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in SOURCES:
            return candidate
        parts.pop()
    return None


class _Imports(ast.NodeVisitor):
    """Every import of a module: (target, line, inside a function, under TYPE_CHECKING)."""

    def __init__(self, module: str, is_package: bool):
        self.module, self.is_package = module, is_package
        self.found: list[tuple[str, int, bool, bool]] = []
        self._depth, self._typing = 0, 0

    def visit_FunctionDef(self, node):  # noqa: N802
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node):  # noqa: N802
        typing_only = "TYPE_CHECKING" in ast.unparse(node.test)
        self._typing += typing_only
        for child in node.body:
            self.visit(child)
        self._typing -= typing_only
        for child in node.orelse:
            self.visit(child)

    def _add(self, name: str, line: int) -> None:
        self.found.append((name, line, self._depth > 0, self._typing > 0))

    def visit_Import(self, node):  # noqa: N802
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node):  # noqa: N802
        base = _resolve(self.module, self.is_package, node)
        for alias in node.names:
            # `from pkg import sub` names a submodule when one exists, else a name in pkg
            full = f"{base}.{alias.name}" if base else alias.name
            self._add(full if _target(full) == full else base, node.lineno)


def _imports(module: str) -> list[tuple[str, int, bool, bool]]:
    path = SOURCES[module]
    visitor = _Imports(module, path.name == "__init__.py")
    visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
    return visitor.found


def _layer(module: str) -> str:
    return module.split(".")[0]


def test_imports_run_one_way():
    bad = []
    for module in SOURCES:
        layer = _layer(module)
        in_cli = module == "seam.cli" or module.startswith("seam.cli.")
        for name, line, _, _ in _imports(module):
            target = _target(name)
            if layer == "seam" and not in_cli and name.split(".")[0] in UI_AND_STORE:
                bad.append(f"{module}:{line} imports {name} (the library never imports UI or store packages)")
            if target is None:
                continue
            if in_cli and (_layer(target) in ("jobs", "db") or target == "app.server"):
                continue  # the CLI joins the layers
            if RANK[_layer(target)] > RANK[layer]:
                bad.append(f"{module}:{line} imports {target} (imports run pages -> app -> jobs -> db -> seam)")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    """Module-level imports between the project's modules form no cycle."""
    graph = {m: set() for m in SOURCES}
    for module in SOURCES:
        for name, _, in_function, typing_only in _imports(module):
            target = _target(name)
            if target and target != module and not in_function and not typing_only:
                graph[module].add(target)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def _explained(lines: list[str], line: int) -> bool:
    """A comment on the import's line, or on the line above its block of consecutive imports."""
    if "#" in lines[line - 1]:
        return True
    i = line - 2
    while i >= 0 and lines[i].strip().startswith(("from ", "import ")):
        i -= 1
    return i >= 0 and lines[i].strip().startswith("#")


def test_project_imports_inside_functions_say_why():
    """A project module imported inside a function body needs a comment saying why (e.g. `# lazy: torch`)."""
    bad = []
    for module, path in SOURCES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for name, line, in_function, _ in _imports(module):
            if not in_function or _target(name) is None:
                continue
            if not _explained(lines, line):
                bad.append(f"{module}:{line} imports {name} inside a function without a comment saying why")
    assert not bad, f"{len(bad)} unexplained lazy imports:\n" + "\n".join(bad)


def test_files_are_readable_in_one_sitting():
    too_long = []
    for folder in (*PACKAGES, "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > MAX_LINES:
                too_long.append(f"{path.relative_to(ROOT)}: {n} lines")
    assert not too_long, f"files over {MAX_LINES} lines: " + ", ".join(too_long)


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    """The checker is not vacuous: a db module importing jobs, and a two-module cycle, are caught."""
    fake = {"db.x": tmp_path / "x.py", "jobs.y": tmp_path / "y.py"}
    fake["db.x"].write_text("from jobs.y import thing\n")
    fake["jobs.y"].write_text("import db.x\n")
    monkeypatch.setattr(sys.modules[__name__], "SOURCES", fake)
    with pytest.raises(AssertionError, match="db.x:1 imports jobs.y"):
        test_imports_run_one_way()
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycles()
