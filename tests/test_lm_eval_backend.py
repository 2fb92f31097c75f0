"""hf-s1 as an lm-evaluation-harness backend, through lm-eval's own entry points (its command line, and
`simple_evaluate`) on the real SmolLM2, offline: tasks read JSON Lines written here; one task is lm-eval's own
`aime24` definition pointed at the local file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import lm_eval  # the [lm-eval] extra, which scripts/setup_venv.sh installs

from hf_s1 import BudgetError, ThinkingBudget
from hf_s1.engines import transformers as hf_engine

QUESTIONS = [("What is 2+3?", "5"), ("What is 12*12?", "144"), ("Is 17 prime? Answer 1 for yes.", "1"),
             ("How many legs does a spider have?", "8")]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> Path:
    """A folder of task YAMLs: `hf_s1_toy` (written here) and `hf_s1_aime24` (lm-eval's aime24, local data)."""
    root = tmp_path_factory.mktemp("lm_eval_tasks")
    data = root / "questions.jsonl"
    data.write_text("".join(json.dumps({"Problem": q, "Answer": a, "ID": str(i)}) + "\n"
                            for i, (q, a) in enumerate(QUESTIONS)))
    aime = Path(lm_eval.__file__).parent / "tasks" / "aime" / "aime24.yaml"
    (root / "hf_s1_aime24.yaml").write_text(
        f"include: {aime}\ntask: hf_s1_aime24\ntag: []\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    train: {data}\n")
    (root / "hf_s1_toy.yaml").write_text(
        "task: hf_s1_toy\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "output_type: generate_until\ntest_split: test\ndoc_to_text: '{{Problem}}'\ndoc_to_target: '{{Answer}}'\n"
        "generation_kwargs:\n  until: []\n  do_sample: false\n  max_gen_toks: 256\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
        "metadata:\n  version: 0\n")
    return root


def _evaluate(lm, tasks: Path, task: str, gen_kwargs: str) -> list[dict]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    out = simple_evaluate(model=lm, tasks=[task], task_manager=TaskManager(include_path=str(tasks)),
                          gen_kwargs=gen_kwargs, apply_chat_template=True, log_samples=True)
    return sorted(out["samples"][task], key=lambda s: s["doc_id"])


def _telemetry(sample: dict) -> dict:
    """The backend's record in a logged sample: in memory `arguments` is [(context, gen_kwargs)]; in the
    samples file, {"gen_args_0": {"arg_0": context, "arg_1": gen_kwargs}}."""
    args = sample["arguments"]
    gen_kwargs = args["gen_args_0"]["arg_1"] if isinstance(args, dict) else args[0][1]
    (record,) = gen_kwargs["hf_s1"]
    return record


@pytest.fixture(scope="module")
def vllm_lm(default_model_dir):
    from hf_s1.harness.lm_eval import HfS1LM

    return HfS1LM(pretrained=str(default_model_dir), engine="vllm", max_model_len=1024, max_num_seqs=8)


def test_s1_command_line_gives_the_s1_profile(tasks, tmp_path, model, tokenizer, default_model_dir):
    """s1's command shape through lm-eval's command line (only --model changed) on lm-eval's own aime24 task:
    the responses are the `ThinkingBudget(profile="s1")` generations of the same questions, telemetry logged."""
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "hf_s1.harness.lm_eval", "--model", "hf-s1",
           "--model_args", f"pretrained={default_model_dir},engine=transformers", "--tasks", "hf_s1_aime24",
           "--include_path", str(tasks), "--batch_size", "auto", "--apply_chat_template", "--log_samples",
           "--output_path", str(out),
           "--gen_kwargs", "max_gen_toks=260,max_tokens_thinking=auto,thinking_n_ignore=2,thinking_n_ignore_str=Wait"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    (samples_file,) = out.rglob("samples_hf_s1_aime24_*.jsonl")
    samples = sorted((json.loads(line) for line in samples_file.read_text().splitlines()), key=lambda s: s["doc_id"])
    assert len(samples) == len(QUESTIONS)
    budget = ThinkingBudget(max_thinking_tokens="auto", num_waits=2, profile="s1")
    prompts = [f"Question: {q}\nAnswer:" for q, _ in QUESTIONS]  # aime24's doc_to_text
    want = hf_engine.generate_with_budget(model, tokenizer, prompts, budget, max_new_tokens=260)
    for sample, w in zip(samples, want):
        (response,) = sample["resps"][0]
        after = w.text.rfind("<|im_start|>answer") + len("<|im_start|>answer")  # until cuts the answer only
        cuts = [w.text.find(u, after) for u in ("Question:", "</s>", "<|im_end|>", "<|eot_id|>") if u in w.text[after:]]
        assert response == "<|im_start|>think" + (w.text[: min(cuts)] if cuts else w.text)
        record = _telemetry(sample)
        assert (record["thinking_tokens"], record["waits"], record["capped"]) == (w.thinking_tokens, w.waits,
                                                                                   w.capped)
    assert any(_telemetry(s)["waits"] == 2 for s in samples)


@pytest.mark.parametrize("cap", [16, 32, 64])
def test_caps_give_control_100_percent_on_vllm(vllm_lm, tasks, cap):
    samples = _evaluate(vllm_lm, tasks, "hf_s1_toy",
                        f"max_tokens_thinking={cap},thinking_n_ignore=4,thinking_n_ignore_str=Wait,max_gen_toks=256")
    records = [_telemetry(s) for s in samples]
    assert len(records) == len(QUESTIONS)
    assert all(r["thinking_tokens"] <= cap for r in records), records  # Control: every row within its budget
    if cap == 16:  # 4 Waits past a short natural length: the smallest cap really binds
        assert any(r["capped"] for r in records), records


def test_sampled_runs_repeat_with_a_seed(vllm_lm, tasks):
    kwargs = "max_tokens_thinking=16,max_gen_toks=40,do_sample=true,temperature=1.0,seed=5"
    first, again = (_evaluate(vllm_lm, tasks, "hf_s1_toy", kwargs) for _ in range(2))
    other = _evaluate(vllm_lm, tasks, "hf_s1_toy", kwargs.replace("seed=5", "seed=6"))
    assert [s["resps"] for s in first] == [s["resps"] for s in again]
    assert [s["resps"] for s in first] != [s["resps"] for s in other]


def test_max_gen_toks_beyond_the_context_is_kept_within_it(vllm_lm, tasks):
    # lm-eval's tasks ask for more than a 1,024-token engine holds (aime24: 32,768); as lm-eval's own models do,
    # the allowance shrinks to what the context leaves instead of failing every request.
    samples = _evaluate(vllm_lm, tasks, "hf_s1_toy", "max_thinking_tokens=16,max_answer_tokens=8,max_gen_toks=32768")
    assert all(_telemetry(s)["thinking_tokens"] <= 16 for s in samples) and len(samples) == len(QUESTIONS)


@pytest.mark.parametrize("gen_kwargs, match", [
    ("max_tokens_thinking=16,thinking_budget_tokens=8", "thinking_budget_tokens: not a setting"),
    ("min_thinking_tokens=50,max_thinking_tokens=10", "above max_thinking_tokens"),
    ("max_tokens_thinking=-3", "max_thinking_tokens must be"),
    ("thinking_n_ignore=2", "add thinking_n_ignore_str=Wait"),
    ("max_thinking_tokens=8,thinking_n_ignore=1,thinking_n_ignore_str=Wait", "use one spelling"),
    ("max_tokens_thinking=8,thinking_start=<think>", "not a think format"),
])
def test_bad_gen_kwargs_are_clear_errors(vllm_lm, tasks, gen_kwargs, match):
    with pytest.raises(BudgetError, match=match):
        _evaluate(vllm_lm, tasks, "hf_s1_toy", gen_kwargs)
