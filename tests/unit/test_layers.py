"""Layer direction: the pure core never imports an adapter, the service or the CLI.

The core (model, selection, edit, planner, annotations, commit messages, filters) is free of I/O; every
I/O lives in adapters/ and service/, which the core must not reach. This is the import-linter contract
of the house style, checked with the standard library's ``ast`` so it needs no extra tool.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "image_updater"
CORE = ["model", "selection", "edit", "planner.py", "annotations.py", "commitmsg.py", "appfilter.py", "errors.py"]
FORBIDDEN_FOR_CORE = ("image_updater.adapters", "image_updater.service", "image_updater.cli")
IO_MODULES = ("httpx", "git", "subprocess", "socket", "lightkube", "uvicorn", "starlette")


def modules(entry: str) -> list[Path]:
    path = PACKAGE / entry
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "path", [p for entry in CORE for p in modules(entry)], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_core_imports_no_adapter_service_or_io(path: Path) -> None:
    bad = sorted(
        name for name in imports(path) if name.startswith(FORBIDDEN_FOR_CORE) or name.split(".")[0] in IO_MODULES
    )
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_adapters_do_not_import_the_service_or_cli() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            n for n in imports(path) if n.startswith(("image_updater.service", "image_updater.cli"))
        )
        for path in modules("adapters")
    }
    assert not {k: v for k, v in offenders.items() if v}
