"""Dependencies point one way: thumbs (the composition root) uses proxy/ and library_api/,
which never import it; httpkit/ is below both. Checked on the source, import by import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What each package may import from the project's own packages.
ALLOWED: dict[str, set[str]] = {
    "httpkit": set(),
    "proxy": {"httpkit"},
    # The library takes the URL contract and the warm message types from the proxy, nothing else.
    "library_api": {"httpkit", "proxy.urls", "proxy.warm_types"},
}


def project_imports(package: str) -> set[tuple[str, str]]:
    """(file, imported module) for every import of a project package inside ``package``."""
    found: set[tuple[str, str]] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in {"thumbs", "proxy", "library_api", "httpkit"} and top != package:
                    found.add((str(path.relative_to(ROOT)), name))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_lies_below_it(package: str) -> None:
    allowed = ALLOWED[package]
    upward = {(file, name) for file, name in project_imports(package)
              if name not in allowed and name.split(".")[0] not in allowed}
    assert upward == set()
