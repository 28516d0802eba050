"""Packaging: the pure-Python packages' pyproject.toml files in PEP 621 form (what poetry-core >= 2 reads), and the
install commands of the READMEs. The commands are read out of the READMEs, so a README and its test cannot drift
apart; the heavy test runs a task package's command as written, in a fresh virtual environment."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PACKAGES = REPO / "packages"
PURE = ("carafe-engine", "carafe-seg", "carafe-inpaint", "carafe-det")
TASKS = ("carafe-det", "carafe-seg", "carafe-inpaint")
READMES = (REPO / "README.md", *(PACKAGES / p / "README.md" for p in ("carafe-ops", *PURE)))

# the [tool.poetry] keys that poetry 2 reads from [project] instead (`poetry check` warns about each)
DEPRECATED_POETRY_KEYS = {"name", "version", "description", "authors", "maintainers", "license", "readme",
                          "homepage", "repository", "documentation", "keywords", "classifiers", "urls", "scripts",
                          "plugins", "extras"}


def pyproject(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def local_dependencies(package: str) -> set[str]:
    """The packages of this repository that `package` needs, itself and transitively."""
    needed, todo = set(), [package]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        deps = pyproject(PACKAGES / name / "pyproject.toml")["project"].get("dependencies", [])
        todo += [r.name for r in map(Requirement, deps) if (PACKAGES / r.name).is_dir()]
    return needed


def readme_pip_commands(readme: Path) -> list[list[str]]:
    """Every `pip install ...` line of the README's bash blocks that installs packages of this repository, as
    argument lists (leading VAR=value assignments and trailing comments dropped)."""
    commands = []
    for block in re.findall(r"^```(?:bash|sh|console)\n(.*?)^```", readme.read_text(), re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if not re.match(r"\s*([A-Z_][A-Z0-9_]*=\S*\s+)*pip install ", line):
                continue
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                words = words[1:]
            if words[:2] == ["pip", "install"] and any(w.startswith("packages/") for w in words):
                commands.append(words)
    return commands


def task_install_command(package: str) -> list[str]:
    """The one command the package's README gives for installing it (every place it appears says the same)."""
    commands = [c for c in readme_pip_commands(PACKAGES / package / "README.md") if f"packages/{package}" in c]
    assert commands, f"packages/{package}/README.md has no `pip install ... packages/{package}` line"
    assert all(c == commands[0] for c in commands), f"packages/{package}/README.md gives different commands: {commands}"
    return commands[0]


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_are_pep621_projects(package):
    data = pyproject(PACKAGES / package / "pyproject.toml")
    project = data["project"]
    assert project["name"] == package
    for key in ("version", "description", "readme", "license", "requires-python"):
        assert project.get(key), f"{package}: [project] has no {key}"
    assert (PACKAGES / package / project["readme"]).is_file()
    assert project["authors"] and all(isinstance(a, dict) and a.get("name") for a in project["authors"])
    assert "dynamic" not in project
    poetry = data.get("tool", {}).get("poetry", {})
    assert not DEPRECATED_POETRY_KEYS & poetry.keys(), f"{package}: deprecated [tool.poetry] keys"
    assert "dependencies" not in poetry, f"{package}: dependencies belong in [project] (plain version ranges)"
    module = package.replace("-", "_")
    assert {"include": module, "from": "src"} in poetry["packages"]  # the src layout
    assert (PACKAGES / package / "src" / module / "__init__.py").is_file()
    for requirement in map(Requirement, project["dependencies"]):
        assert not requirement.url, f"{package}: {requirement} (a path or URL cannot be published)"
    for script, target in project.get("scripts", {}).items():
        assert script.startswith(package + "-") and target.startswith(module + "."), (script, target)
    build = data["build-system"]
    assert build["build-backend"] == "poetry.core.masonry.api"
    (core,) = [Requirement(r) for r in build["requires"] if Requirement(r).name == "poetry-core"]
    assert not core.specifier.contains("1.9.1") and core.specifier.contains("2.0.0"), core



@pytest.mark.parametrize("package", PURE)
def test_console_scripts_name_functions_that_exist(package):
    """Each [project.scripts] entry names a module of the package's src folder that defines the function."""
    src = PACKAGES / package / "src"
    for script, target in pyproject(PACKAGES / package / "pyproject.toml")["project"].get("scripts", {}).items():
        module, function = target.split(":")
        path = src.joinpath(*module.split("."))
        files = [f for f in (path.with_suffix(".py"), path / "__init__.py") if f.is_file()]
        assert files, f"{script} = {target!r}: no {path.relative_to(REPO)}.py"
        assert re.search(rf"^def {function}\(", files[0].read_text(), re.M), f"{script}: no {function}() in {files[0]}"

