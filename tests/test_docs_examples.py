"""The examples in README.md and docs/*.md run as written.

Every ```python block and every `hf-s1 ...` line of a ```bash block is run in a fresh interpreter / shell, offline
(`HF_HUB_OFFLINE=1`), in a temporary folder that links the repository's `tests/`, `recipes/`, `spaces/` and
`scripts/` (so "run from the repository root" paths work and outputs stay out of the clone). A block passes when
it exits with status 0. Each block is one test, named `<document>:<line of its opening fence>`.

What is not run is listed below with the reason (`SKIP_PYTHON`, `SKIP_SHELL`), so skipping is a decision that
shows in the test report; a block or command that is neither run nor listed fails `test_every_example_is_decided`.
Skipped Python blocks are still compiled. A Python block repeated verbatim in another document (README.md shows
the first example of docs/vllm.md and docs/hub.md) runs once, under both names.

The environment is the test machine's: offline, one OpenMP thread, and the vLLM CPU settings `load_llm` applies
(a small KV cache, an in-process engine) so that a plain `vllm.LLM(...)` example fits a small CPU machine too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINKED = ("tests", "recipes", "spaces", "scripts")
TIMEOUT_S = 240

# Python blocks that are not run, by document and the first words of a line they contain.
SKIP_PYTHON: dict[tuple[str, str], str] = {
    ("docs/vllm.md", "client = openai.OpenAI("): "needs a running vLLM OpenAI server (started by the commands above)",
    ("docs/vllm.md", "fetch_injection_logs(\"http"): "needs a running vLLM server in dev mode; "
                                                   "tests/test_vllm_server.py runs these steps",
    ("docs/space.md", "build_demo(runtime).launch()"): "starts a web server that runs until stopped",
}

# Shell commands that are not run, by document and command prefix (after joining `\` continuations).
SKIP_SHELL: dict[tuple[str, str], str] = {
    ("README.md", "bash scripts/demo.sh"): "creates a virtual environment and installs packages (network)",
    ("README.md", "bash scripts/test.sh"): "installs packages (network) and runs the whole test suite",
    ("README.md", "pip "): "installs packages (network)",
    ("README.md", "accelerate launch recipes/grpo_budget.py"):
        "reads MATH-500 from the Hub and trains for minutes (tests/test_train_grpo.py runs the recipe)",
    ("docs/training.md", "accelerate launch recipes/grpo_budget.py"):
        "reads MATH-500 from the Hub and trains for minutes (tests/test_train_grpo.py runs the recipe)",
    ("docs/training.md", "accelerate launch --multi_gpu --num_processes 2 recipes/grpo_budget.py"):
        "reads MATH-500 from the Hub; tests/test_train_grpo.py runs the recipe with 2 processes",
    ("README.md", "accelerate launch --config_file recipes/accelerate_configs/fsdp2.yaml"): "16 x H100 training run",
    ("README.md", "sbatch "): "Slurm, 2 nodes x 8 H100",
    ("README.md", "accelerate launch recipes/sft_s1k.py --config recipes/smollm2-135m/s1k-cpu.yaml"):
        "reads simplescaling/s1K from the Hub and trains for minutes (tests/test_train_recipe.py runs the recipe)",
    ("README.md", "hf-s1 eval --benchmark math500"): "MATH-500 from the Hub, 500 questions x 16 runs (a GPU's work)",
    ("README.md", "hf-s1 report runs/math500"): "reads the folder of the math500 sweep above",
    ("docs/evaluation.md", "hf-s1 eval --benchmark aime24"): "AIME24 and simplescaling/s1.1-32B from the Hub, a GPU",
    ("docs/evaluation.md", "hf-s1 report runs/aime24-table3"): "reads the folder of the aime24 sweep above",
    ("README.md", "hf-s1-lm-eval --model hf-s1"): "AIME24 from the Hub (tests/test_lm_eval_backend.py: the same shape)",
    ("docs/evaluation.md", "hf-s1-lm-eval --model hf-s1"):
        "s1.1-32B on 8 GPUs; tests/test_lm_eval_backend.py runs the same command shape on the embedded model",
    ("docs/vllm.md", "pip "): "installs packages (network)",
    ("docs/vllm.md", "vllm serve "): "a server that runs until stopped, Qwen2.5-7B from the Hub",
    ("docs/vllm.md", "python -m vllm.entrypoints.openai.api_server"): "a server that runs until stopped",
    ("docs/vllm.md", "VLLM_SERVER_DEV_MODE=1 python -m vllm.entrypoints.openai.api_server"):
        "a server that runs until stopped (tests/test_vllm_server.py starts it so)",
    ("docs/space.md", "pip "): "installs packages (network)",
    ("docs/space.md", "python spaces/app.py"): "a web server that runs until stopped",
    ("docs/space.md", "HF_S1_SPACE_MODEL=/path/to/model python spaces/app.py"): "a web server that runs until stopped",
    ("docs/space.md", "hf auth login"): "needs a Hub token",
    ("docs/space.md", "python spaces/deploy.py --out build/space --repo-id"): "creates a Space on the Hub (token, network)",
    ("docs/space.md", "HF_HUB_OFFLINE=1 python -m pytest"): "runs other test files (tests/test_space_*.py)",
    ("docs/hub.md", "hf-s1 push out/s1-smollm2"): "needs out/s1-smollm2, a training run's output (the Python example "
                                                "above pushes the embedded model to a local folder)",
    ("docs/hub.md", "hf-s1 pull me/s1-smollm2"): "reads me/s1-smollm2 from the Hub",
}


@dataclass(frozen=True)
class Block:
    document: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    language: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    blocks, open_at, language, body = [], None, "", []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if open_at is None:
            if stripped.startswith("```"):
                open_at, language, body = number, stripped[3:].strip(), []
        elif stripped == "```":
            blocks.append(Block(str(path.relative_to(REPO)), open_at, language, "\n".join(body) + "\n"))
            open_at = None
        else:
            body.append(line)
    assert open_at is None, f"{path}: a code block opened at line {open_at} is never closed"
    return blocks


def shell_commands(text: str) -> list[str]:
    """The commands of a bash block: `\\` continuations joined, comments and blank lines dropped."""
    commands, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1].rstrip() + " "
            continue
        commands.append(re.sub(r"\s+#.*$", "", current).strip())
        current = ""
    return commands


def shell_skip_reason(block: Block, command: str) -> str | None:
    for (document, prefix), reason in SKIP_SHELL.items():
        if document == block.document and command.startswith(prefix):
            return reason
    return None


def python_skip_reason(block: Block) -> str | None:
    for (document, needle), reason in SKIP_PYTHON.items():
        if document == block.document and needle in block.text:
            return reason
    return None


ALL_BLOCKS = [b for doc in DOCUMENTS for b in fenced_blocks(doc)]
PYTHON = [b for b in ALL_BLOCKS if b.language == "python"]
BASH = [b for b in ALL_BLOCKS if b.language == "bash"]


def _unique_python() -> list[tuple[str, Block]]:
    """(test id, block) per distinct Python text; a repeated block keeps the id of every place it appears."""
    by_text: dict[str, list[Block]] = {}
    for block in PYTHON:
        by_text.setdefault(block.text, []).append(block)
    return [("=".join(b.id for b in blocks), blocks[0]) for blocks in by_text.values()]


UNIQUE_PYTHON = _unique_python()


@pytest.fixture(scope="module")
def environment() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    for name, value in (("VLLM_CPU_KVCACHE_SPACE", "2"), ("VLLM_CPU_NUM_OF_RESERVED_CPU", "0"),
                        ("VLLM_ENABLE_V1_MULTIPROCESSING", "0")):
        env.setdefault(name, value)
    bin_dir = str(Path(sys.executable).parent)  # `hf-s1` and `python` of this interpreter's environment
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    for name in LINKED:
        (tmp_path / name).symlink_to(REPO / name, target_is_directory=True)
    return tmp_path


def run(args: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        pytest.fail(f"{what} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n"
                    f"--- stderr\n{proc.stderr[-6000:]}", pytrace=False)


@pytest.mark.parametrize("block", [b for _, b in UNIQUE_PYTHON], ids=[i for i, _ in UNIQUE_PYTHON], scope="module")
def test_python_block(block: Block, workdir: Path, environment: dict[str, str]) -> None:
    compile(block.text, block.id, "exec")
    reason = python_skip_reason(block)
    if reason:
        pytest.skip(reason)
    script = workdir / "example.py"
    script.write_text(block.text)
    run([sys.executable, str(script)], workdir, environment, f"the python block at {block.id}")


@pytest.mark.parametrize("block", BASH, ids=[b.id for b in BASH], scope="module")
def test_shell_block(block: Block, workdir: Path, environment: dict[str, str]) -> None:
    commands = shell_commands(block.text)
    runnable = [c for c in commands if shell_skip_reason(block, c) is None]
    if not runnable:
        pytest.skip("; ".join(f"`{c[:60]}{'...' if len(c) > 60 else ''}`: {shell_skip_reason(block, c)}"
                              for c in commands))
    for command in runnable:
        run(["bash", "-c", command], workdir, environment, f"`{command}` ({block.id})")


def test_every_example_is_decided() -> None:
    """Run or listed: shell commands are `hf-s1 ...` (run) or in SKIP_SHELL; no listed entry is stale."""
    used = set()
    undecided = []
    for block in BASH:
        for command in shell_commands(block.text):
            reason = shell_skip_reason(block, command)
            if reason is None and not command.startswith("hf-s1 "):
                undecided.append(f"{block.id}: {command}")
            used |= {key for key in SKIP_SHELL if key[0] == block.document and command.startswith(key[1])}
    for block in PYTHON:
        used |= {key for key in SKIP_PYTHON if key[0] == block.document and key[1] in block.text}
    assert not undecided, "commands neither run nor listed in SKIP_SHELL:\n" + "\n".join(undecided)
    stale = (set(SKIP_SHELL) | set(SKIP_PYTHON)) - used
    assert not stale, f"skip entries that match no example: {sorted(stale)}"
    untagged_python = [b.id for b in ALL_BLOCKS if b.language == "" and re.search(r"^(from|import) \w", b.text, re.M)]
    assert not untagged_python, f"python code in blocks without a language tag: {untagged_python}"
