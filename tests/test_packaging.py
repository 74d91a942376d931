"""README, pyproject.toml, environment.yml and the Makefile must tell the same story."""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment_requirements() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = [line.strip()[2:] for line in lines[start + 1 :] if line.strip().startswith("- ")]
    return {_name(r): r.replace(" ", "") for r in reqs if not r.startswith("-e")}


def test_environment_yml_matches_pyproject():
    py, env = _pyproject_requirements(), _environment_requirements()
    assert set(py) == set(env), (
        f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    )
    for name in py:
        assert py[name] == env[name], (
            f"{name}: pyproject says {py[name]}, environment.yml {env[name]}"
        )


def test_design_card_packages_are_dependencies():
    card = {
        "torch",
        "torchvision",
        "jupyterlab",
        "matplotlib",
        "seaborn",
        "umap-learn",
        "scikit-learn",
        "ipywidgets",
        "faiss-cpu",
    }
    assert card <= set(_pyproject_requirements())


def test_readme_names_the_two_commands_and_they_exist():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("course", "test", "lab"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile lacks target {target}"
    # the Makefile installs torch and torchvision together, then the package with its dev extra
    assert "install --quiet torch torchvision" in makefile
    assert '-e ".[dev]"' in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_profiles_match_the_library():
    from reidlib.profiles import PROFILES

    readme = (ROOT / "README.md").read_text()
    for name in PROFILES:
        assert f"`{name}`" in readme, f"README does not describe profile {name}"
