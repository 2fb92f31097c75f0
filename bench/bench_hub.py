"""Hub helpers, measured side by side in one run on the embedded SmolLM2-135M-Instruct (offline):

1. budget-forced greedy generation through `model.generate(custom_generate=<local folder>, trust_remote_code=True)`
   vs `hf_s1.generate_with_budget` (same budget, same prompt, same tokens): the cost of the one-line path;
2. `push_model` to a local folder vs a plain `shutil.copytree` of the same model folder: the cost of planning,
   card rendering and the all-or-nothing write.

Run: `python bench/bench_hub.py [--reps 3]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _best(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-thinking", type=int, default=32)
    args = parser.parse_args()

    from hf_s1 import ThinkingBudget, default_model_path, generate_with_budget, load_model
    from hf_s1.hub import push_model

    src = default_model_path()
    model, tokenizer = load_model(src)
    budget = ThinkingBudget(max_thinking_tokens=args.max_thinking, max_answer_tokens=8)
    work = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    try:
        t = time.perf_counter()
        push_model(src, work / "pushed", budget=budget, think_format="s1")
        first_push = time.perf_counter() - t

        prompt = "What is 17*23?"
        inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        n_tokens = len(generate_with_budget(model, tokenizer, prompt, budget)[0].token_ids)

        def via_custom_generate():
            model.generate(**inputs, custom_generate=str(work / "pushed"), trust_remote_code=True,
                           tokenizer=tokenizer)

        def via_generate_with_budget():
            generate_with_budget(model, tokenizer, prompt, budget)

        via_custom_generate()  # warm the module cache once, as a user's first call does
        # Interleave so both see the same machine load.
        cg, gwb = [], []
        for _ in range(args.reps):
            cg.append(_best(via_custom_generate, 1)[0])
            gwb.append(_best(via_generate_with_budget, 1)[0])

        copies, pushes = [], []
        for i in range(args.reps):
            t = time.perf_counter()
            shutil.copytree(src, work / f"copy{i}")
            copies.append(time.perf_counter() - t)
            t = time.perf_counter()
            push_model(src, work / f"push{i}", budget=budget, think_format="s1")
            pushes.append(time.perf_counter() - t)
            shutil.rmtree(work / f"copy{i}")
            shutil.rmtree(work / f"push{i}")
        t = time.perf_counter()
        for _ in range(args.reps):
            push_model(src, "me/s1-smollm2", budget=budget, think_format="s1", dry_run=True)
        dry = (time.perf_counter() - t) / args.reps
    finally:
        shutil.rmtree(work, ignore_errors=True)

    size_mb = sum(f.stat().st_size for f in src.rglob("*") if f.is_file()) / 2**20
    print(f"generation ({n_tokens} new tokens, greedy, batch 1), median of {args.reps}:")
    print(f"  generate_with_budget        {statistics.median(gwb):7.2f} s")
    print(f"  generate(custom_generate=)  {statistics.median(cg):7.2f} s")
    print(f"  ratio custom_generate / generate_with_budget = {statistics.median(cg) / statistics.median(gwb):.2f}")
    print(f"publishing a {size_mb:.0f} MB model folder, median of {args.reps}:")
    print(f"  shutil.copytree             {statistics.median(copies):7.2f} s")
    print(f"  push_model -> local folder  {statistics.median(pushes):7.2f} s  (first: {first_push:.2f} s)")
    print(f"  ratio push_model / copytree = {statistics.median(pushes) / statistics.median(copies):.2f}")
    print(f"  push_model dry run          {dry:7.3f} s")


if __name__ == "__main__":
    main()
