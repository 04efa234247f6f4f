"""The house rules of docs/architecture.md that the import-linter contract (`make lint`) does not cover."""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PACKAGES = ("pumpserver", "audit", "inference", "modelregistry", "predictions", "alerts", "backtests", "quality", "web")
MAX_MODULE_LINES = 600
MAX_IMPORTS_IN_FUNCTIONS = 8


def project_modules() -> list[Path]:
    files = [PROJECT_DIR / "manage.py"]
    for package in PACKAGES:
        files += [p for p in (PROJECT_DIR / package).rglob("*.py") if "migrations" not in p.parts]
    return sorted(files)


def imports_inside_functions(path: Path) -> list[tuple[int, str, str]]:
    """(line, import line, the line above it) of every import statement inside a function body."""
    lines = path.read_text().splitlines()
    found = []
    for function in ast.walk(ast.parse(path.read_text())):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.append((node.lineno, lines[node.lineno - 1], lines[node.lineno - 2]))
    return found


def test_every_package_of_the_layers_exists():
    assert all((PROJECT_DIR / package / "__init__.py").exists() for package in PACKAGES)


def test_no_module_is_longer_than_the_limit():
    long = {
        str(path.relative_to(PROJECT_DIR)): count
        for path in project_modules()
        if (count := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these by concern (at most {MAX_MODULE_LINES} lines): {long}"


def test_imports_inside_functions_are_few_and_each_says_why():
    found = {
        f"{path.relative_to(PROJECT_DIR)}:{line}": (text.strip(), above.strip())
        for path in project_modules()
        for line, text, above in imports_inside_functions(path)
    }
    assert len(found) <= MAX_IMPORTS_IN_FUNCTIONS, f"{len(found)} imports inside functions: {sorted(found)}"
    unexplained = [where for where, (text, above) in found.items() if "#" not in text and not above.startswith("#")]
    assert unexplained == [], f"say in a comment why these imports cannot be at the top: {unexplained}"
