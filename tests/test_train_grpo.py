"""GRPO with budget-forced rollouts (`hf_s1.train.grpo`, `recipes/grpo_budget.py`) on real TRL, on CPU.

Every rollout ends with the end marker and an answer prefix inside its budget; TRL's loss mask has exactly the
forced tokens off (counted against the rollout's own record and TRL's completion-length metric, which counts
the tokens the mask keeps); the `budget/` metrics reach TRL's logs; the recipe trains with 2 processes through
accelerate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_s1.train.grpo import BudgetRollout, GRPOBudgetArguments, run_grpo

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "grpo_budget.py"
CONFIG = ROOT / "recipes" / "smollm2-135m" / "grpo_budget.yaml"
FIXTURE = ROOT / "tests" / "fixtures" / "arithmetic.jsonl"


class _Recorded(BudgetRollout):
    """The rollout, keeping what it returned (to check against what TRL logged)."""

    outputs: list

    def __call__(self, prompts, trainer):
        out = super().__call__(prompts, trainer)
        self.outputs = [*getattr(self, "outputs", []), out]
        return out


def _train(tmp_path, model_dir, *, mask_forced=True, continuous_batching=False, steps=2):
    from trl import GRPOConfig, ModelConfig

    import hf_s1.train.grpo as grpo

    script = GRPOBudgetArguments(dataset_name=str(FIXTURE), max_train_samples=4, max_thinking_tokens=10,
                                 min_thinking_tokens=10, max_answer_tokens=6, continuous_batching=continuous_batching,
                                 mask_forced=mask_forced)
    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, num_generations=2, per_device_train_batch_size=4,
                      max_completion_length=64, max_steps=steps, learning_rate=1e-6, beta=0.0, logging_steps=1,
                      save_strategy="no", report_to="none", seed=3)
    recorded = {}
    original = grpo.BudgetRollout

    def make(*a, **k):
        recorded["rollout"] = _Recorded(*a, **k)
        return recorded["rollout"]

    grpo.BudgetRollout = make
    try:
        trainer = run_grpo(script, args, ModelConfig(model_name_or_path=str(model_dir), dtype="float32"))
    finally:
        grpo.BudgetRollout = original
    return trainer, recorded["rollout"].outputs


@pytest.fixture(scope="module")
def trained(default_model_dir, tmp_path_factory):
    return _train(tmp_path_factory.mktemp("grpo"), default_model_dir)


def test_every_rollout_is_budget_forced_and_ends_with_an_answer(trained, tokenizer):
    _, outputs = trained
    end = tokenizer("<|im_start|>answer\nFinal Answer:", add_special_tokens=False)["input_ids"]
    rollouts = [(ids, t) for out in outputs for ids, t in zip(out["completion_ids"], out["thinking_tokens"])]
    assert len(rollouts) == 8  # 2 steps x 4 completions
    for ids, thinking in rollouts:
        assert any(ids[k:k + len(end)] == end for k in range(len(ids))), tokenizer.decode(ids)
        assert thinking == 10  # min = max = 10: cut at exactly 10
    assert all(out["capped"] == [True] * 4 for out in outputs)


def test_loss_mask_has_exactly_the_forced_tokens_off(trained, tokenizer):
    trainer, outputs = trained
    kept_means = []
    for out in outputs:
        for ids, mask, forced in zip(out["completion_ids"], out["env_mask"], out["forced_tokens"]):
            assert len(mask) == len(ids)
            assert mask.count(0) == forced > 0
            # The forced cut is off: its answer-prefix tokens are masked, the model's answer tokens are not.
            text_off = tokenizer.decode([t for t, m in zip(ids, mask) if m == 0])
            assert "answer" in text_off and "Final Answer:" in text_off
        kept_means.append(sum(sum(m) for m in out["env_mask"]) / len(out["env_mask"]))
    # TRL counts a completion's length from the tokens its loss mask keeps: the logged lengths are ours.
    logged = [e["completions/mean_length"] for e in trainer.state.log_history if "completions/mean_length" in e]
    assert logged == pytest.approx(kept_means)
    names = {k for e in trainer.state.log_history for k in e}
    assert {"budget/thinking_tokens", "budget/waits", "budget/capped", "budget/forced_tokens"} <= names
    assert [e["budget/thinking_tokens"] for e in trainer.state.log_history if "budget/thinking_tokens" in e] == [10.0, 10.0]


def test_unmasked_rollouts_train_on_every_token_on_continuous_batching(default_model_dir, tmp_path):
    trainer, outputs = _train(tmp_path, default_model_dir, mask_forced=False, continuous_batching=True, steps=1)
    for out in outputs:
        assert all(set(m) == {1} for m in out["env_mask"])
        assert all(f > 0 for f in out["forced_tokens"])  # forced tokens were there, and kept in the loss
        assert out["thinking_tokens"] == [10] * 4


def test_recipe_trains_with_two_processes(tiny_model_dir, tmp_path, free_port):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--num_processes", "2", "--num_machines", "1",
           "--main_process_port", str(free_port()), str(RECIPE), "--config", str(CONFIG),
           "--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(FIXTURE), "--max_train_samples", "4",
           "--output_dir", str(tmp_path), "--max_steps", "2", "--num_generations", "2",
           "--per_device_train_batch_size", "2", "--max_thinking_tokens", "8", "--num_waits", "0",
           "--max_answer_tokens", "4", "--max_completion_length", "48"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    steps = [e for e in history if "budget/thinking_tokens" in e]
    assert len(steps) == 2 and all(e["budget/thinking_tokens"] == 8.0 and e["budget/capped"] == 1.0 for e in steps)
    # The trained model is saved where TRL's own recipe saves it, and loads.
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path).config.num_hidden_layers >= 1
