"""pyproject.toml: every runtime dependency is bounded above, and every package mmkd imports is declared."""

import ast
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DEV_TOOLS = {"test", "dev"}  # not installed with mmkd


def _requirements() -> list[Requirement]:
    extras = [
        r for name, reqs in PROJECT["optional-dependencies"].items() if name not in DEV_TOOLS for r in reqs
    ]
    return [Requirement(r) for r in [*PROJECT["dependencies"], *extras]]


def test_every_runtime_dependency_is_bounded_above():
    unbounded = [str(r) for r in _requirements() if not any(s.operator in ("<", "<=") for s in r.specifier)]
    assert unbounded == []


def test_every_imported_package_is_declared():
    declared = {r.name.lower().replace("_", "-") for r in _requirements()}
    modules = set()
    for path in (ROOT / "mmkd").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"mmkd"}
    distributions = packages_distributions()
    missing = {
        module: distributions.get(module)
        for module in third_party
        if not {d.lower().replace("_", "-") for d in distributions.get(module, [module])} & declared
    }
    assert missing == {}
