"""How the Space should share CPU cores: torch intra-op threads per generation, with one and with two
generations running at once (the Space's default concurrency), measured side by side in one run.

    python bench/bench_space.py --reps 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from hf_s1 import ThinkingBudget, load_default_model  # noqa: E402
from hf_s1.engines.transformers import generate_with_budget  # noqa: E402

QUESTIONS = ["What is 12 * 7?", "What is 15% of 80?"]
BUDGET = ThinkingBudget(min_thinking_tokens=16, max_thinking_tokens=24, max_answer_tokens=8)


def run(model, tokenizer, threads: int, concurrent: int) -> tuple[float, int]:
    """Seconds and generated tokens for `concurrent` generations started together."""
    torch.set_num_threads(threads)
    copies = [tokenizer] + [type(tokenizer).from_pretrained(tokenizer.name_or_path) for _ in range(concurrent - 1)]
    tokens = [0] * concurrent

    def one(i: int) -> None:
        out = generate_with_budget(model, copies[i], QUESTIONS[i % len(QUESTIONS)], BUDGET)[0]
        tokens[i] = len(out.token_ids)

    workers = [threading.Thread(target=one, args=(i,)) for i in range(concurrent)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - start, sum(tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    model, tokenizer = load_default_model()
    cores = os.cpu_count() or 1
    cases = [(concurrent, threads) for concurrent in (1, 2) for threads in sorted({cores, max(1, cores // concurrent), 1})]
    times: dict[tuple[int, int], list[float]] = {c: [] for c in cases}
    counts: dict[tuple[int, int], int] = {}
    run(model, tokenizer, 1, 1)  # warm-up
    for _ in range(args.reps):  # interleaved, so load from other processes hits every case alike
        for case in cases:
            seconds, n = run(model, tokenizer, case[1], case[0])
            times[case].append(seconds)
            counts[case] = n
    print(f"cores={cores} reps={args.reps} load average={os.getloadavg()[0]:.1f}")
    print("| concurrent generations | torch threads each | median time | tokens | tok/s | time vs best |")
    print("|---|---|---|---|---|---|")
    for concurrent in (1, 2):
        rows = [c for c in cases if c[0] == concurrent]
        best = min(statistics.median(times[c]) for c in rows)
        for case in rows:
            med = statistics.median(times[case])
            print(f"| {case[0]} | {case[1]} | {med:.2f} s | {counts[case]} | {counts[case] / med:.1f} | {med / best:.2f} |")


if __name__ == "__main__":
    main()
