"""Gates that keep the code's shape: no function grows past a length, no mocks.

The length gate follows TigerBeetle's ``tidy.zig``: a hard limit, and a list of today's
exceptions that may only shrink. A function on the list that got shorter than the limit must
leave the list (so it cannot grow back unseen); a function not on it may not pass the limit.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TREES = ("src", "bench", "tests")
GENERATED = re.compile(r"_pb2(_grpc)?\.pyi?$")
MAX_FUNCTION_LINES = 60

# Functions longer than the limit when the gate came in. Only ever remove lines from this.
LONG_FUNCTIONS: frozenset[str] = frozenset(
    {
        # A migration is history: it stays as it was written.
        "src/diststorage/meta/migrations/versions/0001_initial.py::upgrade",
    }
)


def _python_files() -> Iterator[Path]:
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            if not GENERATED.search(path.name):
                yield path


def _functions(path: Path) -> Iterator[tuple[str, int]]:
    """(``path::qualified.name``, lines) for every function and method in the file."""
    module = ast.parse(path.read_text(), filename=str(path))
    relative = path.relative_to(ROOT).as_posix()

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                assert child.end_lineno is not None
                yield f"{relative}::{name}", child.end_lineno - child.lineno + 1
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")

    yield from walk(module, "")


def _too_long() -> dict[str, int]:
    return {
        name: lines
        for path in _python_files()
        for name, lines in _functions(path)
        if lines > MAX_FUNCTION_LINES
    }


def test_no_new_function_is_longer_than_the_limit() -> None:
    new = {name: lines for name, lines in _too_long().items() if name not in LONG_FUNCTIONS}
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines: split them: {new}"


def test_the_list_of_long_functions_only_shrinks() -> None:
    too_long = _too_long()
    fixed = sorted(name for name in LONG_FUNCTIONS if name not in too_long)
    assert not fixed, (
        f"now within {MAX_FUNCTION_LINES} lines (or gone): remove from the list: {fixed}"
    )


def test_the_length_gate_sees_functions_and_methods() -> None:
    """The gate must not pass by seeing nothing: this very file's functions are found."""
    names = dict(_functions(Path(__file__)))
    here = Path(__file__).relative_to(ROOT).as_posix()
    assert f"{here}::test_the_length_gate_sees_functions_and_methods" in names
    assert f"{here}::_functions.walk" in names


def _own_private_names(node: ast.ClassDef) -> set[str]:
    """The private names a class defines: its methods and what it assigns on ``self``."""
    names = {
        child.name
        for child in node.body
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    for child in ast.walk(node):
        if isinstance(child, ast.Attribute) and isinstance(child.ctx, ast.Store):
            names.add(child.attr)
    return {name for name in names if name.startswith("_")}


def _classes(trees: dict[Path, ast.Module]) -> dict[str, tuple[set[str], list[str]]]:
    """Every class in the trees by name: its own private names and its bases' names."""
    found: dict[str, tuple[set[str], list[str]]] = {}
    for module in trees.values():
        for node in ast.walk(module):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
                own, known = _own_private_names(node), found.get(node.name, (set(), []))
                found[node.name] = (own | known[0], bases + known[1])
    return found


def _private_names_of(name: str, classes: dict[str, tuple[set[str], list[str]]]) -> set[str]:
    names: set[str] = set()
    todo, seen = [name], set()
    while todo:
        current = todo.pop()
        if current in seen or current not in classes:
            continue
        seen.add(current)
        own, bases = classes[current]
        names |= own
        todo.extend(bases)
    return names


def _private_reaches(path: Path, module: ast.Module, classes: dict[str, Any]) -> Iterator[str]:
    """``x._name`` where ``x`` is not ``self``/``cls`` and the code is not inside a class that
    has ``_name`` itself (a classmethod building its own instance may set it up)."""
    modules = {
        alias.asname or alias.name.split(".")[0]
        for node in ast.walk(module)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    relative = path.relative_to(ROOT).as_posix()

    def walk(node: ast.AST, allowed: set[str]) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from walk(child, _private_names_of(child.name, classes))
                continue
            if (
                isinstance(child, ast.Attribute)
                and child.attr.startswith("_")
                and not child.attr.startswith("__")
                and not (isinstance(child.value, ast.Name) and child.value.id in {"self", "cls"})
                and not (isinstance(child.value, ast.Name) and child.value.id in modules)
                and child.attr not in allowed
            ):
                yield f"{relative}:{child.lineno}: {ast.unparse(child)}"
            yield from walk(child, allowed)

    yield from walk(module, set())


def test_no_class_reads_another_ones_private_fields() -> None:
    """Collaborators are handed in through constructors (or small Protocols), never reached
    into: a private name is read through ``self``/``cls``, or by the class that has it."""
    trees = {
        path: ast.parse(path.read_text(), filename=str(path))
        for path in _python_files()
        if not path.relative_to(ROOT).as_posix().startswith("tests/")
    }
    classes = _classes(trees)
    reaches = [
        reach for path, tree in trees.items() for reach in _private_reaches(path, tree, classes)
    ]
    assert not reaches, f"private fields read from outside their class: {reaches}"


def test_the_private_field_gate_would_see_a_reach() -> None:
    source = "class A:\n    def f(self, b):\n        return b._store._clients\n"
    module = ast.parse(source)
    path = ROOT / "src" / "example.py"
    classes = _classes({path: module})
    assert len(list(_private_reaches(path, module, classes))) == 2


# Built from pieces, so that this file does not trip its own check.
MOCK = "mo" + "ck"
MOCK_MODULES = re.compile(rf"\b(unittest\.{MOCK}|from unittest import {MOCK}|import {MOCK}\b)")


def test_no_mocks_in_the_tree() -> None:
    """Fakes are injected through constructors (diststorage.testing); nothing is patched."""
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in _python_files()
        if MOCK_MODULES.search(path.read_text())
    ]
    assert not offenders, f"no mocks here, inject a fake (diststorage.testing): {offenders}"


def test_the_mock_gate_would_see_a_mock() -> None:
    assert MOCK_MODULES.search("from unittest import mo" + "ck")
    assert MOCK_MODULES.search("import unittest.mo" + "ck as m")
