"""Host time of one budget-forcing decode step, against an argmax over the same logits, measured side by side.

An argmax over the batch's logits is the least a greedy end-attempt decision must read. Every row is intercepted
(a minimum no row reaches, so each step checks every row for an attempted end and bans the end ids), greedy.

- transformers: `BudgetForcingLogitsProcessor.__call__` (commit the newest token, decide, write the mask);
- vLLM V1: the vLLM processor's `apply` over a batch tracked through `update_state` (with `--vllm`).

    python bench/bench_processor_step.py [--batch 8 64 256] [--vocab 49152 151936] [--steps 50] [--device cpu]

Runs with one torch thread on CPU unless `--threads` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from hf_s1 import ThinkingBudget
from hf_s1.formats import get_format, marker_tokens
from hf_s1.prompts import build_prompt


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, baseline, steps: int, device: torch.device) -> tuple[float, float]:
    """Median seconds per call of `fn` and of `baseline`, interleaved (load drifts hit both), after warm-up."""
    fn(), fn(), baseline()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(steps):
        for f, out in ((fn, times[0]), (baseline, times[1])):
            _sync(device)
            t = time.perf_counter()
            f()
            _sync(device)
            out.append(time.perf_counter() - t)
    return statistics.median(times[0]), statistics.median(times[1])


def bench_transformers(tokenizer, batch: int, vocab: int, steps: int, device: torch.device) -> tuple[float, float]:
    from hf_s1.engines.transformers import BudgetForcingLogitsProcessor

    markers = marker_tokens(tokenizer, "s1")
    prompt = tokenizer(build_prompt(tokenizer, "What is 17 * 23?", get_format("s1")), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt] * batch, device=device)
    text = tokenizer.encode(" the", add_special_tokens=False)[0]
    logits = torch.randn(batch, vocab, device=device)
    logits[:, list(markers.stop_ids) + [markers.think_end[0]]] -= 10  # never the arg-max: every row stays intercepted
    processor = BudgetForcingLogitsProcessor(tokenizer, ThinkingBudget(min_thinking_tokens=10**6))
    processor(ids, logits.clone())
    # Pre-build the growing inputs so that only the processor is timed.
    column = torch.full((batch, 1), text, device=device)
    grown = [ids]
    for _ in range(steps + 3):
        grown.append(torch.cat([grown[-1], column], dim=1))
    state = {"i": 1}

    def step():
        processor(grown[state["i"]], logits)
        state["i"] += 1

    return _time(step, lambda: logits.argmax(dim=-1), steps, device)


def bench_vllm_v1(tokenizer_dir: str, tokenizer, batch: int, vocab: int, steps: int,
                  device: torch.device) -> tuple[float, float]:
    from types import SimpleNamespace

    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate

    from hf_s1.engines.vllm import BudgetForcingLogitsProcessor

    config = SimpleNamespace(model_config=SimpleNamespace(tokenizer=tokenizer_dir), speculative_config=None,
                             scheduler_config=SimpleNamespace(max_num_seqs=batch))
    processor = BudgetForcingLogitsProcessor(config, device, False)
    markers = marker_tokens(tokenizer, "s1")
    prompt = tokenizer(build_prompt(tokenizer, "What is 17 * 23?", get_format("s1")), add_special_tokens=False)["input_ids"]
    params = SamplingParams(temperature=0.0, extra_args={"thinking_budget": {"min_thinking_tokens": 10**6}})
    outputs = [[] for _ in range(batch)]
    processor.update_state(BatchUpdate(batch_size=batch, removed=[], moved=[],
                                       added=[(i, params, prompt, outputs[i]) for i in range(batch)]))
    text = tokenizer.encode(" the", add_special_tokens=False)[0]
    logits = torch.randn(batch, vocab, device=device)
    logits[:, list(markers.stop_ids) + [markers.think_end[0]]] -= 10

    def step():
        for out in outputs:
            out.append(text)
        processor.apply(logits)

    return _time(step, lambda: logits.argmax(dim=-1), steps, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--vocab", type=int, nargs="+", default=[49152, 151936])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vllm", action="store_true", help="also the vLLM V1 processor (needs vLLM)")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer folder (default: the embedded model's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from transformers import AutoTokenizer

    if args.tokenizer is None:
        from hf_s1 import default_model_path

        args.tokenizer = str(default_model_path())
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} thread(s), median of {args.steps} steps")
    print("| engine | batch | vocab | step (ms) | argmax (ms) | step / argmax | µs per row |")
    print("|---|---|---|---|---|---|---|")
    engines = [("transformers", lambda b, v: bench_transformers(tokenizer, b, v, args.steps, device))]
    if args.vllm:
        engines.append(("vLLM V1", lambda b, v: bench_vllm_v1(args.tokenizer, tokenizer, b, v, args.steps, device)))
    for name, run in engines:
        for vocab in args.vocab:
            for batch in args.batch:
                forced, argmax = run(batch, vocab)
                print(f"| {name} | {batch} | {vocab} | {forced * 1e3:.3f} | {argmax * 1e3:.3f} | "
                      f"{forced / argmax:.2f} | {forced / batch * 1e6:.1f} |", flush=True)


if __name__ == "__main__":
    main()
