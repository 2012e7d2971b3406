"""Dependencies run one way: a module never imports a package of a higher layer (README, Layout).
Dynamic imports by name (the task registry loading a task module from a config) are not imports
of the code that does them, and stay allowed."""
import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# the shared base and the engine at the bottom, then data generation, the model library, and the
# pre-training tasks, which may use all of them
LAYERS = {"ernie_common": 0, "propeller": 0, "data_gen": 1, "ernie": 2, "ernie_tasks": 3}
NO_PROJECT_IMPORTS = {"propeller"}  # the engine knows no ERNIE task and no data format


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_no_module_imports_upward(package):
    upward = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, imported in _imports(path):
            if imported in LAYERS and imported != package and (
                    LAYERS[imported] > LAYERS[package] or package in NO_PROJECT_IMPORTS
                    or LAYERS[imported] == LAYERS[package]):
                upward.append(f"{path.relative_to(REPO)}:{line} imports {imported}")
    assert not upward, "\n".join(upward)
