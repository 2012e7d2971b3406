"""Dependencies run one way, at every depth: every import of the project's packages (absolute and
relative, at module level and inside functions) goes from a room to the same room or a lower
one, and no modules import each other in a circle. Dynamic imports by name (the task registry
loading a task module from a config) are not imports of the code that does them, and stay
allowed. A second test plants a cycle and an upward import in a tree of its own and checks that
the checks find them."""
import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

from tests.conftest import REPO

# rooms, lowest first; a module belongs to the longest room that prefixes its name
ROOMS = {
    "ernie_common": 0, "propeller": 0,           # what everything shares; the training engine
    "data_gen": 1,                              # offline data generation
    "ernie.kernels": 2, "ernie.model": 3,       # the model core
    "ernie.formats": 4,                         # checkpoints and conversion
    "ernie.pretrain": 5, "ernie.finetune": 5,   # pre-training, fine-tuning
    "ernie.serving": 6,                         # inference and export
    "ernie": 7,                                 # the commands at the top of the library
    "ernie_tasks": 8,                           # the pre-training tasks, registered like a user's
    "studies": 9,                               # the studies behind docs/, run from the repository
}
ISOLATED = {"propeller"}  # the engine knows no ERNIE task and no data format: no project import
PACKAGES = sorted({room.split(".")[0] for room in ROOMS})


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages) -> Dict[str, Set[str]]:
    """module -> the project modules it imports (a `from package import name` of a module counts
    as that module; of anything else, as the package)."""
    files = {module_name(root, p): p for package in packages for p in (root / package).rglob("*.py")}
    graph: Dict[str, Set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the module's package, up level - 1
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module
                names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in files else prefix
                         for alias in node.names]
            else:
                continue
            for name in names:
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def room(module: str) -> str:
    return max((r for r in ROOMS if module == r or module.startswith(r + ".")), key=len)


def upward_imports(graph) -> List[str]:
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if module.startswith(target + "."):  # a package's own __init__, which Python runs first anyway
                continue
            a, b = room(module), room(target)
            if a != b and (ROOMS[b] >= ROOMS[a] or a in ISOLATED):
                found.append(f"{module} ({a}) imports {target} ({b})")
    return found


def cycles(graph) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph(REPO, PACKAGES)


def test_no_module_imports_a_higher_room(graph):
    assert not upward_imports(graph), "\n".join(upward_imports(graph))


def test_no_import_cycle_at_any_depth(graph):
    assert not cycles(graph), cycles(graph)


def test_the_checks_find_a_planted_cycle_and_an_upward_import(tmp_path):
    def write(name, text):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    write("ernie_common/__init__.py", "")
    write("ernie_common/deep/__init__.py", "")
    write("ernie_common/deep/a.py", "def f():\n    from .b import g  # inside a function, relative\n")
    write("ernie_common/deep/b.py", "from ernie_common.deep import a\n")
    write("data_gen/__init__.py", "")
    write("data_gen/reader.py", "import ernie_common.deep.a\n")
    assert cycles(import_graph(tmp_path, ["ernie_common", "data_gen"])) == [["ernie_common.deep.a", "ernie_common.deep.b"]]
    assert upward_imports(import_graph(tmp_path, ["ernie_common", "data_gen"])) == []
    write("ernie_common/deep/c.py", "from ...data_gen import reader\n")
    assert upward_imports(import_graph(tmp_path, ["ernie_common", "data_gen"])) == [
        "ernie_common.deep.c (ernie_common) imports data_gen.reader (data_gen)"]
