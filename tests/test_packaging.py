"""pyproject.toml: every runtime dependency is bounded above, every package mmkd imports is declared, and
the wheel works on its own: installed without the source tree, it finds every shipped sweep by name."""

import ast
import os
import shutil
import subprocess
import sys
import zipfile
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


def _imported_distributions() -> dict[str, set[str]]:
    """Each third-party module mmkd imports -> the distributions that provide it."""
    modules = set()
    for path in (ROOT / "mmkd").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"mmkd"}
    distributions = packages_distributions()
    return {
        module: {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        for module in third_party
    }


def test_every_imported_package_is_declared():
    declared = {r.name.lower().replace("_", "-") for r in _requirements()}
    missing = {module: dists for module, dists in _imported_distributions().items() if not dists & declared}
    assert missing == {}


# Runtime dependencies mmkd does not import itself: what uses them.
USED_THROUGH = {
    "pyarrow": "pandas, to write and read results.parquet",
    "tensorboardx": "Ray Tune's TensorBoard logger (mmkd.sweep.logs)",
}


def test_every_runtime_dependency_is_imported_or_used_through_another():
    imported = set().union(*_imported_distributions().values())
    runtime = {Requirement(r).name.lower().replace("_", "-") for r in PROJECT["dependencies"]}
    assert runtime - imported == set(USED_THROUGH)


def test_the_wheel_runs_every_shipped_sweep_by_name_from_another_folder(tmp_path):
    # Built from a copy of what the wheel is made of, so the checkout gets no build/ or egg-info; the
    # dependencies are this environment's (--no-deps: nothing is downloaded).
    src = tmp_path / "src"
    shutil.copytree(ROOT / "mmkd", src / "mmkd", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src], check=True
    )
    (wheel,) = (tmp_path / "dist").glob("mmkd-*.whl")
    shipped = sorted(p.stem for p in (ROOT / "mmkd" / "sweeps").glob("*.yaml"))
    in_wheel = sorted(Path(n).stem for n in zipfile.ZipFile(wheel).namelist() if n.startswith("mmkd/sweeps/"))
    assert in_wheel == shipped
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    where = subprocess.run(
        [sys.executable, "-c", "import mmkd; print(mmkd.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
    )
    assert Path(where.stdout.decode().strip()).is_relative_to(site)  # the wheel's mmkd, not the checkout's
    for name in shipped:
        run = subprocess.run(
            [site / "bin" / "mmkd", "sweep", "validate", name], cwd=elsewhere, env=env, capture_output=True
        )
        assert run.returncode == 0, run.stderr.decode()
        assert f"name: {name}\n" in run.stdout.decode()
