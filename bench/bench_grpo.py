"""GRPO step time with budget-forced rollouts / TRL's plain rollouts, on the embedded SmolLM2-135M, measured side by
side in one run. Both runs generate the same number of completion tokens per rollout: plain rollouts with
`min_new_tokens = max_new_tokens = L` (TRL's `generate` path), budget-forced rollouts (`hf_s1.train.grpo.BudgetRollout`,
static `generate` or continuous batching) with a budget whose thinking and answer add up to L.

    python bench/bench_grpo.py [--steps 4] [--length 48]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from hf_s1 import ThinkingBudget, default_model_path
from hf_s1.train.grpo import BudgetRollout, answer_reward
from hf_s1.train.sft import prepare_tokenizer

PROBLEMS = [("What is 2 + 3?", "5"), ("What is 6 times 7?", "42"), ("What is 10 minus 4?", "6"), ("What is 9 + 9?", "18")]


def run(rollout, length, steps, out):
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": q}], "answer": a} for q, a in PROBLEMS])
    args = GRPOConfig(output_dir=out, use_cpu=True, num_generations=2, per_device_train_batch_size=4,
                      max_completion_length=length, max_steps=steps, learning_rate=1e-6, beta=0.0, logging_steps=1,
                      save_strategy="no", report_to="none", seed=0,
                      generation_kwargs={"min_new_tokens": length} if rollout is None else None)
    tokenizer = prepare_tokenizer(str(default_model_path()))
    tokenizer.padding_side = "left"
    trainer = GRPOTrainer(model=str(default_model_path()), reward_funcs=[answer_reward], args=args, train_dataset=data,
                          processing_class=tokenizer, rollout_func=rollout)
    t = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - t
    lengths = [e["completions/mean_length"] for e in trainer.state.log_history if "completions/mean_length" in e]
    return elapsed / steps, sum(lengths) / len(lengths)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--length", type=int, default=48)
    a = ap.parse_args()
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    # Thinking exactly L - 16 tokens (min = max), then the cut and an answer of at most 8: about L tokens in all.
    budget = ThinkingBudget(min_thinking_tokens=a.length - 16, max_thinking_tokens=a.length - 16, max_answer_tokens=8,
                            profile="hf-s1")
    with tempfile.TemporaryDirectory() as tmp:
        plain, n_plain = run(None, a.length, a.steps, str(Path(tmp) / "plain"))
        static, n_static = run(BudgetRollout(budget, mask_forced=False), a.length, a.steps, str(Path(tmp) / "static"))
        cb, n_cb = run(BudgetRollout(budget, mask_forced=False, continuous_batching=True), a.length, a.steps,
                       str(Path(tmp) / "cb"))
    print(f"GRPO {a.steps} steps x 4 rollouts: plain {plain:.2f} s/step ({n_plain:.1f} tokens/rollout); "
          f"budget on generate {static:.2f} s/step ({n_static:.1f}), ratio {static / plain:.2f}, per token "
          f"{(static / n_static) / (plain / n_plain):.2f}; budget on continuous batching {cb:.2f} s/step "
          f"({n_cb:.1f}), ratio {cb / plain:.2f}, per token {(cb / n_cb) / (plain / n_plain):.2f}")


if __name__ == "__main__":
    main()
