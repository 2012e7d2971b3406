"""Nothing outside a task's module names the task (`ernie_common.tasks`): the framework's packages
loop over the tasks a config selects and ask each through its interface (`DataTask`, `TaskHead`).

The check reads the source of the framework's packages and fails on a built-in task's name (a key
of `ernie_common.tasks.BUILTIN`) used in code: as a word of an identifier (any case: a
constant `KNOWLEDGE_MASKING` names the task as surely as the string does) or of a string literal
(`"knowledge_masking"`, `f"task_options.knowledge_masking.{key}"`, `"knowledge_masking_over_entropy"`). The registry table
itself is the one place allowed to list them. Comments and docstrings are not checked: they
explain the framework with the built-in tasks as examples, and one name is also an English word
("capitalization"); what ties code to a task is code that looks the task up or compares with it.
Outside the framework (the task modules, tests, studies, benchmarks, examples, configs) tasks may
be named freely.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path
from typing import Iterator, List, Sequence, Set, Tuple

from ernie_common import tasks as registry
from tests.conftest import REPO

FRAMEWORK = ("data_gen", "ernie", "ernie_common", "propeller")
REGISTRY_MODULE = REPO / "ernie_common" / "tasks.py"
REGISTRY_TABLE = "BUILTIN"
# the tokens of a string literal's text (Python 3.12 cuts an f-string into pieces)
_TEXT = {tokenize.STRING} | ({tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set())


def _docstring_starts(tree: ast.AST) -> Set[Tuple[int, int]]:
    """(line, column) where each docstring of the module, its classes and functions starts."""
    starts = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                starts.add((first.lineno, first.col_offset))
    return starts


def _table_lines(tree: ast.AST, name: str) -> Set[int]:
    """The lines of the module-level assignment of `name`."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return set(range(node.lineno, node.end_lineno + 1))
    return set()


def task_names_in_code(source: str, names: Sequence[str], allowed_lines: Set[int] = frozenset()
                       ) -> Iterator[Tuple[int, str]]:
    """(line, name) of each use of one of `names` in the code of `source`, as a word of an
    identifier or a string literal, in any case; words are separated by anything but a letter or a
    digit, so `knowledge_masking_over_entropy` and `KNOWLEDGE_MASKING` name their task. Comments,
    docstrings and `allowed_lines` are skipped."""
    docstrings = _docstring_starts(ast.parse(source))
    alternatives = "|".join(map(re.escape, names))
    word = re.compile(rf"(?<![A-Za-z0-9])({alternatives})(?![A-Za-z0-9])", re.IGNORECASE)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        line = tok.start[0]
        if line in allowed_lines:
            continue
        if tok.type == tokenize.NAME or tok.type in _TEXT and tok.start not in docstrings:
            yield from ((line, found.group(1)) for found in word.finditer(tok.string))


def framework_files() -> List[Path]:
    return sorted(p for package in FRAMEWORK for p in (REPO / package).rglob("*.py"))


def test_no_framework_module_names_a_builtin_task():
    names = registry.builtin_names()
    hits = []
    for path in framework_files():
        source = path.read_text(encoding="utf-8")
        allowed = _table_lines(ast.parse(source), REGISTRY_TABLE) if path == REGISTRY_MODULE else set()
        hits += [f"{path.relative_to(REPO)}:{line}: {name}" for line, name in task_names_in_code(source, names, allowed)]
    assert not hits, ("task names outside the registry table and the task modules (ask the task through "
                      "its interface instead):\n" + "\n".join(hits))


def test_the_check_sees_code_and_strings_but_not_comments_or_docstrings():
    source = ('"""The module: knowledge_masking is an example."""\n'
              "TABLE = {'knowledge_masking': 1}\n"
              "def f(task):\n"
              "    '''Mentions sentence_distance.'''\n"
              "    # a comment naming ir_relevance\n"
              "    if task == 'ir_relevance':\n"
              "        return f'task_options.knowledge_masking.{task}'\n"
              "    KNOWLEDGE_MASKING = 1\n"
              "    return 'knowledge_masking_over_entropy', token_document_count, capitalizations\n")
    names = registry.builtin_names()
    assert list(task_names_in_code(source, names)) == [
        (2, "knowledge_masking"), (6, "ir_relevance"), (7, "knowledge_masking"), (8, "KNOWLEDGE_MASKING"),
        (9, "knowledge_masking"), (9, "token_document")]
    assert list(task_names_in_code(source, names, allowed_lines={2, 6, 7, 8, 9})) == []
    assert _table_lines(ast.parse(source), "TABLE") == {2}


def test_the_registry_table_is_found_and_holds_every_builtin_task():
    tree = ast.parse(REGISTRY_MODULE.read_text(encoding="utf-8"))
    table = REGISTRY_MODULE.read_text(encoding="utf-8").splitlines()
    lines = _table_lines(tree, REGISTRY_TABLE)
    assert all(any(f'"{name}"' in table[k - 1] for k in lines) for name in registry.builtin_names())