def test_root_is_a_pep621_project_with_the_packages_as_path_dependencies():
    data = pyproject(REPO / "pyproject.toml")
    project, poetry = data["project"], data["tool"]["poetry"]
    for key in ("name", "version", "description", "readme", "license", "requires-python", "authors"):
        assert project.get(key), f"root: [project] has no {key}"
    assert not DEPRECATED_POETRY_KEYS & poetry.keys()
    assert poetry["package-mode"] is False
    names = {Requirement(r).name for r in project["dependencies"]}
    assert names == {p.name for p in PACKAGES.iterdir() if (p / "pyproject.toml").is_file()}
    for name, spec in poetry["dependencies"].items():  # only where each comes from: this repository, editable
        assert name in names and spec == {"path": f"packages/{name}", "develop": True}, (name, spec)


def test_setup_installs_a_poetry_core_that_builds_the_packages():
    """ci/setup.sh installs the pure packages with --no-build-isolation: its poetry-core must read [project]."""
    (spec,) = re.findall(r'"(poetry-core[^"]*)"', (REPO / "ci" / "setup.sh").read_text())
    assert not Requirement(spec).specifier.contains("1.9.1"), spec


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(REPO)))
def test_readme_pip_commands_name_every_local_package_they_need(readme):
    """carafe-ops and carafe-engine are not on the package index: a pip command that installs a package of this
    repository has to name every package of this repository it depends on."""
    for command in readme_pip_commands(readme):
        paths = {w for w in command[2:] if not w.startswith("-")}
        assert all(w.startswith("packages/") and (REPO / w).is_dir() for w in paths), command
        names = {Path(w).name for w in paths}
        needed = set().union(*map(local_dependencies, names))
        assert needed <= names, f"{readme.name}: `{shlex.join(command)}` lacks {sorted(needed - names)}"


@pytest.mark.parametrize("package", TASKS)
def test_each_task_readme_gives_its_install_command(package):
    command = task_install_command(package)
    assert {Path(w).name for w in command[2:]} == local_dependencies(package)


def overlay_of_this_environment(directory: Path) -> Path:
    """A folder of links to what this interpreter has installed (torch, numpy, ...), without any carafe package:
    what --system-site-packages gives where the system Python has PyTorch, without the carafe packages."""
    directory.mkdir()
    skip = re.compile(r"(carafe|_?_?editable__|pip\b|pip-|setuptools|_distutils_hack|pkg_resources|wheel\b|"
                      r"wheel-|__pycache__)", re.I)
    for site in dict.fromkeys((sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])):
        for entry in Path(site).iterdir():
            if not skip.match(entry.name) and entry.suffix != ".pth" and not (directory / entry.name).exists():
                (directory / entry.name).symlink_to(entry)
    return directory


@pytest.mark.heavy
@pytest.mark.parametrize("package", TASKS)
def test_readme_install_command_works_in_a_fresh_environment(package, tmp_path):
    """The README's command, as written, from the repository root in a fresh virtual environment that has PyTorch
    (and the other third-party packages of this one) but no carafe package: carafe-ops is built (CPU only unless
    CARAFE_CUDA says otherwise; CARAFE_OPS_WHEEL=path.whl installs that wheel in its place, as ci/setup.sh does),
    the pure packages come from the repository, and the package imports and its console scripts run."""
    command = task_install_command(package)
    if os.environ.get("CARAFE_OPS_WHEEL"):
        command = [os.environ["CARAFE_OPS_WHEEL"] if w == "packages/carafe-ops" else w for w in command]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    site = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "carafe_test_overlay.pth").write_text(str(overlay_of_this_environment(tmp_path / "overlay")) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", PIP_DISABLE_PIP_VERSION_CHECK="1",
               SKBUILD_BUILD_DIR=str(tmp_path / "carafe-ops-build"))  # not the source tree's build/ of ci/setup.sh
    env.setdefault("CARAFE_CUDA", "OFF")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    install = subprocess.run([venv / "bin" / command[0], *command[1:]], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=1800)
    assert install.returncode == 0, f"`{shlex.join(command)}` failed:\n{install.stdout[-4000:]}\n{install.stderr[-4000:]}"

    module = package.replace("-", "_")
    probe = ("import json, importlib, sys; print(json.dumps({m: importlib.import_module(m).__file__ "
             "for m in sys.argv[1:]}))")
    imported = subprocess.run([venv / "bin" / "python", "-c", probe, module, "carafe_engine", "carafe_ops"], env=env,
                              capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr[-4000:]
    files = {m: Path(f) for m, f in json.loads(imported.stdout).items()}
    for name, file in files.items():  # installed into the fresh environment, not read from the repository
        assert file.is_relative_to(Path(site)), (name, file)
    source = PACKAGES / package / "src" / module
    shipped = {p.relative_to(source) for p in source.rglob("*.yaml")}
    assert shipped <= {p.relative_to(files[module].parent) for p in files[module].parent.rglob("*.yaml")}

    scripts = pyproject(PACKAGES / package / "pyproject.toml")["project"]["scripts"]
    for script in scripts:
        run = subprocess.run([venv / "bin" / script, "--help"], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0 and "usage" in run.stdout.lower(), (script, run.stdout[-2000:], run.stderr[-2000:])
