"""Speed of budget forcing on transformers, measured side by side in one run.

P1: budget-forced generate / plain generate, same number of new tokens, bs 1, 8 and 64 (target <= 1.02).
P2: a multi-call loop in s1's shape with hf-s1's rules (`hf_s1.reference`, one prompt at a time) / hf-s1 single pass, 8 prompts, 4 Waits, same tokens
    (target >= 2x), and a batched multi-round loop / single pass.

    python bench/bench_transformers.py [--tokens 128] [--repeats 3] [--batch 1 8 64] [--only p1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import LogitsProcessorList

from hf_s1 import ThinkingBudget, load_default_model
from hf_s1.engines.transformers import BudgetForcingLogitsProcessor, generate_with_budget, s1_reference_generate
from hf_s1.formats import marker_tokens
from hf_s1.prompts import build_prompt

QUESTIONS = [
    "What is 17 * 23?", "Is 221 prime?", "What is 2 + 3?", "Name a prime number larger than 10.",
    "What is the square root of 144?", "How many legs does a spider have?", "What is 9 squared?",
    "Solve for x: 2x = 10.",
]


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def p1(model, tokenizer, batch, tokens, repeats):
    texts = [build_prompt(tokenizer, q, marker_tokens and __import__("hf_s1").S1_FORMAT) for q in (QUESTIONS * batch)[:batch]]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    # A minimum no row reaches: every end is replaced, so each row generates exactly `tokens` new tokens.
    budget = ThinkingBudget(min_thinking_tokens=10**6)

    def plain():
        return model.generate(**enc, max_new_tokens=tokens, do_sample=False, eos_token_id=None, pad_token_id=2)

    spent = [0.0]

    class Timed(BudgetForcingLogitsProcessor):  # time spent inside the processor, the part that is ours
        def __call__(self, input_ids, scores):
            t = time.perf_counter()
            out = super().__call__(input_ids, scores)
            spent[0] += time.perf_counter() - t
            return out

    def forced():
        proc = Timed(tokenizer, budget)
        return model.generate(**enc, max_new_tokens=tokens, do_sample=False, eos_token_id=None, pad_token_id=2,
                              logits_processor=LogitsProcessorList([proc]))

    plain()  # warm-up
    a, b = [], []
    for _ in range(repeats):  # interleaved so that drifts in machine load hit both sides
        a.append(timed(plain, 1)[0])
        b.append(timed(forced, 1)[0])
    spent[0] = 0.0
    t = time.perf_counter()
    n_new = forced().shape[1] - enc["input_ids"].shape[1]
    share = spent[0] / (time.perf_counter() - t)
    assert n_new == tokens
    return statistics.median(a), statistics.median(b), share


def batched_loop(model, tokenizer, budget):
    """The s1-shaped loop (hf-s1's rules), batched: every round generates for all rows still thinking, then appends Wait to the rows
    that tried to stop (each round re-reads prompt + thinking). Rows are done once their waits are spent."""
    fmt = __import__("hf_s1").S1_FORMAT
    m = marker_tokens(tokenizer, fmt)
    ends = [*m.stop_ids, m.think_end[0]]
    rows = [tokenizer(build_prompt(tokenizer, q, fmt), add_special_tokens=False)["input_ids"] for q in QUESTIONS]
    counts = [0] * len(rows)
    for round_ in range(budget.num_waits + 1):
        left = [budget.max_thinking_tokens - c for c in counts]
        active = [i for i in range(len(rows)) if left[i] > 0]
        if not active:
            break
        enc = tokenizer.pad({"input_ids": [rows[i] for i in active]}, return_tensors="pt", padding_side="left")
        out = model.generate(**enc, max_new_tokens=max(left[i] for i in active), do_sample=False,
                             eos_token_id=ends, pad_token_id=2)
        for j, i in enumerate(active):
            new = [t for t in out[j, enc["input_ids"].shape[1]:].tolist()]
            stop = next((k for k, t in enumerate(new) if t in ends), None)
            body = new[: stop if stop is not None else left[i]][: left[i]]
            rows[i] = rows[i] + body
            counts[i] += len(body)
            if stop is not None and round_ < budget.num_waits:
                rows[i] += m.encode("Wait")
                counts[i] += 1
    return rows


def cb_overhead(model, tokenizer, tokens, repeats):
    """32 requests on continuous batching, each exactly `tokens` new tokens: no budget (end-of-sequence off) vs a
    budget that never lets a row end (every end replaced), the same manager settings."""
    from transformers import GenerationConfig

    from hf_s1.engines.continuous import BudgetForcingCBProcessor, cpu_config, enable_budget_forcing

    fmt = __import__("hf_s1").S1_FORMAT
    rows = [tokenizer(build_prompt(tokenizer, q, fmt), add_special_tokens=False)["input_ids"] for q in QUESTIONS * 4]
    budget = ThinkingBudget(min_thinking_tokens=10**6, profile="hf-s1")

    def run(with_budget):
        config = GenerationConfig(do_sample=False, eos_token_id=-1, max_new_tokens=tokens)
        manager = model.init_continuous_batching(config, cpu_config(rows, [tokens] * len(rows)))
        processor = enable_budget_forcing(manager, BudgetForcingCBProcessor(tokenizer, budget)) if with_budget else None
        manager.start()
        try:
            ids = [manager.add_request(r, max_new_tokens=tokens) for r in rows]
            done = {}
            while len(done) < len(ids):
                out = manager.get_result(timeout=600)
                if out.is_finished():
                    done[out.request_id] = out
        finally:
            manager.stop(block=True)
            manager.destroy()
        return sum(len(o.generated_tokens) for o in done.values())

    plain, forced, counts = [], [], set()
    for _ in range(repeats):  # alternated, so that a change in the machine's load hits both alike
        for with_budget, times in ((False, plain), (True, forced)):
            t = time.perf_counter()
            counts.add(run(with_budget))
            times.append(time.perf_counter() - t)
    assert len(counts) == 1, counts  # the same number of tokens with and without budgets
    return statistics.median(plain), statistics.median(forced), counts.pop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--only", choices=["p1", "p2", "cb"], default=None)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    model, tokenizer = load_default_model()
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    if args.only in (None, "cb"):
        plain, forced, n = cb_overhead(model, tokenizer, args.tokens, args.repeats)
        print(f"CB 32 requests x {args.tokens} tokens ({n} tokens): plain {plain:.2f}s  budgets {forced:.2f}s  "
              f"ratio {forced / plain:.3f}")
        if args.only == "cb":
            return
    for bs in args.batch if args.only != "p2" else ():
        plain, forced, share = p1(model, tokenizer, bs, args.tokens, args.repeats)
        print(f"P1 bs={bs} tokens={args.tokens}: plain {plain:.2f}s  forced {forced:.2f}s  ratio {forced / plain:.3f}"
              f"  (processor: {100 * share:.2f}% of the forced run's time)")
    if args.only == "p1":
        return
    budget = ThinkingBudget(max_thinking_tokens=256, num_waits=4, max_answer_tokens=32)
    t_single, single = timed(lambda: generate_with_budget(model, tokenizer, QUESTIONS, budget), 1)
    t_loop, loop = timed(lambda: s1_reference_generate(model, tokenizer, QUESTIONS, budget), 1)
    t_batched, _ = timed(lambda: batched_loop(model, tokenizer, budget), 1)
    t_cb, cb = timed(lambda: generate_with_budget(model, tokenizer, QUESTIONS, budget, continuous_batching=True), 1)
    same = all(a.token_ids == b.token_ids for a, b in zip(single, loop))
    same_cb = sum(a.token_ids == b.token_ids for a, b in zip(single, cb))
    tokens = sum(len(r.token_ids) for r in single)
    waits = sum(r.waits for r in single)
    print(f"P2 8 prompts, num_waits=4 ({waits} waits, {tokens} tokens, identical ids: {same}): "
          f"single pass {t_single:.1f}s, s1-shaped loop {t_loop:.1f}s ({t_loop / t_single:.2f}x), "
          f"batched multi-round loop {t_batched:.1f}s ({t_batched / t_single:.2f}x)")
    print(f"P2 on continuous batching ({same_cb}/8 outputs equal to generate's): single pass {t_cb:.1f}s, "
          f"s1-shaped loop / single pass {t_loop / t_cb:.2f}x, static single pass / continuous {t_single / t_cb:.2f}x")


if __name__ == "__main__":
    main()
