"""The admin's structure: the site registers views, views never import the site (no import cycle)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import salesbot.admin

ADMIN_DIR = Path(salesbot.admin.__file__).parent
MODULES = sorted(path.stem for path in ADMIN_DIR.glob("*.py") if path.stem != "__init__")


def _admin_imports(module: str) -> set[str]:
    """The salesbot.admin modules `module` imports, TYPE_CHECKING blocks included (a cycle there is one too)."""
    tree = ast.parse((ADMIN_DIR / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "salesbot.admin":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("salesbot.admin."):
                found.add(node.module.removeprefix("salesbot.admin."))
        elif isinstance(node, ast.Import):
            found.update(
                a.name.removeprefix("salesbot.admin.") for a in node.names if a.name.startswith("salesbot.admin.")
            )
    return found & set(MODULES)


def test_no_admin_module_imports_another_that_imports_it_back() -> None:
    graph = {module: _admin_imports(module) for module in MODULES}

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(graph[current])
        return seen

    cycles = [module for module in MODULES if module in reachable(module)]
    assert cycles == [], f"import cycles through {cycles}: {graph}"
    # Only the site knows the site.
    assert [module for module in MODULES if "site" in graph[module]] == []


# Views first imported on their own (in a fresh interpreter): before, `views` only worked once `site` was loaded.
@pytest.mark.parametrize("module", ["views", "conversation_view", "accounts_views"])
def test_view_modules_import_on_their_own(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import salesbot.admin.{module}"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
