"""The layers of ``verify`` import only downward, and its modules import one another without cycles.

Bottom to top:

====  =========================================================================
0     ``verify.core.*``: networks, domains, the scale equation, certificate, …
1     ``verify.solvers.*``: the solvers of one block's scale equation
2     ``verify.construction.*``: ``reconstruct``
3     the public API: ``verify`` (``verify/__init__.py``) and ``verify.nn``
4     ``verify.job.*``: the verification job
5     ``verify.cli.*`` and ``verify.__main__``: the command line
====  =========================================================================

A module may import from its own layer and the layers below it, never from a layer above. Every
import statement counts, wherever it is: at module level, deferred inside a function, or under
``if TYPE_CHECKING:`` (a type-only dependency is still a dependency of the design). So does
``importlib.import_module("verify.…")`` with a literal name. ``import verify`` and
``from verify import X`` (``X`` not a submodule) import the public API, layer 3. The implicit import
of parent packages (``import verify.core.domains`` runs ``verify/__init__.py``) is not counted.

The module graph is read with `ast` only: nothing under ``verify/`` is imported or executed.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "verify"

LAYERS: tuple[tuple[str, int], ...] = (
    ("verify.core", 0),
    ("verify.solvers", 1),
    ("verify.construction", 2),
    ("verify.nn", 3),
    ("verify.job", 4),
    ("verify.cli", 5),
    ("verify.__main__", 5),
)
"""Module prefixes and their layer; ``verify`` itself (the package ``__init__``) is layer 3."""
PUBLIC_API = ("verify", 3)
LAYER_NAMES = {
    0: "core",
    1: "solvers",
    2: "construction",
    3: "public API (verify, verify.nn)",
    4: "job",
    5: "cli (verify.cli, verify.__main__)",
}


@dataclass(frozen=True)
class Edge:
    """One import of a ``verify`` module by another.

    Attributes
    ----------
    importer, imported : str
        Dotted module names; ``imported`` is the most specific module the statement names
        (``from verify.core import domains`` imports ``verify.core.domains``).
    path : str
        The importer's file, relative to the repository root.
    line : int
        Line of the import statement.
    kind : str
        ``"module-level"``, ``"deferred"`` (inside a function), ``"TYPE_CHECKING"`` or ``"dynamic"``
        (``importlib.import_module`` with a literal name).
    """

    importer: str
    imported: str
    path: str
    line: int
    kind: str

    def where(self) -> str:
        """``path:line`` of the statement."""
        return f"{self.path}:{self.line}"


def layer_of(module: str) -> int | None:
    """The layer of a dotted ``verify`` module name, or None if no layer claims it."""
    if module == PUBLIC_API[0]:
        return PUBLIC_API[1]
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """Dotted name of the module in ``path`` (relative to the directory ``root`` that holds the package),
    and whether it is a package ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def discover(root: Path, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Every module of ``package`` under ``root``: dotted name -> (file, is a package ``__init__``)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        name, is_package = module_name(path, root)
        modules[name] = (path, is_package)
    return modules


def subpackages(root: Path, package: str = PACKAGE) -> list[str]:
    """Dotted names of every directory under ``root/package`` that holds Python files (subpackages)."""
    found = []
    for directory in sorted(p for p in (root / package).rglob("*") if p.is_dir()):
        if "__pycache__" in directory.parts or not any(directory.glob("*.py")):
            continue
        found.append(".".join(directory.relative_to(root).parts))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    """Whether an ``if`` test is ``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.Module) -> Iterable[tuple[ast.AST, str]]:
    """Every node of ``tree`` with the context it runs in: module-level, deferred or TYPE_CHECKING."""

    def walk(node: ast.AST, kind: str) -> Iterable[tuple[ast.AST, str]]:
        for child in ast.iter_child_nodes(node):
            inner = kind
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = "deferred" if kind == "module-level" else kind
            elif isinstance(node, ast.If) and _is_type_checking(node.test) and child in node.body:
                inner = "TYPE_CHECKING"
            yield child, inner
            yield from walk(child, inner)

    yield from walk(tree, "module-level")


def _resolve(name: str, known: Mapping[str, object]) -> str:
    """The longest prefix of the dotted ``name`` that is a known module (``name`` itself if none is)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return name


def _relative_base(module: str, is_package: bool, level: int) -> str:
    """The package that ``from {'.' * level}… import`` refers to inside ``module``."""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(parts):
        raise ValueError(f"{module}: relative import beyond the top-level package (level {level})")
    return ".".join(parts[: len(parts) - (level - 1)])


def imports_of(
    module: str, is_package: bool, source: str, known: Mapping[str, object], path: str = "<string>"
) -> list[Edge]:
    """The imports of ``verify`` modules made by ``module`` (whose source is ``source``).

    ``import a.b.c`` imports ``a.b.c`` (not its parent packages); ``from p import x`` imports
    ``p.x`` if that is a module and ``p`` otherwise; relative imports are resolved against
    ``module``. Names outside ``verify`` are ignored.
    """
    tree = ast.parse(source, filename=path)
    edges = []

    def add(name: str, node: ast.AST, kind: str) -> None:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            edges.append(Edge(module, _resolve(name, known), path, node.lineno, kind))

    for node, kind in _statements(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, kind)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = _relative_base(module, is_package, node.level)
                base = f"{prefix}.{base}" if base else prefix
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(submodule if alias.name != "*" and submodule in known else base, node, kind)
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            add(node.args[0].value, node, "dynamic")
    return [e for e in dict.fromkeys(edges) if e.imported != e.importer]  # one edge per statement and module


def import_graph(root: Path, package: str = PACKAGE) -> tuple[dict[str, tuple[Path, bool]], list[Edge]]:
    """All modules of ``package`` under ``root`` and every import between them."""
    modules = discover(root, package)
    edges = []
    for name, (path, is_package) in modules.items():
        relative = path.relative_to(root).as_posix()
        edges += imports_of(name, is_package, path.read_text(encoding="utf-8"), modules, relative)
    return modules, edges


def unassigned(modules: Iterable[str]) -> list[str]:
    """Messages for modules that no layer claims."""
    return [
        f"{name} needs a layer: no layer claims this module; give it one in tests/test_layers.py LAYERS "
        f"(or move it into core, solvers, construction, nn, job or cli)"
        for name in sorted(modules)
        if layer_of(name) is None
    ]


def upward(edges: Iterable[Edge]) -> list[str]:
    """Messages for imports from a module to a module of a higher layer."""
    found = []
    for e in edges:
        low, high = layer_of(e.importer), layer_of(e.imported)
        if low is not None and high is not None and high > low:
            found.append(
                f"{e.where()}: {e.importer} (layer {low}, {LAYER_NAMES[low]}) imports {e.imported} "
                f"(layer {high}, {LAYER_NAMES[high]}), {e.kind}"
            )
    return found


def strongly_connected(nodes: Iterable[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (each sorted), in a stable order."""
    successors: dict[str, set[str]] = {n: set() for n in nodes}
    for e in edges:
        successors.setdefault(e.importer, set()).add(e.imported)
        successors.setdefault(e.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for start in sorted(successors):
        if start in index:
            continue
        work = [(start, iter(sorted(successors[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(successors[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def cycle_in(component: Sequence[str], edges: Iterable[Edge]) -> list[Edge]:
    """A shortest cycle through the first module of a strongly connected ``component``, as its edges."""
    members = set(component)
    first: dict[tuple[str, str], Edge] = {}
    for e in sorted(edges, key=lambda e: (e.importer, e.imported, e.line)):
        if e.importer in members and e.imported in members:
            first.setdefault((e.importer, e.imported), e)
    start = component[0]
    previous: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for (src, dst), e in first.items():
                if src != node:
                    continue
                if dst == start:
                    path = [e]
                    while path[0].importer != start:
                        path.insert(0, previous[path[0].importer])
                    return path
                if dst not in previous:
                    previous[dst] = e
                    following.append(dst)
        frontier = following
    raise AssertionError(f"no cycle through {start} in component {component}")


def cycles(nodes: Iterable[str], edges: Sequence[Edge], *, detail: bool = False) -> list[str]:
    """One message per import cycle (strongly connected component): a shortest cycle through it, each
    edge with its line; with ``detail``, also every import inside the component (what to cut)."""
    messages = []
    for component in strongly_connected(nodes, edges):
        path = cycle_in(component, edges)
        steps = " -> ".join(f"{e.importer} ({e.where()}, {e.kind})" for e in path)
        message = f"cycle among {component}: {steps} -> {path[0].importer}"
        if detail:
            inside = sorted(
                (e for e in edges if e.importer in component and e.imported in component),
                key=lambda e: (e.importer, e.line, e.imported),
            )
            message += "".join(f"\n    {e.where()}: {e.importer} -> {e.imported} ({e.kind})" for e in inside)
        messages.append(message)
    return messages


# ------------------------------------------------------------------------------------------ the repository


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, tuple[Path, bool]], list[Edge]]:
    """The modules of the real ``verify`` package and the imports between them."""
    return import_graph(ROOT)


def test_every_module_has_a_layer(graph: tuple[dict, list[Edge]]) -> None:
    """Every module under verify/ belongs to one of the six layers."""
    modules, _ = graph
    assert "verify.core.networks" in modules  # the scan sees the package at all
    problems = unassigned(modules)
    assert not problems, "modules without a layer:\n" + "\n".join(problems)


def test_every_subpackage_has_a_layer() -> None:
    """Every directory of Python files under verify/ is assigned a layer (a new subpackage must be placed)."""
    found = subpackages(ROOT)
    assert "verify.core" in found
    problems = [f"{name}/: this subpackage has no layer" for name in found if layer_of(name) is None]
    assert not problems, "\n".join(problems)


def test_no_upward_imports(graph: tuple[dict, list[Edge]]) -> None:
    """No module imports from a higher layer (module-level, deferred or TYPE_CHECKING alike)."""
    _, edges = graph
    assert edges  # the scan found imports at all
    problems = upward(edges)
    assert not problems, f"{len(problems)} upward import(s):\n" + "\n".join(problems)


def test_no_import_cycles(graph: tuple[dict, list[Edge]]) -> None:
    """The import graph among verify modules is acyclic (parent-package imports not counted)."""
    modules, edges = graph
    problems = cycles(modules, edges, detail=True)
    assert not problems, f"{len(problems)} import cycle(s):\n" + "\n".join(problems)


# ------------------------------------------------------------------------------------ the checker itself


def _synthetic(tmp_path: Path, files: Mapping[str, str]) -> tuple[dict[str, tuple[Path, bool]], list[Edge]]:
    """Write a throwaway ``verify`` package (file name -> source) under ``tmp_path`` and read its graph."""
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return import_graph(tmp_path)


_SKELETON = {
    "verify/__init__.py": "from verify.construction.build import build\n",
    "verify/core/__init__.py": "",
    "verify/core/base.py": "import numpy as np\n",
    "verify/solvers/__init__.py": "",
    "verify/solvers/solve.py": "from verify.core.base import np\n",
    "verify/construction/__init__.py": "",
    "verify/construction/build.py": "from verify.solvers import solve\n",
    "verify/nn.py": "import verify\n",
    "verify/job/__init__.py": "",
    "verify/job/run.py": "import verify\nfrom verify import nn\n",
    "verify/cli/__init__.py": "",
    "verify/__main__.py": "from verify.job.run import *\n",
}


def test_checker_passes_downward_imports(tmp_path: Path) -> None:
    """A package that imports only downward has no upward import, no cycle, no unplaced module."""
    modules, edges = _synthetic(tmp_path, _SKELETON)
    assert {(e.importer, e.imported) for e in edges} == {
        ("verify", "verify.construction.build"),
        ("verify.solvers.solve", "verify.core.base"),
        ("verify.construction.build", "verify.solvers.solve"),
        ("verify.nn", "verify"),
        ("verify.job.run", "verify"),
        ("verify.job.run", "verify.nn"),
        ("verify.__main__", "verify.job.run"),
    }
    assert upward(edges) == []
    assert cycles(modules, edges) == []
    assert unassigned(modules) == []


def test_checker_catches_an_upward_import(tmp_path: Path) -> None:
    """``verify.core`` importing a solver is named with importer, imported, layers and line."""
    files = dict(_SKELETON, **{"verify/core/base.py": "import numpy as np\n\nfrom verify.solvers.solve import x\n"})
    modules, edges = _synthetic(tmp_path, files)
    problems = upward(edges)
    assert len(problems) == 1
    assert problems[0].startswith(
        "verify/core/base.py:3: verify.core.base (layer 0, core) imports verify.solvers.solve"
    )
    assert "(layer 1, solvers), module-level" in problems[0]
    assert cycles(modules, edges)  # and it closes a cycle core.base -> solvers.solve -> core.base


def test_checker_catches_a_deferred_import(tmp_path: Path) -> None:
    """An import inside a function (or under TYPE_CHECKING) counts like one at module level."""
    files = dict(
        _SKELETON,
        **{
            "verify/construction/build.py": """\
                from typing import TYPE_CHECKING

                from verify.solvers import solve

                if TYPE_CHECKING:
                    from verify.job.run import Thing


                def build():
                    import verify.cli.main

                    return verify.cli.main
                """,
            "verify/cli/main.py": "",
        },
    )
    _, edges = _synthetic(tmp_path, files)
    problems = upward(edges)
    assert problems == [
        "verify/construction/build.py:6: verify.construction.build (layer 2, construction) imports "
        "verify.job.run (layer 4, job), TYPE_CHECKING",
        "verify/construction/build.py:10: verify.construction.build (layer 2, construction) imports "
        "verify.cli.main (layer 5, cli (verify.cli, verify.__main__)), deferred",
    ]


def test_checker_counts_import_verify_as_the_public_api(tmp_path: Path) -> None:
    """``import verify`` and ``from verify import name`` in the core import layer 3; ``from verify import
    nn`` resolves to the submodule ``verify.nn``; dynamic imports with a literal name count too."""
    files = dict(
        _SKELETON,
        **{
            "verify/core/base.py": """\
                import importlib

                import verify
                from verify import build, nn


                def late():
                    return importlib.import_module("verify.job.run")
                """
        },
    )
    _, edges = _synthetic(tmp_path, files)
    mine = sorted((e.imported, e.line, e.kind) for e in edges if e.importer == "verify.core.base")
    assert mine == [
        ("verify", 3, "module-level"),
        ("verify", 4, "module-level"),
        ("verify.job.run", 8, "dynamic"),
        ("verify.nn", 4, "module-level"),
    ]
    assert len(upward(edges)) == 4


def test_checker_resolves_relative_imports(tmp_path: Path) -> None:
    """``from ..solvers import solve`` in ``verify/core/base.py`` is an import of ``verify.solvers.solve``;
    ``from . import base`` in a package ``__init__`` is its own submodule."""
    files = dict(
        _SKELETON,
        **{
            "verify/core/base.py": "from ..solvers import solve\nfrom .other import y\n",
            "verify/core/other.py": "y = 1\n",
            "verify/core/__init__.py": "from . import base\n",
        },
    )
    _, edges = _synthetic(tmp_path, files)
    core = sorted((e.importer, e.imported) for e in edges if e.importer.startswith("verify.core"))
    assert core == [
        ("verify.core", "verify.core.base"),
        ("verify.core.base", "verify.core.other"),
        ("verify.core.base", "verify.solvers.solve"),
    ]
    assert len(upward(edges)) == 1


def test_checker_catches_a_cycle_within_a_layer(tmp_path: Path) -> None:
    """Two job modules importing each other (one of them lazily) are a cycle, reported with both lines."""
    files = dict(
        _SKELETON,
        **{
            "verify/job/run.py": "from verify.job.claims import CLAIMS\n",
            "verify/job/claims.py": "CLAIMS = ()\n\n\ndef claim():\n    from verify.job.run import x\n",
        },
    )
    modules, edges = _synthetic(tmp_path, files)
    assert upward(edges) == []
    problems = cycles(modules, edges)
    assert problems == [
        "cycle among ['verify.job.claims', 'verify.job.run']: verify.job.claims (verify/job/claims.py:5, deferred) "
        "-> verify.job.run (verify/job/run.py:1, module-level) -> verify.job.claims"
    ]


def test_checker_ignores_parent_package_imports(tmp_path: Path) -> None:
    """A package ``__init__`` re-exporting its submodule is no cycle: the submodule's implicit import of
    its parent package is not an edge."""
    files = dict(
        _SKELETON,
        **{"verify/job/__init__.py": "from verify.job.run import x\n", "verify/job/run.py": "import numpy\n"},
    )
    modules, edges = _synthetic(tmp_path, files)
    assert ("verify.job", "verify.job.run") in {(e.importer, e.imported) for e in edges}
    assert cycles(modules, edges) == []


def test_checker_names_modules_and_subpackages_without_a_layer(tmp_path: Path) -> None:
    """A module or subpackage outside the six layers is reported, not silently skipped."""
    files = dict(_SKELETON, **{"verify/extras/__init__.py": "", "verify/extras/tool.py": "", "verify/misc.py": ""})
    modules, _ = _synthetic(tmp_path, files)
    problems = unassigned(modules)
    assert [p.split(" ")[0] for p in problems] == ["verify.extras", "verify.extras.tool", "verify.misc"]
    assert problems[2].startswith("verify.misc needs a layer: no layer claims this module")
    assert [name for name in subpackages(tmp_path) if layer_of(name) is None] == ["verify.extras"]
