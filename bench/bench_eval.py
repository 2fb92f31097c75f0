"""Sweep throughput: samples/s of the same budget-forcing sweep on the vLLM engine and the transformers engine.

Both engines run the embedded SmolLM2-135M-Instruct in fp32 with greedy decoding, side by side in one
process, over the same questions, runs and batch size. The script prints samples/s for each, their ratio,
and how many samples the two engines agree on (thinking tokens and extracted answer), since greedy fp32
outputs should be the same.

    python bench/bench_eval.py                                # the arithmetic fixture, repeated to 16 questions
    python bench/bench_eval.py --data ../shared/data/math500/test.jsonl --limit 16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_s1.eval import Benchmark, expand_runs, load_benchmark, read_samples, run_sweep  # noqa: E402
from hf_s1.eval.engines import TransformersEngine, VLLMEngine  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "arithmetic.jsonl"


def _questions(args: argparse.Namespace) -> Benchmark:
    if args.data:
        return load_benchmark("bench", data=args.data, limit=args.limit)
    base = load_benchmark("arithmetic", data=FIXTURE)
    qs = [q for _ in range(-(-args.limit // len(base))) for q in base.questions][: args.limit]
    # Repeat the fixture under fresh ids so every sample is its own job.
    from dataclasses import replace

    return Benchmark("arithmetic", [replace(q, id=f"{q.id}-{i}") for i, q in enumerate(qs)], "math", base.source)


def _timed(engine, bench: Benchmark, runs, batch_size: int) -> tuple[float, list[dict]]:
    out = tempfile.mkdtemp(prefix=f"bench-eval-{engine.name}-")
    start = time.perf_counter()
    run_sweep(engine, bench, runs, out, batch_size=batch_size, progress=False)
    return time.perf_counter() - start, read_samples(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="a benchmark .jsonl (default: the test fixture, repeated)")
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--max-thinking", default="32,64")
    parser.add_argument("--num-waits", default="0,1")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import torch

    from hf_s1 import default_model_path, load_model
    from hf_s1.engines.vllm import load_llm

    bench = _questions(args)
    caps = [int(x) for x in args.max_thinking.split(",")]
    waits = [int(x) for x in args.num_waits.split(",")]
    runs = expand_runs(["budget-forcing"], max_thinking=caps, num_waits=waits, max_answer_tokens=32)
    n = len(bench) * len(runs)
    path = default_model_path()

    model, tokenizer = load_model(path)
    hf = TransformersEngine(model, tokenizer, batch_size=args.batch_size)
    llm = VLLMEngine(load_llm(path))
    # Warm both (first-call allocations, kernel selection) on one tiny batch outside the timings.
    warm = expand_runs(["budget-forcing"], max_thinking=[4], max_answer_tokens=4)
    small = Benchmark("warm", bench.questions[:2], "math", "warm")
    _timed(hf, small, warm, args.batch_size)
    _timed(llm, small, warm, args.batch_size)

    t_vllm, rec_vllm = _timed(llm, bench, runs, args.batch_size)
    t_hf, rec_hf = _timed(hf, bench, runs, args.batch_size)
    key = lambda r: (r["method"], r["run"], r["id"], r["sample"])  # noqa: E731
    hf_by = {key(r): r for r in rec_hf}
    same = sum(
        (r["thinking_tokens"], r["extracted"]) == (hf_by[key(r)]["thinking_tokens"], hf_by[key(r)]["extracted"])
        for r in rec_vllm
    )
    print(f"sweep: {len(bench)} questions x {len(runs)} runs = {n} samples (caps {caps}, waits {waits}), "
          f"batch {args.batch_size}, fp32 greedy, torch threads {torch.get_num_threads()}")
    print(f"transformers: {t_hf:7.2f} s  {n / t_hf:6.2f} samples/s")
    print(f"vllm:         {t_vllm:7.2f} s  {n / t_vllm:6.2f} samples/s")
    print(f"ratio vllm / transformers (samples/s): {t_hf / t_vllm:.2f}x")
    print(f"samples with identical thinking tokens and extracted answer: {same}/{n}")


if __name__ == "__main__":
    main()
