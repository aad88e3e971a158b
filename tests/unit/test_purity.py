"""The pure layers do no I/O and read no clock: they import nothing that could.

DESIGN.md's one rule between layers. The check reads each module's import
statements (a runtime check cannot work: the standard library itself imports
``os`` everywhere), so a forbidden import anywhere in a pure module, even inside
a function, fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pyvswitch

PACKAGE_DIR = Path(pyvswitch.__file__).parent
PURE_LAYERS = ("packet", "flow", "ofproto", "dpif")
FORBIDDEN_STDLIB = {
    "socket",
    "os",
    "select",
    "selectors",
    "threading",
    "asyncio",
    "time",
    "subprocess",
    "io",
    "pathlib",
    "shutil",
    "signal",
    "multiprocessing",
    "mmap",
    "fcntl",
    "ctypes",
    "socketserver",
    "tempfile",
}
# Packages of ours that do I/O; a pure layer must not reach them.
IO_PACKAGES = {"netdev", "vswitchd", "ovsdb", "cli", "demo"}


def _pure_modules() -> list[Path]:
    files = []
    for layer in PURE_LAYERS:
        layer_dir = PACKAGE_DIR / layer
        if layer_dir.is_dir():
            files.extend(sorted(layer_dir.rglob("*.py")))
    return files


def _imported_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def _violation(name: str) -> str | None:
    parts = name.lstrip(".").split(".")
    if not name.startswith(".") and parts[0] in FORBIDDEN_STDLIB:
        return f"imports {parts[0]}"
    if parts[0] == "pyvswitch" and len(parts) > 1 and parts[1] in IO_PACKAGES:
        return f"imports pyvswitch.{parts[1]}, which does I/O"
    if name.startswith(".") and parts[0] in IO_PACKAGES:
        return f"imports {parts[0]}, which does I/O"
    return None


def test_pure_layers_exist() -> None:
    assert len(_pure_modules()) >= 8


@pytest.mark.parametrize("path", _pure_modules(), ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_pure_module_imports_nothing_that_does_io(path: Path) -> None:
    bad = sorted({v for n in _imported_names(path) if (v := _violation(n))})
    assert not bad, f"{path.relative_to(PACKAGE_DIR)} {', '.join(bad)}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os", "imports os"),
        ("from time import monotonic", "imports time"),
        ("import socket as s", "imports socket"),
        ("from pyvswitch.netdev import dummy", "imports pyvswitch.netdev, which does I/O"),
        ("from ..vswitchd import loop", "imports vswitchd, which does I/O"),
        ("def f():\n    import subprocess", "imports subprocess"),
    ],
)
def test_checker_catches_forbidden_imports(tmp_path: Path, source: str, expected: str) -> None:
    module = tmp_path / "m.py"
    module.write_text(source + "\n")
    found = {v for n in _imported_names(module) if (v := _violation(n))}
    assert found == {expected}
