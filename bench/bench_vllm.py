"""vLLM engine speed, measured side by side in one run on the embedded SmolLM2-135M-Instruct (fp32, eager).

P3: budget-forced vs plain vLLM, batch 32, the same number of generated tokens per row. Every forced row thinks
    exactly `--thinking` tokens (min = max), so the processor works at every step (greedy arg-max checks,
    forced "Wait"s, the cut); the plain rows decode `ignore_eos` to the same length on an engine without the
    processor. Target: forced / plain <= 1.05.
P2: a loop in s1's shape with hf-s1's rules (`hf_s1.reference`; one prompt at a time, a new `generate` call after every suppressed end, re-reading
    prompt + thinking) vs hf-s1's single pass (all prompts in one batch), 8 prompts, 4 Waits. Target: >= 2x.

Runs alternate (plain, forced, plain, forced, ...) and report medians, so load drifts hit both sides alike.

    python bench/bench_vllm.py [--rounds 3] [--thinking 96]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hf_s1 import ThinkingBudget, default_model_path  # noqa: E402
from hf_s1.engines.vllm import generate_with_budget, load_llm, s1_reference_generate  # noqa: E402

QUESTIONS = [
    "What is 2+3?", "Name a prime number larger than 10.", "What is the capital of France?",
    "Explain gravity briefly.", "How many legs does a spider have?", "What is 12*12?", "Is 17 prime?",
    "How many r are in raspberry?",
]


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_p3(rounds: int, thinking: int) -> None:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    path = str(default_model_path())
    forced_llm = load_llm(path, max_num_seqs=32, max_model_len=1024)
    plain_llm = LLM(model=path, dtype="float32", enforce_eager=True, max_num_seqs=32, max_model_len=1024)
    prompts = [QUESTIONS[i % len(QUESTIONS)] for i in range(32)]
    budget = ThinkingBudget(min_thinking_tokens=thinking, max_thinking_tokens=thinking, max_answer_tokens=0)
    # One warm-up run each; the forced run's lengths fix the plain rows' lengths.
    warm = generate_with_budget(forced_llm, prompts, budget)
    lengths = [len(r.token_ids) + 1 for r in warm]  # + the forced end-of-sequence token
    tokenizer = forced_llm.get_tokenizer()
    from hf_s1.formats import get_format
    from hf_s1.prompts import build_prompt

    ids = [tokenizer(build_prompt(tokenizer, q, get_format("s1")), add_special_tokens=False)["input_ids"] for q in prompts]
    plain_params = [SamplingParams(max_tokens=n, min_tokens=n, ignore_eos=True, temperature=0.0) for n in lengths]
    plain_inputs = [TokensPrompt(prompt_token_ids=x) for x in ids]
    plain_llm.generate(plain_inputs, plain_params, use_tqdm=False)

    plain_t, forced_t = [], []
    for _ in range(rounds):
        t, outs = _timed(lambda: plain_llm.generate(plain_inputs, plain_params, use_tqdm=False))
        plain_t.append(t)
        plain_tokens = sum(len(o.outputs[0].token_ids) for o in outs)
        t, res = _timed(lambda: generate_with_budget(forced_llm, prompts, budget))
        forced_t.append(t)
        forced_tokens = sum(len(r.token_ids) + 1 for r in res)
        assert all(r.thinking_tokens == thinking for r in res)
    p, f = statistics.median(plain_t), statistics.median(forced_t)
    print(f"P3 bs=32, {thinking} thinking tokens/row: plain {plain_tokens} tokens in {p:.2f}s "
          f"({plain_tokens / p:.0f} tok/s); forced {forced_tokens} tokens in {f:.2f}s ({forced_tokens / f:.0f} tok/s)")
    print(f"P3 ratio forced/plain (time per token): {(f / forced_tokens) / (p / plain_tokens):.3f}  "
          f"[runs plain {['%.2f' % x for x in plain_t]}, forced {['%.2f' % x for x in forced_t]}]")
    del plain_llm, forced_llm
    gc.collect()


def bench_p2(rounds: int) -> None:
    llm = load_llm(str(default_model_path()), max_num_seqs=32, max_model_len=1024)
    budget = ThinkingBudget(max_thinking_tokens=256, num_waits=4, max_answer_tokens=32)
    loop_t, single_t = [], []
    generate_with_budget(llm, QUESTIONS, budget)  # warm-up
    for _ in range(rounds):
        t, loop = _timed(lambda: s1_reference_generate(llm, QUESTIONS, budget))
        loop_t.append(t)
        t, single = _timed(lambda: generate_with_budget(llm, QUESTIONS, budget))
        single_t.append(t)
    same = sum(a.token_ids == b.token_ids for a, b in zip(loop, single))
    waits = [r.waits for r in single]
    lo, si = statistics.median(loop_t), statistics.median(single_t)
    print(f"P2 8 prompts, num_waits=4 (waits per row {waits}; identical outputs {same}/8): "
          f"s1-shaped loop {lo:.2f}s, hf-s1 single pass {si:.2f}s")
    print(f"P2 speed-up loop/single: {lo / si:.2f}x  [runs loop {['%.2f' % x for x in loop_t]}, "
          f"single {['%.2f' % x for x in single_t]}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--thinking", type=int, default=96)
    parser.add_argument("--only", choices=["p2", "p3"], default=None)
    args = parser.parse_args()
    if args.only in (None, "p3"):
        bench_p3(args.rounds, args.thinking)
    if args.only in (None, "p2"):
        bench_p2(args.rounds)


if __name__ == "__main__":
    main()
